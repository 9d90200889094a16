"""Monitoring: ``shadow_vs_backtest``, the day's shadow trading against its backtest.

Reads the shadow ledger's fills and per-boundary equity of the partition's day (PostgreSQL),
backtests the same day's batch feature rows with the model versions the live scorer used and the
ledger's own execution config (:func:`tickml.shadow.shadow_vs_backtest`), and reports Sharpe,
drawdown, hit rate and turnover side by side, with the fill-by-fill comparison. The check
``shadow_matches_backtest`` fails when they diverge beyond costs' rounding. Without a ledger
database, or a day the ledger did not trade, the report is skipped (status ``skipped``, the
check passes saying so). Output: ``<workdir>/reports/shadow/<day>.json``.
"""

import datetime as dt
import json
from typing import Any

import dagster as dg
import pandas as pd

from assets.partitions import daily
from assets.resources import (
    LakeResource,
    ModelRegistryResource,
    PipelineConfigResource,
    ShadowLedgerResource,
)
from tickml.backtest import BacktestConfig
from tickml.lake import FeatureTables
from tickml.shadow import shadow_vs_backtest as compare_day

CHECK = "shadow_matches_backtest"


def _table(report: dict[str, Any]) -> str:
    m = report["metrics"]
    keys = ("net_pnl", "sharpe", "max_drawdown", "hit_rate", "turnover", "n_trades")
    rows = [{"metric": k, "shadow": m["shadow"][k], "backtest": m["backtest"][k]} for k in keys]
    return pd.DataFrame(rows).to_markdown(index=False, floatfmt=".6g")


@dg.asset(
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),  # one day/run
    deps=["tick_features", "raw_ticks"],
    group_name="monitoring",
    description=(
        "The day's shadow trading (the live ledger's fills and equity in PostgreSQL) beside "
        "the backtest of the same day's batch rows (same models, decision function and "
        "position book): Sharpe, drawdown, hit rate, turnover, and a fill-by-fill comparison."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset="shadow_vs_backtest",
            description="The shadow fills equal the backtest's (time, symbol, side, action, "
            "reason) and their sizes, prices, costs and net P&L agree within costs' rounding.",
        )
    ],
)
def shadow_vs_backtest(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    registry: ModelRegistryResource,
    pipeline: PipelineConfigResource,
    shadow: ShadowLedgerResource,
) -> dg.MaterializeResult:
    day = dt.date.fromisoformat(context.partition_key)
    cfg = pipeline.load()
    path = lake.reports_dir() / "shadow" / f"{day.isoformat()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fills = equity = None
    execution = None
    if shadow.enabled():
        fills, equity, execution = shadow.day(day, cfg.market.tz)
    if execution is None or fills is None or equity is None or equity.empty:
        reason = "no shadow ledger database" if not shadow.enabled() else "no shadow trading"
        path.write_text(json.dumps({"day": day.isoformat(), "status": "skipped", "reason": reason}))
        return dg.MaterializeResult(
            metadata={"status": "skipped", "reason": reason},
            check_results=[
                dg.AssetCheckResult(check_name=CHECK, passed=True, metadata={"skipped": reason})
            ],
        )
    rows = FeatureTables(lake.root).read_day(day)
    ticks = lake.ticks().read_day(day)
    reg = registry.registry()
    versions = {v for v in equity["model_version"] if v}
    models = {v: reg.load(v) for v in versions}
    exec_cfg = BacktestConfig.model_validate_json(execution)
    report = compare_day(rows, ticks, fills, equity, models, cfg.experiment.decision, exec_cfg)
    report.update(day=day.isoformat(), status="ok")
    path.write_text(json.dumps(report, indent=1, default=str))
    cmp = report["comparison"]
    context.log.info("shadow vs backtest %s: %s", day, "equal" if report["passed"] else cmp)
    return dg.MaterializeResult(
        metadata={
            "status": "ok",
            "side_by_side": dg.MetadataValue.md(_table(report)),
            "fills_shadow": dg.MetadataValue.int(cmp["n_shadow"]),
            "fills_backtest": dg.MetadataValue.int(cmp["n_backtest"]),
            "model_versions": ", ".join(report["model_versions"]),
            "path": dg.MetadataValue.path(str(path)),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK,
                passed=report["passed"],
                metadata={
                    "same_fills": cmp["same_fills"],
                    "mismatched_columns": dg.MetadataValue.json(cmp["mismatched_columns"]),
                    "max_price_diff": dg.MetadataValue.float(cmp["max_price_diff"]),
                    "max_qty_diff": dg.MetadataValue.float(cmp["max_qty_diff"]),
                    "net_diff": dg.MetadataValue.float(cmp["net_diff"]),
                    "tolerance": dg.MetadataValue.float(report["tolerance"]),
                },
            )
        ],
    )
