"""Prometheus metrics of the live workers (one registry per process, served on 127.0.0.1).

Names follow Prometheus conventions: the ``tickml_`` namespace, base units in the name
(``_seconds``, ``_entries``, ``_ratio``), ``_total`` on counters, ``_timestamp_seconds`` on
Unix-time gauges; ``promtool check metrics`` lints a scrape in the tests. The README's
"Operations" table documents every metric with the rules and dashboard panels that read it
(``ops/prometheus/rules.yml``, ``ops/grafana/``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import numpy as np
from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

from tickml.errors import UsageError

log = logging.getLogger(__name__)
disable_created_metrics()  # no `_created` series per counter/histogram: half the series

_MS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
_STAGE = (0.0001, 0.0005, *_MS)

TICKS = Counter("tickml_ticks_total", "ticks processed", ["worker"])
DUPLICATES = Counter(
    "tickml_duplicate_ticks_total", "ticks dropped as (symbol, seq) repeats", ["worker"]
)
LAST_TICK = Gauge(
    "tickml_last_tick_timestamp_seconds",
    "Unix time (wall clock) the worker last processed ticks",
    ["worker"],
)
LAG = Gauge(
    "tickml_consumer_lag_entries",
    "bus entries not yet acknowledged (pending + undelivered)",
    ["worker", "shard"],
)
ERRORS = Counter("tickml_worker_errors_total", "errors a worker survived", ["worker", "kind"])
DEPENDENCY_UP = Gauge(
    "tickml_dependency_up",
    "1 when the worker's last call to a dependency succeeded",
    ["worker", "dependency"],
)
ONLINE_WRITE = Histogram(
    "tickml_online_write_seconds",
    "writing one boundary's rows into the Redis online store",
    ["view"],
    buckets=_MS,
)
ONLINE_READ = Histogram("tickml_online_read_seconds", "reading the universe's vectors", buckets=_MS)
CLOSE_TO_SIGNAL = Histogram(
    "tickml_close_to_signal_seconds", "interval close -> signals written", buckets=_MS
)
SCORER_STAGE = Histogram(
    "tickml_scorer_stage_seconds",
    "parts of close -> signal: wait (close -> scorer starts), read, models, decide, publish",
    ["stage"],
    buckets=_STAGE,
)
GATES = Counter("tickml_gate_decisions_total", "decisions per gate", ["gate"])
SCORED_VECTORS = Counter(
    "tickml_scored_vectors_total",
    "vectors the scorer read per boundary, by state: fresh (the boundary's), stale (older "
    "than max_feature_age, or newer than the boundary), missing (no vector)",
    ["state"],
)
FEATURE_AGE_MAX = Gauge(
    "tickml_feature_age_max_seconds",
    "oldest vector (boundary - its event time) among those present at the last scored boundary",
)
BREAKER_TRIPPED = Gauge(
    "tickml_circuit_breaker_tripped", "1 when the circuit breaker held the last scored boundary"
)
BREAKER_TRIPS = Counter(
    "tickml_circuit_breaker_trips_total", "boundaries at which the circuit breaker tripped"
)
STORE_WRITE = Histogram(
    "tickml_store_write_seconds", "one batched COPY into the tick store", buckets=_MS
)
FEED_RECONNECTS = Counter("tickml_feed_reconnects_total", "feed reconnections", ["feed"])
BOUNDARIES = Counter("tickml_boundaries_total", "sampling boundaries processed", ["worker"])
LAST_BOUNDARY = Gauge(
    "tickml_last_boundary_timestamp_seconds",
    "Unix time (wall clock) the worker last processed a boundary (its start time before any)",
    ["worker"],
)
LAST_BOUNDARY_EVENT = Gauge(
    "tickml_last_boundary_event_timestamp_seconds",
    "market time (Unix seconds) of the last boundary the worker processed",
    ["worker"],
)
REJECTED = Counter(
    "tickml_rejected_ticks_total",
    "ticks a bus consumer quarantined (tickml:bus:quarantine), by reject reason",
    ["worker", "reason"],
)
CLOCKS_REJECTED = Counter(
    "tickml_rejected_clock_markers_total",
    "clock markers a materializer refused (too far ahead of the data or the wall clock)",
    ["worker", "reason"],
)

VECTOR_STATES = ("fresh", "stale", "missing")


def ticks_processed(worker: str, n: int) -> None:
    """``n`` ticks done by ``worker`` (count and wall-clock time of the last)."""
    TICKS.labels(worker).inc(n)
    LAST_TICK.labels(worker).set(time.time())


def boundary_processed(worker: str, boundary_ns: int) -> None:
    """``worker`` finished the boundary closing at ``boundary_ns`` (UTC ns)."""
    BOUNDARIES.labels(worker).inc()
    LAST_BOUNDARY.labels(worker).set(time.time())
    LAST_BOUNDARY_EVENT.labels(worker).set(boundary_ns / 1e9)


def worker_started(
    worker: str, dependencies: tuple[str, ...] = ("redis",), boundaries: bool = True
) -> None:
    """Create the worker's series at start-up so they exist before the first event: the
    dependency gauges (up until a call fails), the error counters and, for workers that
    process boundaries, the last-boundary clock (start time: "no boundary for N minutes"
    counts from here)."""
    for dep in dependencies:
        DEPENDENCY_UP.labels(worker, dep).set(1)
        ERRORS.labels(worker, dep)
    if boundaries:
        LAST_BOUNDARY.labels(worker).set(time.time())
        BOUNDARIES.labels(worker)


def scorer_started() -> None:
    worker_started("scorer")
    for state in VECTOR_STATES:
        SCORED_VECTORS.labels(state)
    BREAKER_TRIPPED.set(0)
    BREAKER_TRIPS.inc(0)


def boundary_scored(
    boundary_ns: int,
    event_ns: np.ndarray,
    usable: np.ndarray,
    breaker_tripped: bool,
    gate_counts: Mapping[str, int],
    stages_s: Mapping[str, float],
) -> None:
    """The scorer's per-boundary metrics: vector states and ages, gates, breaker, stages.

    ``event_ns``: each vector's event time (-1 when missing); ``usable``: fresh enough to score.
    """
    present = event_ns >= 0
    n_missing = int((~present).sum())
    n_fresh = int(usable.sum())
    SCORED_VECTORS.labels("fresh").inc(n_fresh)
    SCORED_VECTORS.labels("stale").inc(int(present.sum()) - n_fresh)
    SCORED_VECTORS.labels("missing").inc(n_missing)
    if present.any():
        FEATURE_AGE_MAX.set(float((boundary_ns - event_ns[present].min()) / 1e9))
    for gate, count in gate_counts.items():
        GATES.labels(gate).inc(count)
    BREAKER_TRIPPED.set(1 if breaker_tripped else 0)
    if breaker_tripped:
        BREAKER_TRIPS.inc()
    for stage, seconds in stages_s.items():
        SCORER_STAGE.labels(stage).observe(max(seconds, 0.0))
    boundary_processed("scorer", boundary_ns)
INFERENCE_RUNTIME = Gauge(
    "tickml_inference_runtime",
    "1 for the runtime the scorer's loaded models use (tl2cgen compiled, or lightgbm)",
    ["worker", "runtime"],
)
VERSIONS_REFUSED = Counter(
    "tickml_model_versions_refused_total",
    "model versions a scorer refused to load (reason feature_config: trained under another "
    "feature configuration; load: unreadable)",
    ["worker", "reason"],
)
RUNTIME_FALLBACKS = Counter(
    "tickml_inference_runtime_fallbacks_total",
    "model versions loaded with LightGBM because the compiled runtime was unusable",
    ["worker", "reason"],
)
BREAKER_PARTIAL = Counter(
    "tickml_breaker_partial_total",
    "boundaries whose circuit breaker was decided without every scorer's part (one timed out)",
)


LEDGER_EXPOSURE = Gauge(
    "tickml_ledger_exposure",
    "shadow book exposure at the marks, notional units (kind: gross = sum |value|, net)",
    ["kind"],
)
LEDGER_PNL = Gauge(
    "tickml_ledger_pnl",
    "shadow book P&L of the local day, notional units (kind: day = net of costs, costs_day)",
    ["kind"],
)
LEDGER_VAR = Gauge("tickml_ledger_var", "shadow book value at risk (the risk limit's measure)")
LEDGER_POSITIONS = Gauge("tickml_ledger_positions", "open shadow positions")
LEDGER_RISK_GATES = Counter(
    "tickml_ledger_risk_gates_total",
    "the position book's outcome per signal (opened, scaled_*, refused_*, ...)",
    ["gate"],
)
LEDGER_FILLS = Counter("tickml_ledger_fills_total", "shadow fills by reason", ["reason"])


def serve(port: int | None, host: str = "127.0.0.1") -> None:
    """Start the /metrics endpoint (no-op when ``port`` is None)."""
    if port is None:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as exc:  # a busy port is the operator's to fix: one line, not a traceback
        raise UsageError(f"metrics port {host}:{port}: {exc.strerror or exc}") from None
    log.info("metrics on http://%s:%d/metrics", host, port)


def ledger_started() -> None:
    """The ledger's series exist from start-up (exposure and P&L 0, no gates or fills yet)."""
    from tickml.execution import EXIT_REASONS, RISK_GATES

    worker_started("ledger", ("redis", "postgres"))
    for kind in ("gross", "net"):
        LEDGER_EXPOSURE.labels(kind).set(0)
    for kind in ("day", "costs_day"):
        LEDGER_PNL.labels(kind).set(0)
    LEDGER_POSITIONS.set(0)
    for gate in RISK_GATES[1:]:
        LEDGER_RISK_GATES.labels(gate)
    for reason in ("signal", *EXIT_REASONS):
        LEDGER_FILLS.labels(reason)


def ledger_stepped(
    boundary_ns: int,
    gross: float,
    net: float,
    pnl_day: float,
    costs_day: float,
    var: float | None,
    positions: int,
    gates: Mapping[str, int],
    fill_reasons: list[str],
) -> None:
    """The ledger's per-boundary metrics."""
    LEDGER_EXPOSURE.labels("gross").set(gross)
    LEDGER_EXPOSURE.labels("net").set(net)
    LEDGER_PNL.labels("day").set(pnl_day)
    LEDGER_PNL.labels("costs_day").set(costs_day)
    LEDGER_POSITIONS.set(positions)
    if var is not None:
        LEDGER_VAR.set(var)
    for gate, count in gates.items():
        LEDGER_RISK_GATES.labels(gate).inc(count)
    for reason in fill_reasons:
        LEDGER_FILLS.labels(reason).inc()
    boundary_processed("ledger", boundary_ns)
