"""Training asset family: the point-in-time training set (Feast), the walk-forward experiment,
the challenger model with its blocking promotion check, and the champion."""

import dagster as dg
import numpy as np
import pandas as pd

from assets.resources import (
    FeastResource,
    LakeResource,
    MlflowResource,
    ModelRegistryResource,
    PipelineConfigResource,
)
from tickml.lake import LabelTables

FEATURE_SERVICE = "tick_features_v1"
ENTITY_COLUMNS = (
    "symbol", "event_timestamp", "label_end",
    "label_short", "label_end_short", "fwd_return_short", "truncated_short", "ref_price_short",
    "label_long", "label_end_long", "fwd_return_long", "truncated_long",
)


def entity_frame(labels: pd.DataFrame) -> pd.DataFrame:
    """The Feast entity dataframe: one row per labelled event, labels riding along."""
    cols = [c for c in ENTITY_COLUMNS if c in labels.columns]
    ent = labels.loc[labels["label_short"].notna() | labels["label_long"].notna(), cols].copy()
    # the offline store keeps microseconds: label ends round up (purging stays conservative)
    for c in ent.columns:
        if c != "event_timestamp" and isinstance(ent[c].dtype, pd.DatetimeTZDtype):
            ent[c] = ent[c].dt.ceil("us")
    return ent.sort_values(["event_timestamp", "symbol"]).reset_index(drop=True)


def event_ns(frame: pd.DataFrame) -> pd.Series:
    """event_timestamp as int64 ns whatever unit the offline store returned."""
    return frame["event_timestamp"].astype("datetime64[ns, UTC]").astype("int64")


def pit_report(dataset: pd.DataFrame) -> dict[str, int]:
    """Rows whose served feature row, or any tick behind it, is after the row's time."""
    t = event_ns(dataset)
    return {
        "feature_row_after_event": int((dataset["row_event_ns"] > t).sum()),
        "input_tick_after_event": int((dataset["last_tick_ns"] > t).sum()),
        "rows_without_features": int(dataset["row_event_ns"].isna().sum()),
    }


@dg.asset(
    deps=["labels", "tick_features", "feast_registry"],
    group_name="training",
    kinds={"feast", "parquet"},
    description=(
        "Point-in-time training set: labelled events joined to their features with Feast "
        f"get_historical_features (feature service {FEATURE_SERVICE}), so every row sees "
        "only the latest feature row at or before its event_timestamp."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "point_in_time", asset="training_dataset", blocking=True,
            description="No feature row or input tick is after the row's event_timestamp.",
        ),
    ],
)
def training_dataset(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    feast: FeastResource,
    pipeline: PipelineConfigResource,
) -> dg.MaterializeResult:
    labels = LabelTables(lake.root).read_all()
    if labels.empty:
        raise dg.Failure("no labels in the lake: materialize raw_ticks, tick_features, labels")
    ent = entity_frame(labels)
    store = feast.store()
    service = store.get_feature_service(FEATURE_SERVICE)
    context.log.info("joining %d labelled rows through Feast (%s)", len(ent), FEATURE_SERVICE)
    data = store.get_historical_features(entity_df=ent, features=service).to_df()
    data = data.sort_values(["event_timestamp", "symbol"]).reset_index(drop=True)
    path = lake.dataset_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data.to_parquet(path, index=False)
    pit = pit_report(data)
    bad = pit["feature_row_after_event"] + pit["input_tick_after_event"]
    data["event_timestamp"] = data["event_timestamp"].astype("datetime64[ns, UTC]")
    lag_s = (event_ns(data) - data["row_event_ns"]) / 1e9
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(len(data)),
            "entity_rows": dg.MetadataValue.int(len(ent)),
            "symbols": dg.MetadataValue.int(int(data["symbol"].nunique())),
            "first_event": str(data["event_timestamp"].min()),
            "last_event": str(data["event_timestamp"].max()),
            "feature_age_s_max": dg.MetadataValue.float(
                float(np.nanmax(lag_s)) if len(data) else 0.0
            ),
            "path": dg.MetadataValue.path(str(path)),
        },
        check_results=[
            dg.AssetCheckResult(check_name="point_in_time", passed=bad == 0,
                                metadata={k: dg.MetadataValue.int(v) for k, v in pit.items()}),
        ],
    )


def _md_models(result: dict) -> str:
    rows = []
    for kind in ("models", "baselines"):
        for m in result.get(kind) or []:
            o = m.get("oos") or {}
            rows.append({
                "model": ("" if kind == "models" else "baseline ") + str(m.get("name")),
                "horizon": m.get("horizon"), "n": o.get("n"),
                "log_loss": o.get("log_loss"), "bal_acc": o.get("balanced_accuracy"),
                "dir_acc": o.get("directional_accuracy"), "ic": o.get("ic"),
                "ic_ci95": str(o.get("ic_ci95")),
            })
    return pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f") if rows else "none"


def _md_image(name: str, path) -> str:
    """A PNG inline in the asset's metadata (the Dagster UI renders markdown images)."""
    import base64

    b64 = base64.b64encode(path.read_bytes()).decode()
    return f"![{name}](data:image/png;base64,{b64})\n\n`{path}`"


def _md_selection(result: dict, top: int = 20) -> str:
    table = (result.get("selection") or {}).get("table") or []
    if not table:
        return "none"
    return pd.DataFrame(table).head(top).to_markdown(index=False, floatfmt=".4g")


@dg.asset(
    deps=["training_dataset"],
    group_name="training",
    kinds={"lightgbm", "shap"},
    description=(
        "Purged walk-forward evaluation: per fold SHAP selection (top-K) inside the training "
        "window, dual LightGBM (5-class short, 3-class long) with early stopping, baselines "
        "(logistic regression, momentum) on the same folds, a backtest through the live "
        "decision function. Saves the production models as a new registry version "
        "(challenger), registers its versioned Feast FeatureService, writes reports, and "
        "records the run in MLflow (params, per-fold and OOS metrics with baselines, SHAP "
        "selection, backtest, plots, the HTML report; the manifest keeps the run id)."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "beats_champion", asset="model_experiment", blocking=True,
            description="Promotion gate (tickml.models.promotion) on the decision model (the "
            "direction model when the version has one, else short): out-of-sample IC (mean "
            "per-day IC) and log loss beat the champion, and the absolute bar: >= 5 days, the "
            "IC's 95% Student-t interval over days above 0, a classifier's log loss below "
            "momentum's, a regression's IC above the better plain rule's (refused without one).",
        ),
    ],
)
def model_experiment(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    feast: FeastResource,
    pipeline: PipelineConfigResource,
    registry: ModelRegistryResource,
    mlflow: MlflowResource,
) -> dg.MaterializeResult:
    from feature_repo.store import register_selection
    from tickml.features import feature_names
    from tickml.models.experiment import add_market_columns, run_experiment
    from tickml.report import write_reports

    cfg = pipeline.load()
    data = pd.read_parquet(lake.dataset_path())
    data = add_market_columns(data, tz=cfg.market.tz)
    feats = feature_names(cfg.features)

    def progress(stage: str, done: int, total: int) -> None:
        context.log.info("experiment %s (%d/%d)", stage, done, total)

    result = run_experiment(data, feats, cfg.experiment_config(), progress=progress)
    res = result.to_dict()
    reg = registry.registry()
    run = mlflow.start_run("training", {"tickml.data_hash": str(res.get("data_hash"))})
    version = reg.save(result, metadata={
        "horizons": [cfg.labels.short_horizon, cfg.labels.long_horizon],
        **({"mlflow": run} if run else {}),
    }, feature_config=cfg.features)
    manifest = reg.manifest(version)
    service = manifest.get("feature_service")
    register_selection(feast.store(), service, manifest.get("features") or [])
    res["version"] = version
    res["feature_service"] = service
    paths = write_reports(res, lake.reports_dir(), title=f"tickml evaluation, model {version}")
    pred = getattr(result, "predictions", None)
    if isinstance(pred, pd.DataFrame):
        pred.to_parquet(lake.reports_dir() / "oos_predictions.parquet", index=False)
    current = reg.champion()
    ok, reasons = reg.promotion_decision(manifest, reg.manifest(current) if current else None)
    tracked = mlflow.log_training(
        run, version, res,
        {"experiment": res.get("config") or {}, "features": cfg.features.model_dump(mode="json"),
         "labels": cfg.labels.model_dump(mode="json"),
         "data": {k: res.get(k) for k in ("n_rows", "n_features_in", "data_hash")}},
        paths, (ok, reasons),
        {"tickml.feature_service": str(service),
         "tickml.git_commit": str((manifest.get("code_version") or {}).get("git_commit"))},
    )
    bt = res.get("backtest") or {}
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "feature_service": str(service),
            "mlflow_run_id": run["run_id"] if run and tracked else "none",
            "metrics": dg.MetadataValue.md(_md_models(res)),
            "shap_top_features": dg.MetadataValue.md(_md_selection(res)),
            "backtest": dg.MetadataValue.json(
                {k: v for k, v in bt.items() if not isinstance(v, (list, dict))}
            ),
            "report": dg.MetadataValue.path(str(paths["html"])),
            **{f"plot_{k}": dg.MetadataValue.md(_md_image(k, p)) for k, p in paths.items()
               if k not in ("json", "html")},
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="beats_champion", passed=ok,
                metadata={"challenger": version, "champion": str(current),
                          "reasons": dg.MetadataValue.json(reasons)},
            ),
        ],
    )


def passed_challenger(instance: dg.DagsterInstance, run_id: str) -> tuple[str, str | None]:
    """The version ``model_experiment`` registered in run ``run_id`` and the champion its
    ``beats_champion`` check compared it with, when that check passed for that very version;
    raises ``dg.Failure`` otherwise."""
    version = None
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        mat = entry.asset_materialization
        if mat is not None and mat.asset_key == dg.AssetKey("model_experiment"):
            version = mat.metadata["version"].value
    if version is None:
        raise dg.Failure(f"run {run_id} registered no model_experiment version")
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        ev = entry.dagster_event.event_specific_data if entry.dagster_event else None
        if not isinstance(ev, dg.AssetCheckEvaluation) or ev.check_name != "beats_champion":
            continue
        meta = {k: v.value for k, v in ev.metadata.items()}
        if meta.get("challenger") == version:
            if not ev.passed:
                raise dg.Failure(f"{version} did not pass beats_champion: not promoted")
            champion = meta.get("champion")
            return str(version), None if champion in (None, "None") else str(champion)
    raise dg.Failure(f"no beats_champion result for {version} in run {run_id}")


@dg.asset(
    deps=["model_experiment"],
    group_name="training",
    description="The registry's champion: exactly the challenger whose blocking promotion check "
    "passed (the version model_experiment registered in this run, or in its latest run when "
    "this asset runs alone), never simply the newest version: two overlapping retrains can "
    "register a version that failed its check after the one that passed. If another run "
    "promoted a champion since the check, the rule is applied again against it.",
)
def champion_model(
    context: dg.AssetExecutionContext, registry: ModelRegistryResource, mlflow: MlflowResource
) -> dg.MaterializeResult:
    instance = context.instance
    run_id = context.run.run_id
    materialized = dg.DagsterEventType.ASSET_MATERIALIZATION
    if dg.AssetKey("model_experiment") not in instance.get_asset_keys_for_run(run_id, materialized):
        latest = instance.get_latest_materialization_event(dg.AssetKey("model_experiment"))
        if latest is None:
            raise dg.Failure("model_experiment was never materialized: no challenger")
        run_id = latest.run_id
    version, checked_against = passed_challenger(instance, run_id)
    reg = registry.registry()
    current = reg.champion()
    if current != checked_against:
        ok, reasons = reg.promotion_decision(
            reg.manifest(version), reg.manifest(current) if current else None
        )
        if not ok:
            raise dg.Failure(
                f"{version} passed against {checked_against}, but {current} became champion "
                f"since and {version} does not beat it: {reasons}"
            )
    reg.set_champion(version)
    mlflow.mark_champion(  # promotion visible in MLflow: tag tickml.champion on the run
        (reg.manifest(version).get("metadata") or {}).get("mlflow"), version,
        (reg.manifest(current).get("metadata") or {}).get("mlflow") if current else None,
    )
    return dg.MaterializeResult(metadata={"champion": version, "run_checked": run_id,
                                          "manifest": dg.MetadataValue.json(reg.manifest(version))})
