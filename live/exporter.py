"""The reports exporter: the offline monitoring results as Prometheus metrics.

``python -m live exporter --metrics-port P [--reports DIR]`` serves, on 127.0.0.1:P, the latest
day's online/offline consistency report (``<reports>/consistency/<day>.json``, written by the
``online_consistency`` asset) and drift report (``<reports>/drift/<day>.json``, ``drift_report``)
as gauges, read from the files at every scrape (nothing cached, nothing to restart after a
nightly run). Prometheus alerts on them (``TickmlConsistencyCheckFailed``) and Grafana plots
them; the batch jobs stay free of a push gateway. A value a report does not have (a skipped
drift report, no signals to compare) is NaN.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

_DAY_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.json$")
NAN = float("nan")


def latest_report(folder: Path) -> tuple[dt.date, dict[str, Any], float] | None:
    """The newest day's report in ``folder`` (by the day in its name), with the file's mtime;
    None when there is none or it cannot be read."""
    days = sorted((m.group(1), p) for p in folder.glob("*.json") if (m := _DAY_FILE.match(p.name)))
    if not days:
        return None
    day, path = days[-1]
    try:
        return dt.date.fromisoformat(day), json.loads(path.read_text("utf-8")), path.stat().st_mtime
    except (OSError, ValueError) as exc:
        log.warning("unreadable report", extra={"path": str(path), "error": str(exc)})
        return None


def _num(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        return NAN
    return f


def _day_ts(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()


def _gauge(name: str, doc: str, value: float, labels: dict[str, str] | None = None):
    g = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    g.add_metric(list((labels or {}).values()), value)
    return g


class ReportsCollector(Collector):
    """Gauges of the latest consistency and drift reports under ``reports_dir``."""

    def __init__(self, reports_dir: str | Path) -> None:
        self.root = Path(reports_dir)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._consistency()
        yield from self._drift()

    def _consistency(self) -> Iterator[GaugeMetricFamily]:
        found = latest_report(self.root / "consistency")
        if found is None:
            return
        day, rep, mtime = found
        f = rep.get("features") or {}
        s = rep.get("scores") or {}
        matched = _num(f.get("n_matched"))
        p = "tickml_consistency_"
        yield _gauge(
            p + "check_passed", "1 when the latest day's check passed", _num(rep.get("passed"))
        )
        yield _gauge(
            p + "report_day_timestamp_seconds", "the day checked (UTC midnight)", _day_ts(day)
        )
        yield _gauge(p + "report_written_timestamp_seconds", "when the report was written", mtime)
        yield _gauge(
            p + "rows_differing_ratio",
            "matched rows with any feature (or last input tick) differing",
            _num(f.get("n_rows_differing")) / matched if matched else NAN,
        )
        yield _gauge(
            p + "feature_mismatch_ratio_max",
            "the largest per-feature share of matched rows that differ",
            _num(f.get("max_mismatch_share")),
        )
        one = GaugeMetricFamily(
            p + "one_side_rows", "rows present on one side only", labels=["side"]
        )
        one.add_metric(["batch_only"], _num(f.get("n_batch_only")))
        one.add_metric(["online_only"], _num(f.get("n_online_only")))
        yield one
        yield _gauge(p + "matched_rows", "rows on both sides", matched)
        yield _gauge(
            p + "score_max_abs_diff",
            "largest |live score - batch score| (NaN: no signals compared)",
            _num(s.get("max_abs_diff")) if s.get("n_compared") else NAN,
        )

    def _drift(self) -> Iterator[GaugeMetricFamily]:
        found = latest_report(self.root / "drift")
        if found is None:
            return
        day, rep, _ = found
        p = "tickml_drift_"
        yield _gauge(
            p + "report_day_timestamp_seconds", "the day of the latest drift report", _day_ts(day)
        )
        yield _gauge(
            p + "report_skipped",
            "1 when the latest report was skipped (no reference)",
            float(rep.get("status") == "skipped"),
        )
        yield _gauge(
            p + "adversarial_auc", "adversarial validation AUC", _num(rep.get("adversarial_auc"))
        )
        yield _gauge(
            p + "drifted_features_ratio",
            "Evidently's share of drifted features",
            _num(rep.get("drifted_share")),
        )
        yield _gauge(
            p + "retrain_recommended",
            "1 when a drift threshold was crossed",
            _num(rep.get("retrain")),
        )
        yield _gauge(
            "tickml_champion_recent_ic",
            "the champion's recent out-of-sample IC",
            _num(rep.get("recent_ic")),
        )


def run_exporter(reports_dir: str | Path, stop: threading.Event) -> None:
    """Register the collector (the /metrics endpoint is served by ``live.metrics.serve``) and
    wait for ``stop``."""
    REGISTRY.register(ReportsCollector(reports_dir))
    log.info("exporting reports", extra={"reports": str(reports_dir)})
    stop.wait()
