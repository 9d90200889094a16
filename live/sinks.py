"""PostgreSQL sink of the scorer: signals (batched COPY, idempotent); the shadow ledger writes
its own tables (:mod:`live.shadow_store`).

PostgreSQL unavailable: rows wait in a bounded in-memory buffer and go out with the next
successful write; the scorer never blocks on the database (signals already left on Redis).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from live import metrics
from tickml.decision import Decisions

log = logging.getLogger(__name__)


@dataclass
class Scored:
    """One boundary's outcome (what the scorer published)."""

    boundary_ns: int
    symbols: list[str]
    decisions: Decisions
    p_short: np.ndarray
    p_long: np.ndarray
    feature_ts: np.ndarray
    model_version: str | None
    latency_s: float
    extra: dict[str, float] = field(default_factory=dict)
    #: the direction model's prediction per symbol (NaN: no direction model, or not scored)
    direction: np.ndarray | None = None


DDL = """
CREATE TABLE IF NOT EXISTS live_signals (
    symbol text NOT NULL,
    event_timestamp timestamptz NOT NULL,
    model_version text NOT NULL DEFAULT '',
    p_short double precision[],
    p_long double precision[],
    score double precision,
    long_score double precision,
    decision text NOT NULL,
    gate text NOT NULL,
    feature_ts timestamptz,
    latency_ms double precision,
    written_at timestamptz NOT NULL DEFAULT now(),
    direction double precision,
    PRIMARY KEY (symbol, event_timestamp, model_version)
);
-- the direction model's prediction (NULL: none); added to tables made before it existed
ALTER TABLE live_signals ADD COLUMN IF NOT EXISTS direction double precision;
"""

_SIG_COLS = (
    "symbol",
    "event_timestamp",
    "model_version",
    "p_short",
    "p_long",
    "score",
    "long_score",
    "decision",
    "gate",
    "feature_ts",
    "latency_ms",
    "direction",
)


def _f(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)


def pg_ts(ns: int) -> Any:
    """UTC datetime of int ns (PostgreSQL keeps microseconds)."""
    import pandas as pd

    return pd.Timestamp(int(ns) // 1000 * 1000, tz="UTC").to_pydatetime()  # PG keeps us


class PgSink:
    """A PostgreSQL connection opened on first use, creating its tables (``ddl``) then."""

    ddl = DDL

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: psycopg.Connection | None = None

    def _ready(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, connect_timeout=3)
            with self._conn.transaction():
                self._conn.execute(self.ddl)
        return self._conn

    def _disconnect(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None


class SignalStore(PgSink):
    def __init__(self, url: str, buffer_rows: int = 1_000_000) -> None:
        super().__init__(url)
        self._pending: dict[str, deque[tuple]] = {
            "live_signals": deque(maxlen=buffer_rows),
        }

    def close(self) -> None:
        self.flush()
        self._disconnect()

    def write(self, res: Scored) -> None:
        d = res.decisions
        names, gates = d.decision_names, d.gate_names
        ts = pg_ts(res.boundary_ns)
        version = res.model_version or ""
        rows = self._pending["live_signals"]
        direction = res.direction
        if direction is None:
            direction = np.full(len(res.symbols), np.nan)
        for i, s in enumerate(res.symbols):
            fts = int(res.feature_ts[i])
            rows.append(
                (
                    s,
                    ts,
                    version,
                    [_f(v) for v in res.p_short[i]],
                    [_f(v) for v in res.p_long[i]],
                    _f(d.score[i]),
                    _f(d.long_score[i]),
                    str(names[i]),
                    str(gates[i]),
                    pg_ts(fts) if fts >= 0 else None,
                    res.latency_s * 1e3,
                    _f(direction[i]),
                )
            )
        self.flush()

    def flush(self) -> bool:
        """Send buffered rows; False (rows kept) when PostgreSQL is unavailable."""
        if not any(self._pending.values()):
            return True
        try:
            conn = self._ready()
            with conn.transaction(), conn.cursor() as cur:
                for table, cols in (("live_signals", _SIG_COLS),):
                    rows = self._pending[table]
                    if not rows:
                        continue
                    cur.execute(
                        f"CREATE TEMP TABLE IF NOT EXISTS stage_{table} "
                        f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                    )
                    collist = ", ".join(cols)
                    with cur.copy(f"COPY stage_{table} ({collist}) FROM STDIN") as cp:
                        for row in rows:
                            cp.write_row(row)
                    cur.execute(
                        f"INSERT INTO {table} ({collist}) SELECT {collist} "
                        f"FROM stage_{table} ON CONFLICT DO NOTHING"
                    )
            for rows in self._pending.values():
                rows.clear()
            metrics.DEPENDENCY_UP.labels("scorer", "postgres").set(1)
            return True
        except psycopg.Error as exc:
            metrics.ERRORS.labels("scorer", "postgres").inc()
            metrics.DEPENDENCY_UP.labels("scorer", "postgres").set(0)
            log.warning(
                "postgres unavailable; signals buffered",
                extra={
                    "error": str(exc).splitlines()[0] if str(exc) else "",
                    "buffered": sum(len(r) for r in self._pending.values()),
                },
            )
            if self._conn is not None:
                self._conn.close()
            self._conn = None
            return False
