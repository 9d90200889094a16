"""Grafana dashboards as code (grafana-foundation-sdk builders -> provisioning JSON).

Two dashboards, written to ``ops/grafana/dashboards/`` by ``python -m orchestration.grafana``
(a test fails when the committed JSON and this code differ):

* ``tickml-live``: close -> signal latency (p50/p99, its parts, the histogram), online store
  writes/reads, throughput and bus lag per worker, boundaries, gate decisions, stale vectors,
  feature age, circuit breaker, dependencies and errors (Prometheus); the shadow book's
  exposure, P&L, VaR, risk gates and fills (the ledger's metrics) and its cumulative P&L and
  round trips (PostgreSQL ``shadow_equity``, ``shadow_fills``).
* ``tickml-monitoring``: the nightly online/offline consistency and drift results (Prometheus,
  from ``python -m live exporter``).

Every PromQL query here is evaluated against a real live replay by ``tests/test_live_e2e.py``
and every SQL query is run against its PostgreSQL. Data sources are referenced by uid
(``tickml-prometheus``, ``tickml-postgres``): ``ops/grafana/provisioning`` defines them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.runtime import UnknownDataquery
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import prometheus as prom_models
from grafana_foundation_sdk.models.dashboard import DataSourceRef

PROMETHEUS = DataSourceRef(type_val="prometheus", uid="tickml-prometheus")
POSTGRES = DataSourceRef(type_val="grafana-postgresql-datasource", uid="tickml-postgres")
OUT = Path(__file__).resolve().parents[1] / "ops" / "grafana" / "dashboards"


class SqlQuery(cogbuilder.Builder[UnknownDataquery]):
    """A query of Grafana's PostgreSQL data source (the SDK has no builder for it)."""

    def __init__(self, raw_sql: str, fmt: str = "time_series") -> None:
        self.raw_sql, self.fmt = " ".join(raw_sql.split()), fmt

    def build(self) -> UnknownDataquery:
        return UnknownDataquery(
            {"refId": "A", "datasource": POSTGRES.to_json(), "editorMode": "code",
             "format": self.fmt, "rawQuery": True, "rawSql": self.raw_sql}
        )


def _prom(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend or "__auto").ref_id(ref)


def _series(title: str, unit: str, *queries: prometheus.Dataquery, desc: str = "",
            stacked: bool = False, width: int = 12) -> timeseries.Panel:
    p = (timeseries.Panel().title(title).description(desc).unit(unit).datasource(PROMETHEUS)
         .span(width).height(8).targets(list(queries)))
    if stacked:
        p = p.stacking(cb.StackingConfig().mode(common.StackingMode.NORMAL)).fill_opacity(40)
    return p


def _stat(title: str, unit: str, query: Any, desc: str = "", ds: DataSourceRef = PROMETHEUS,
          width: int = 4) -> stat.Panel:
    return (stat.Panel().title(title).description(desc).unit(unit).datasource(ds).span(width)
            .height(5).targets([query])
            .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False)))


def live_dashboard() -> db.Dashboard:
    r = "$__rate_interval"
    return (
        db.Dashboard("tickml: live path").uid("tickml-live").tags(["tickml"]).refresh("30s")
        .time("now-6h", "now").timezone("browser").editable()
        .with_row(db.Row("Latency: interval close -> signal (budget p99 50 ms)"))
        .with_panel(_series(
            "close -> signal p50 / p99", "s",
            _prom("tickml:close_to_signal_seconds:p50_5m", "p50"),
            _prom("tickml:close_to_signal_seconds:p99_5m", "p99", "B"),
            desc="Recording rules over 5 minutes; alert TickmlCloseToSignalP99OverBudget."))
        .with_panel(_series(
            "p99 by stage", "s", _prom("tickml:scorer_stage_seconds:p99_5m", "{{stage}}"),
            desc="wait (close -> scorer starts: materializers and the shard barrier), read "
            "(online vectors), models, decide, publish."))
        .with_panel(
            heatmap.Panel().title("close -> signal histogram").datasource(PROMETHEUS)
            .span(12).height(8).targets([
                _prom(f"sum by (le) (rate(tickml_close_to_signal_seconds_bucket[{r}]))",
                      "{{le}}").format(prom_models.PromQueryFormat.HEATMAP)]))
        .with_panel(_series(
            "online store p99", "s", _prom("tickml:online_write_seconds:p99_5m", "write {{view}}"),
            _prom(f"histogram_quantile(0.99, sum by (le) (rate(tickml_online_read_seconds_bucket"
                  f"[{r}])))", "read", "B")))
        .with_row(db.Row("Throughput and lag per worker"))
        .with_panel(_series("ticks per second", "short",
                            _prom("tickml:ticks:rate1m", "{{worker}}"), width=8))
        .with_panel(_series("bus consumer lag (entries)", "short",
                            _prom("tickml_consumer_lag_entries", "{{worker}} shard {{shard}}"),
                            desc="Alert TickmlConsumerLagGrowing on its 10-minute slope.",
                            width=8))
        .with_panel(_series(
            "boundaries per minute", "short",
            _prom(f"sum by (worker) (rate(tickml_boundaries_total[{r}])) * 60", "{{worker}}"),
            _prom("tickml:boundary_overdue_seconds / 60", "scorer overdue (min)", "B"),
            width=8))
        .with_row(db.Row("Gate decisions, stale vectors, circuit breaker"))
        .with_panel(_series("gate decisions (share)", "percentunit",
                            _prom("tickml:gate_decisions:ratio_5m", "{{gate}}"), stacked=True))
        .with_panel(_series(
            "stale or missing vectors (share)", "percentunit",
            _prom("tickml:scored_vectors:stale_ratio_5m", "stale + missing"),
            desc="Alert TickmlStaleVectorShareHigh above 5%.", width=6))
        .with_panel(_series(
            "feature age / circuit breaker", "s",
            _prom("tickml_feature_age_max_seconds", "oldest vector age"),
            _prom("tickml_circuit_breaker_tripped", "breaker tripped (1)", "B"), width=6))
        .with_row(db.Row("Health"))
        .with_panel(_series("dependencies up", "short",
                            _prom("tickml_dependency_up", "{{worker}} {{dependency}}"), width=8))
        .with_panel(_series(
            "errors survived per second", "short",
            _prom(f"sum by (worker, kind) (rate(tickml_worker_errors_total[{r}]))",
                  "{{worker}} {{kind}}"), width=8))
        .with_panel(_series("scrape targets up", "short",
                            _prom('up{job=~"tickml.*"}', "{{instance}}"), width=8))
        .with_row(db.Row("Shadow book (the position book: ledger metrics, PostgreSQL shadow_*)"))
        .with_panel(_series("shadow exposure (notional units)", "short",
                            _prom("tickml_ledger_exposure", "{{kind}}"), width=6))
        .with_panel(_series("shadow P&L today (notional units)", "short",
                            _prom("tickml_ledger_pnl", "{{kind}}"),
                            _prom("tickml_ledger_var", "VaR", "B"), width=6))
        .with_panel(_series(
            "risk gates per minute", "short",
            _prom(f"sum by (gate) (rate(tickml_ledger_risk_gates_total[{r}])) * 60", "{{gate}}"),
            desc="The position book's outcome per signal: opened, extended, scaled or refused "
            "by the gross/net caps or the risk limit (tickml.execution).", width=6))
        .with_panel(_series("shadow fills per minute", "short",
                            _prom(f"sum by (reason) (rate(tickml_ledger_fills_total[{r}])) * 60",
                                  "{{reason}}"),
                            _prom("tickml_ledger_positions", "open positions", "B"), width=6))
        .with_panel(
            timeseries.Panel().title("shadow P&L (cumulative, notional units)")
            .datasource(POSTGRES).unit("short").span(12).height(8).targets([SqlQuery(PNL_SQL)]))
        .with_panel(
            table.Panel().title("round trips by model version").datasource(POSTGRES).span(12)
            .height(8).targets([SqlQuery(ROUND_TRIPS_SQL, "table")]))
    )


PNL_SQL = """SELECT boundary AS time,
  sum(pnl) OVER (PARTITION BY ledger_id ORDER BY boundary) AS "P&L"
FROM shadow_equity WHERE $__timeFilter(boundary) ORDER BY boundary"""
ROUND_TRIPS_SQL = """SELECT model_version, count(*) AS round_trips, sum(net) AS net_pnl,
  avg(net) AS mean_net, avg((net > 0)::int) AS hit_rate
FROM shadow_fills WHERE action = 'close' AND $__timeFilter(ts)
GROUP BY model_version ORDER BY model_version"""


def monitoring_dashboard() -> db.Dashboard:
    return (
        db.Dashboard("tickml: drift and consistency").uid("tickml-monitoring").tags(["tickml"])
        .refresh("5m").time("now-30d", "now").timezone("browser").editable()
        .with_row(db.Row("Online/offline consistency (online_consistency, nightly)"))
        .with_panel(_stat("check passed", "bool", _prom("tickml_consistency_check_passed"),
                          desc="Alert TickmlConsistencyCheckFailed when 0."))
        .with_panel(_stat("rows differing", "percentunit",
                          _prom("tickml_consistency_rows_differing_ratio")))
        .with_panel(_stat("worst feature mismatch share", "percentunit",
                          _prom("tickml_consistency_feature_mismatch_ratio_max")))
        .with_panel(_stat("rows on one side only", "short",
                          _prom("sum(tickml_consistency_one_side_rows)")))
        .with_panel(_stat("max abs(live - batch) score", "short",
                          _prom("tickml_consistency_score_max_abs_diff")))
        .with_panel(_stat("day checked", "dateTimeAsIso",
                          _prom("tickml_consistency_report_day_timestamp_seconds * 1000")))
        .with_panel(_series("matched and one-side rows", "short",
                            _prom("tickml_consistency_matched_rows", "matched"),
                            _prom("tickml_consistency_one_side_rows", "{{side}}", "B"),
                            width=24))
        .with_row(db.Row("Drift (drift_report, nightly)"))
        .with_panel(_stat("adversarial AUC", "short", _prom("tickml_drift_adversarial_auc"),
                          desc="Retrain flag above 0.7."))
        .with_panel(_stat("drifted features", "percentunit",
                          _prom("tickml_drift_drifted_features_ratio")))
        .with_panel(_stat("champion recent IC", "short", _prom("tickml_champion_recent_ic")))
        .with_panel(_stat("retrain recommended", "bool",
                          _prom("tickml_drift_retrain_recommended")))
        .with_panel(_stat("report skipped (no reference)", "bool",
                          _prom("tickml_drift_report_skipped")))
        .with_panel(_stat("day of the drift report", "dateTimeAsIso",
                          _prom("tickml_drift_report_day_timestamp_seconds * 1000")))
    )


DASHBOARDS = {"tickml-live": live_dashboard, "tickml-monitoring": monitoring_dashboard}


def render(name: str) -> str:
    """A dashboard's provisioning JSON (stable: sorted keys, 2-space indent; panel ids 1..n)."""
    built = DASHBOARDS[name]().build()
    for i, panel in enumerate(built.panels or [], start=1):
        panel.id_val = i
    return json.dumps(built, cls=JSONEncoder, indent=2, sort_keys=True)


def panel_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(panel title, "promql" | "sql", query) of every target of a rendered dashboard."""
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield panel["title"], "promql", target["expr"]
            elif "rawSql" in target:
                yield panel["title"], "sql", target["rawSql"]


def write(out: Path = OUT) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in DASHBOARDS:
        path = out / f"{name}.json"
        path.write_text(render(name) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in write(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT):
        sys.stdout.write(f"wrote {p}\n")
