"""Monitoring: ``online_consistency``, what live served against what batch computes (daily).

Recomputes the day's features in batch from the stored ticks (the lake, the same compiled
definitions the materializers run) and compares them row by row on (symbol, event_timestamp)
with the live materializers' offline log, and the live signals' scores (PostgreSQL
``live_signals``, when a tick store is configured) with the same model's scores on the batch
rows (``tickml.consistency``). Writes ``<workdir>/reports/consistency/<day>.json``; the check
``online_matches_batch`` fails above the configured tolerance and names the rows; the drift
report links to it; ``python -m live exporter`` serves the result to Prometheus.
"""

import datetime as dt
import json
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.partitions import daily
from assets.resources import (
    LakeResource,
    ModelRegistryResource,
    PipelineConfigResource,
    TickStoreResource,
)
from tickml.consistency import ConsistencyConfig, consistency_report
from tickml.features import compute_features, feature_names
from tickml.lake import read_online_log

CHECK = "online_matches_batch"


class OnlineConsistencyConfig(dg.Config):
    """Tolerances (defaults: exact; see tickml.consistency and the README)."""

    abs_tol: float = Field(default=0.0, description="values match within abs_tol + rel_tol*|b|")
    rel_tol: float = Field(default=0.0, description="relative part of the value tolerance")
    max_mismatch_share: float = Field(
        default=0.0, description="fail when a feature differs on more than this share of rows"
    )
    max_one_side_share: float = Field(
        default=0.0, description="fail when more than this share of rows is on one side only"
    )
    score_abs_tol: float = Field(
        default=0.0, description="fail when a live score differs from the batch score by more"
    )
    max_named_rows: int = Field(default=50, description="rows named per kind of difference")

    def tolerance(self) -> ConsistencyConfig:
        return ConsistencyConfig(**self.model_dump())


def _signals(tick_store: TickStoreResource, batch: pd.DataFrame, online: pd.DataFrame):
    from tickml.store.signals import read_signals

    if not tick_store.url:
        return None
    ts = pd.concat([batch["event_timestamp"], online["event_timestamp"]])
    return read_signals(tick_store.url, ts.min().to_pydatetime(), ts.max().to_pydatetime())


def _rows_md(rows: list[dict[str, Any]], limit: int = 20) -> str:
    return pd.DataFrame(rows[:limit]).to_markdown(index=False) if rows else "none"


def _features_md(report: dict[str, Any], limit: int = 15) -> str:
    feats = report["features"]["features"]
    top = sorted(feats.items(), key=lambda kv: (-kv[1]["share"], kv[0]))[:limit]
    rows = [{"feature": k, **v} for k, v in top if v["mismatches"]]
    return pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4g") if rows else "none"


@dg.asset(
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),  # one day/run
    deps=["raw_ticks"],
    group_name="monitoring",
    kinds={"numba", "postgres"},
    description=(
        "Online/offline consistency of the day: the features recomputed in batch from the "
        "stored ticks against the rows the live materializers pushed online (their offline "
        "log), row by row on (symbol, event_timestamp): per-feature mismatch share and max "
        "difference, rows on one side only, and the live signals' scores against the model's "
        "scores on the batch rows. Skipped (check passed) on a day without an online log."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset="online_consistency",
            blocking=False,
            description="Fails when live and batch differ beyond the tolerance (default: "
            "exact): a feature's mismatch share, rows on one side only, a different last "
            "input tick, a different score. Names the rows.",
        )
    ],
)
def online_consistency(
    context: dg.AssetExecutionContext,
    config: OnlineConsistencyConfig,
    lake: LakeResource,
    pipeline: PipelineConfigResource,
    registry: ModelRegistryResource,
    tick_store: TickStoreResource,
) -> dg.MaterializeResult:
    day = dt.date.fromisoformat(context.partition_key)
    path = lake.layout.consistency_report(day)
    path.parent.mkdir(parents=True, exist_ok=True)
    online = read_online_log(lake.root, day)
    if online.empty:
        reason = f"no online log for {day}: live did not run"
        summary = {"day": day.isoformat(), "status": "skipped", "passed": True,
                   "reasons": [reason]}
        path.write_text(json.dumps(summary, indent=1), encoding="utf-8")
        return dg.MaterializeResult(
            metadata={"status": "skipped", "path": dg.MetadataValue.path(str(path))},
            check_results=[dg.AssetCheckResult(check_name=CHECK, passed=True, description=reason)],
        )
    fcfg = pipeline.load().features
    batch = compute_features(lake.ticks().read_day(day), fcfg)
    signals = _signals(tick_store, batch, online)
    reg = registry.registry()
    versions = sorted(
        {
            str(v)
            for v in (signals["model_version"] if signals is not None else [])
            if v and v in reg.versions()
        }
    )
    # the model whose output is the live score (RegisteredModels.decision_model)
    loaded = {v: reg.load(v) for v in versions}
    models = {v: m.models[m.decision_model] for v, m in loaded.items()}
    tol = config.tolerance()
    report = consistency_report(batch, online, feature_names(fcfg), signals, models, tol)
    report.update(day=day.isoformat(), status="ok", written_at=dt.datetime.now(dt.UTC).isoformat())
    path.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    f, s = report["features"], report["scores"] or {}
    context.log.info(
        "consistency of %s: %s", day, "passed" if report["passed"] else "; ".join(report["reasons"])
    )
    counts = {
        "n_batch": f["n_batch"],
        "n_online": f["n_online"],
        "n_matched": f["n_matched"],
        "n_batch_only": f["n_batch_only"],
        "n_online_only": f["n_online_only"],
        "n_rows_differing": f["n_rows_differing"],
        "n_features_differing": f["n_features_differing"],
        "n_scores_compared": int(s.get("n_compared", 0)),
        "n_scores_differing": int(s.get("n_differing", 0)),
    }
    named = {
        "rows_differing": dg.MetadataValue.md(_rows_md(f["rows_differing"])),
        "batch_only_rows": dg.MetadataValue.md(_rows_md(f["batch_only"])),
        "online_only_rows": dg.MetadataValue.md(_rows_md(f["online_only"])),
        "scores_differing": dg.MetadataValue.md(_rows_md(s.get("rows_differing") or [])),
    }
    reasons = dg.MetadataValue.text("; ".join(report["reasons"]) or "none")
    return dg.MaterializeResult(
        metadata={
            "status": "ok",
            "passed": dg.MetadataValue.bool(report["passed"]),
            "reasons": reasons,
            **{k: dg.MetadataValue.int(int(v)) for k, v in counts.items()},
            "max_mismatch_share": dg.MetadataValue.float(float(f["max_mismatch_share"])),
            "score_max_abs_diff": dg.MetadataValue.float(float(s.get("max_abs_diff", 0.0))),
            "features_differing": dg.MetadataValue.md(_features_md(report)),
            **named,
            "path": dg.MetadataValue.path(str(path)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK,
                passed=report["passed"],
                severity=dg.AssetCheckSeverity.ERROR,
                description="; ".join(report["reasons"]) or "live == batch within tolerance",
                metadata={
                    "reasons": reasons,
                    **named,
                    **{k: dg.MetadataValue.int(int(v)) for k, v in counts.items()},
                },
            )
        ],
    )
