"""Prometheus metrics of the live workers (one registry per process, served on 127.0.0.1)."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

_MS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

TICKS = Counter("tickml_ticks_total", "ticks processed", ["worker"])
DUPLICATES = Counter(
    "tickml_duplicate_ticks_total", "ticks dropped as (symbol, seq) repeats", ["worker"]
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
GATES = Counter("tickml_gate_decisions_total", "decisions per gate", ["gate"])
STORE_WRITE = Histogram(
    "tickml_store_write_seconds", "one batched COPY into the tick store", buckets=_MS
)
FEED_RECONNECTS = Counter("tickml_feed_reconnects_total", "feed reconnections", ["feed"])
BOUNDARIES = Counter("tickml_boundaries_total", "sampling boundaries processed", ["worker"])


def serve(port: int | None, host: str = "127.0.0.1") -> None:
    """Start the /metrics endpoint (no-op when ``port`` is None)."""
    if port is None:
        return
    start_http_server(port, addr=host)
    log.info("metrics on http://%s:%d/metrics", host, port)
