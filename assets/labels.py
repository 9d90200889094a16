"""Label asset family: ``labels`` (triple-barrier labels for each feature row of a day)."""

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd

from assets.partitions import daily
from assets.resources import LakeResource, PipelineConfigResource
from tickml.labels import make_labels
from tickml.lake import FeatureTables, LabelTables


def label_violations(labels: pd.DataFrame, short_h: str, long_h: str) -> dict[str, int]:
    """Rows whose label was decided before its event or after its horizon (must be none)."""
    if labels.empty:
        return {}
    t = labels["event_timestamp"]
    bad = {
        "label_end_before_event": int((labels["label_end"] < t).sum()),
        "short_after_horizon": int(
            (labels["label_end_short"] > t + pd.Timedelta(short_h)).sum()
        ),
        "long_after_horizon": int((labels["label_end_long"] > t + pd.Timedelta(long_h)).sum()),
    }
    return {k: v for k, v in bad.items() if v}


def class_balance(labels: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for h in ("short", "long"):
        counts = labels[f"label_{h}"].fillna("(none)").value_counts()
        for cls, n in counts.items():
            rows.append({"horizon": h, "label": cls, "rows": int(n),
                         "share": round(float(n) / max(len(labels), 1), 4)})
    return pd.DataFrame(rows)


@dg.asset(
    partitions_def=daily,
    deps=["raw_ticks", "tick_features"],
    group_name="labels",
    kinds={"parquet", "numba"},
    # one day per run: the asset reads context.partition_key (a day of ticks is seconds of work,
    # so the run overhead is small, and a failed day fails alone)
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
    description=(
        "Triple-barrier labels for every feature row of the day: 5-class short horizon "
        "(UP/DOWN/FLAT/TRAP_UP/TRAP_DOWN) and 3-class long horizon, each with label_end (when it "
        "was decided) and fwd_return (mid log return over the horizon)."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "decided_within_horizon", asset="labels",
            description="label_end lies between the event and event + horizon.",
        ),
    ],
)
def labels(
    context: dg.AssetExecutionContext, lake: LakeResource, pipeline: PipelineConfigResource
) -> dg.MaterializeResult:
    day = dt.date.fromisoformat(context.partition_key)
    cfg = pipeline.load().labels
    tables = FeatureTables(lake.root)
    if tables.has_day(day):
        events = tables.read_day(day)[["symbol", "event_timestamp"]]
    else:
        events = pd.DataFrame({"symbol": pd.Series([], dtype=object),
                               "event_timestamp": pd.Series([], dtype="datetime64[ns, UTC]")})
    ticks = lake.ticks().read_day(day)
    lab = make_labels(ticks, events, cfg)
    path = LabelTables(lake.root).write_day(lab, day)
    bad = label_violations(lab, cfg.short_horizon, cfg.long_horizon)
    balance = class_balance(lab)
    labelled = float(np.mean(lab["label_short"].notna())) if len(lab) else 0.0
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(len(lab)),
            "labelled_share_short": dg.MetadataValue.float(round(labelled, 4)),
            "horizons": f"{cfg.short_horizon} / {cfg.long_horizon}",
            "class_balance": dg.MetadataValue.md(
                balance.to_markdown(index=False) if len(balance) else "empty"
            ),
            "path": dg.MetadataValue.path(str(path)),
        },
        check_results=[
            dg.AssetCheckResult(check_name="decided_within_horizon", passed=not bad,
                                metadata={"violations": dg.MetadataValue.json(bad)}),
        ],
    )
