"""Feature asset family: ``tick_features`` (batch feature tables) and ``feast_registry``."""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd

from assets.partitions import daily
from assets.resources import FeastResource, LakeResource, PipelineConfigResource
from tickml.features import (
    FeatureConfig,
    compute_features,
    feature_defs,
    pit_violations,
    with_pit_columns,
)
from tickml.lake import FeatureTables


def disallowed_nans(features: pd.DataFrame, config: FeatureConfig) -> dict[str, int]:
    """NaN/inf counts in features documented as never NaN, and inf anywhere."""
    bad: dict[str, int] = {}
    for d in feature_defs(config):
        col = features[d.name].to_numpy(dtype=np.float64)
        n = int(np.isinf(col).sum()) + (0 if d.nan_when else int(np.isnan(col).sum()))
        if n:
            bad[d.name] = n
    return bad


@dg.asset(
    partitions_def=daily,
    deps=["raw_ticks"],
    group_name="features",
    kinds={"parquet", "numba"},
    # one day per run: the asset reads context.partition_key (a day of ticks is seconds of work,
    # so the run overhead is small, and a failed day fails alone)
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
    description=(
        "Batch feature table for one day: a row per symbol at each sampling close "
        "(event_timestamp), computed only from ticks with ts <= event_timestamp by the same "
        "compiled definitions the live materializer runs. Feast's offline source."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "no_nan_or_inf",
            asset="tick_features",
            description="No inf anywhere; no NaN where documented never NaN.",
        ),
        dg.AssetCheckSpec(
            "point_in_time",
            asset="tick_features",
            description="No row's newest input tick is after its event_timestamp.",
        ),
    ],
)
def tick_features(
    context: dg.AssetExecutionContext, lake: LakeResource, pipeline: PipelineConfigResource
) -> dg.MaterializeResult:
    day = dt.date.fromisoformat(context.partition_key)
    fcfg = pipeline.load().features
    ticks = lake.ticks().read_day(day)
    feats = with_pit_columns(compute_features(ticks, fcfg))
    path = FeatureTables(lake.root).write_day(feats, day)
    bad = disallowed_nans(feats, fcfg)
    late = pit_violations(feats)
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(len(feats)),
            "symbols": dg.MetadataValue.int(int(feats["symbol"].nunique()) if len(feats) else 0),
            "features": dg.MetadataValue.int(len(feature_defs(fcfg))),
            "input_ticks": dg.MetadataValue.int(len(ticks)),
            "interval": fcfg.interval,
            "path": dg.MetadataValue.path(str(path)),
            "preview": dg.MetadataValue.md(
                feats.head(5).iloc[:, :8].to_markdown(index=False) if len(feats) else "empty"
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="no_nan_or_inf",
                passed=not bad,
                metadata={"offending": dg.MetadataValue.json(bad)},
            ),
            dg.AssetCheckResult(
                check_name="point_in_time",
                passed=late == 0,
                metadata={"rows_with_future_ticks": late},
            ),
        ],
    )


@dg.asset(
    group_name="features",
    kinds={"feast"},
    description="Applies the Feast repo (entities, sources, views, versioned services) to the "
    "registry of the deployment's feature store.",
)
def feast_registry(feast: FeastResource, pipeline: PipelineConfigResource) -> dg.MaterializeResult:
    names = feast.apply(pipeline.load().features)
    return dg.MaterializeResult(metadata={"applied": dg.MetadataValue.json(names)})


def last_rows(features: pd.DataFrame) -> pd.DataFrame:
    """The newest feature row of each symbol (the online store's state after the day)."""
    if features.empty:
        return features
    order = features.sort_values(["symbol", "event_timestamp"], kind="stable")
    return order.groupby("symbol", sort=True).tail(1).reset_index(drop=True)


@dg.asset(
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),  # one day/run
    deps=["tick_features"],
    group_name="features",
    kinds={"feast", "redis"},
    description=(
        "Warm start of live scoring: the day's last feature row per symbol written to the Feast "
        "online store (Redis in prod, sqlite locally) through the push source "
        "tick_features_push. The Redis store keeps the newest row per symbol, so backfilling an "
        "older day never overwrites a newer one. Applies the Feast repo first if the registry "
        "does not know tick_features yet."
    ),
)
def online_features(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    feast: FeastResource,
    pipeline: PipelineConfigResource,
) -> dg.MaterializeResult:
    from feast.data_source import PushMode
    from feast.errors import FeatureViewNotFoundException

    day = dt.date.fromisoformat(context.partition_key)
    tables = FeatureTables(lake.root)
    if not tables.has_day(day):
        raise dg.Failure(f"no feature table for {day}: materialize tick_features first")
    rows = last_rows(tables.read_day(day))
    if rows.empty:  # a day without ticks: nothing to push
        return dg.MaterializeResult(metadata={"symbols": dg.MetadataValue.int(0)})
    store = feast.store()
    applied = False
    try:
        view = store.get_feature_view("tick_features")
    except FeatureViewNotFoundException:
        context.log.info("Feast registry has no tick_features view: applying the repo")
        feast.apply(pipeline.load().features)
        store = feast.store()
        view = store.get_feature_view("tick_features")
        applied = True
    cols = [f.name for f in view.features]
    missing = [c for c in cols if c not in rows.columns]
    if missing:
        raise dg.Failure(f"feature table of {day} lacks view columns {missing[:10]}")
    store.push("tick_features_push", rows[["symbol", "event_timestamp", *cols]], to=PushMode.ONLINE)
    return dg.MaterializeResult(
        metadata={
            "symbols": dg.MetadataValue.int(len(rows)),
            "features": dg.MetadataValue.int(len(cols)),
            "last_event": str(rows["event_timestamp"].max()),
            "online_store": str(store.config.online_store.type),
            "registry_applied": dg.MetadataValue.bool(applied),
        }
    )
