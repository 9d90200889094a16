"""Shadow ledger (paper trading on live data): every scorer's decisions -> THE position book.

The scorer commits, with its state, one record per boundary to ``<prefix>:decisions``: its
fresh rows (the symbols whose vector is the boundary's, sorted), their decision, gate, score,
market columns (mid, spread, bid and ask size), last return and recent volatility, and the bus
shards it owns. The ledger, its own worker, steps :class:`tickml.execution.PositionBook` with a
boundary once the records cover every shard: the book needs the whole universe (exposure caps
and the risk limit are portfolio-wide), so with the universe split across several scorers it
aggregates their records exactly (the rows sorted by symbol, as the backtest orders them). A
boundary still incomplete ``ledger_wait_s`` after a later one arrived is stepped with what came
(counted, logged); a record arriving after its boundary was stepped is dropped (counted).

End of day: at the session's last boundary (the feature calendar's close; the day's end without
a session) every row closes its position, and the positions of symbols without an executable row
there close at their last mark (see :mod:`tickml.execution`). Positions still open when a new
day's first boundary arrives (the ledger was down at the close) close the same way first.

Persistence: fills, open positions, the boundary's equity row and the day's totals go to
PostgreSQL in one idempotent transaction (:mod:`live.shadow_store`), then the book (an ``.npz``
of numeric arrays), the last boundary and the stream position to Redis in one command. A ledger
killed at any point steps the unfinished boundary again from the stored state: nothing is lost
or written twice. PostgreSQL unavailable: the ledger waits (backoff) without advancing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

import numpy as np
import psycopg
import redis

from live import metrics
from live.config import LiveConfig
from live.ledger_records import Rows
from live.shadow_store import ShadowStore
from live.sinks import pg_ts as ts
from tickml.execution import EXIT_REASONS, OPEN, RISK_GATES, ExecutionConfig, PositionBook, Step
from tickml.features import FeatureConfig
from tickml.market import EPOCH

log = logging.getLogger(__name__)

_REASONS = np.asarray(("signal", *EXIT_REASONS), dtype=object)


class ShadowLedger:
    """The book, its persistence and its metrics (see the module doc)."""

    def __init__(
        self,
        config: LiveConfig,
        execution: ExecutionConfig,
        feature_config: FeatureConfig | None = None,
        client: redis.Redis | None = None,
        store: ShadowStore | None = None,
    ) -> None:
        self.cfg, self.exe = config, execution
        self.fc = feature_config or FeatureConfig()
        self.r = client or redis.Redis.from_url(config.redis_url)
        self.store = store
        data = self.r.hgetall(config.key("ledger", "state"))
        self.book = PositionBook(execution)
        self.meta: dict[str, Any] = {
            "ledger_id": uuid.uuid4().hex[:16], "last_b": -1, "stream_id": "0-0",
            "day": self._day_totals(None),
        }  # fmt: skip
        if data:
            stored = PositionBook.from_bytes(data[b"book"])
            meta = json.loads(data[b"meta"])
            if stored.cfg == execution:
                self.book, self.meta = stored, meta
            elif stored.open_positions():
                raise SystemExit(
                    "the shadow ledger's stored book has open positions under another "
                    "execution config: restart it with its config, or after the close"
                )
            else:  # flat: a new ledger (own id) under the new config, from the same stream
                self.meta.update(last_b=meta["last_b"], stream_id=meta["stream_id"])
                log.warning(
                    "execution config changed: new ledger",
                    extra={"ledger_id": self.meta["ledger_id"]},
                )

    @staticmethod
    def _day_totals(day: str | None) -> dict[str, Any]:
        return {
            "day": day, "pnl": 0.0, "costs": 0.0, "n_fills": 0, "n_trades": 0,
            "traded_value": 0.0, "max_gross": 0.0,
        }  # fmt: skip

    @property
    def last_b(self) -> int:
        return int(self.meta["last_b"])

    def last_boundary_of_day(self, b: int) -> int:
        _, end, _, close = self.fc.market.day_of(b)
        return close if (self.fc.has_session and self.fc.session_only) else end

    def step(self, rows: Rows, stream_id: str) -> dict[str, Any]:
        """Step the book with one boundary, persist, update the metrics; a summary."""
        b, local = rows.b, self.fc.market.local_day(rows.b)
        day = local.isoformat()
        steps: list[tuple[Step, np.ndarray]] = []
        versions = rows.version
        if self.meta["day"]["day"] not in (None, day):
            steps.append((self.book.flatten(), np.full(0, "", dtype=object)))  # missed close
            self.meta["day"] = self._day_totals(day)
        self.meta["day"]["day"] = day
        closing = b >= self.last_boundary_of_day(b)
        eod = np.full(len(rows.symbols), closing)
        f = rows.f
        st = self.book.step(
            b, rows.symbols, rows.decision, f["mid"], f["spread"], vol=f["vol"],
            strength=f["score"], returns=f["ret"], bid_size=f["bid_size"],
            ask_size=f["ask_size"], eod=eod, day=(local - EPOCH).days,
        )  # fmt: skip
        steps.append((st, versions))
        if closing:
            steps.append((self.book.flatten(), np.full(0, "", dtype=object)))
        fills = [r for s, v in steps for r in self._fill_rows(s, v, rows, b)]
        gross, net = self.book.exposure()
        pnl = float(sum(float(s.pnl.sum()) for s, _ in steps))
        gates = {
            g: int(c)
            for g, c in zip(
                RISK_GATES, np.bincount(st.gate, minlength=len(RISK_GATES)), strict=True
            )
            if c and g != "none"
        }  # noqa: E501
        totals = self.meta["day"]
        totals["pnl"] += pnl
        totals["costs"] += float(sum(r[8] for r in fills))
        totals["n_fills"] += len(fills)
        totals["n_trades"] += sum(1 for r in fills if r[2] == "close")
        totals["traded_value"] += float(sum(s.traded_value for s, _ in steps))
        totals["max_gross"] = max(totals["max_gross"], gross)
        model_version = str(versions[0]) if len(versions) else ""
        equity = {
            "boundary": ts(b), "day": day, "pnl": pnl, "gross": gross, "net": net,
            "var": self.book.var(), "positions": int((self.book.s["side"] != 0).sum()),
            "risk_gates": gates, "model_version": model_version,
        }  # fmt: skip
        if self.store is not None:
            daily = {**totals, "last_boundary": ts(b), "execution": self.exe.model_dump_json()}
            self.store.write_boundary(
                self.meta["ledger_id"], fills, self._position_rows(b), equity, daily
            )
        self.meta.update(last_b=b, stream_id=stream_id)
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(
            self.cfg.key("ledger", "state"),
            mapping={"book": self.book.to_bytes(), "meta": json.dumps(self.meta)},
        )
        pipe.set(self.cfg.key("ledger", "last"), b)
        pipe.execute()
        self._observe(b, equity, totals, gates, fills)
        return {"b": b, "fills": len(fills), "pnl": pnl, "gross": gross, "net": net}

    def _fill_rows(self, st: Step, versions: np.ndarray, rows: Rows, b: int) -> list[tuple]:
        if not st.fills["slot"]:
            return []
        f = {k: np.concatenate(v) for k, v in st.fills.items()}
        closed = {}
        if st.trades["slot"]:
            t = {k: np.concatenate(st.trades[k]) for k in ("pos_id", "gross", "costs")}
            closed = {
                int(p): (float(g), float(g - c))
                for p, g, c in zip(t["pos_id"], t["gross"], t["costs"], strict=True)
            }  # noqa: E501
        where = {s: i for i, s in enumerate(rows.symbols)}
        out = []
        for i in range(f["slot"].size):
            sym = self.book.symbols[int(f["slot"][i])]
            pid = int(f["pos_id"][i])
            is_open = int(f["reason"][i]) == OPEN
            gross, net = (None, None) if is_open else closed.get(pid, (None, None))
            j = where.get(sym)
            version = str(versions[j]) if j is not None and j < len(versions) else ""
            out.append((
                self.meta["ledger_id"], pid, "open" if is_open else "close", ts(int(f["ts"][i])),
                sym, int(f["side"][i]), float(f["qty"][i]), float(f["price"][i]),
                float(f["cost"][i]), float(f["slippage"][i]), _REASONS[int(f["reason"][i]) + 1],
                float(f["value"][i]), gross, net, version, ts(b),
            ))  # fmt: skip
        return out

    def _position_rows(self, b: int) -> list[tuple]:
        return [
            (
                self.meta["ledger_id"],
                p.symbol,
                p.position_id,
                p.side,
                p.qty,
                p.value,
                ts(p.entry_ts),
                p.entry_mid,
                p.mark,
                ts(p.exit_due),
                _opt(p.stop_px),
                _opt(p.take_px),
                ts(b),
            )  # fmt: skip
            for p in self.book.open_positions()
        ]

    def _observe(self, b: int, equity: dict, totals: dict, gates: dict, fills: list) -> None:
        metrics.ledger_stepped(
            b, equity["gross"], equity["net"], totals["pnl"], totals["costs"], equity["var"],
            equity["positions"], gates, [row[10] for row in fills],
        )  # fmt: skip


def _opt(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def run_ledger(
    config: LiveConfig,
    stop: threading.Event,
    execution: ExecutionConfig,
    feature_config: FeatureConfig | None = None,
) -> None:
    """Follow ``<prefix>:decisions`` until ``stop``; step each boundary once, in order."""
    client = redis.Redis.from_url(config.redis_url)
    store = ShadowStore(config.pg_url) if config.pg_url else None
    metrics.ledger_started()
    ledger: ShadowLedger | None = None
    pending: dict[int, list[tuple[str, Rows]]] = {}
    first_seen: dict[int, float] = {}
    everything = set(range(config.shards))
    backoff = 0.1
    while not stop.is_set():
        try:
            if ledger is None:
                ledger = ShadowLedger(config, execution, feature_config, client, store)
                last_id = ledger.meta["stream_id"]
                client.hset(config.key("ready"), "ledger", time.time_ns())
            resp = client.xread({config.key("decisions"): last_id}, block=100, count=100)
            for _, entries in resp or []:
                for eid, fields in entries:
                    last_id = eid.decode()
                    rows = Rows.decode(fields)
                    if rows.b <= ledger.last_b:
                        metrics.ERRORS.labels("ledger", "late_record").inc()
                        continue
                    pending.setdefault(rows.b, []).append((last_id, rows))
                    first_seen.setdefault(rows.b, time.monotonic())
            for b in sorted(pending):
                parts = pending[b]
                covered = set().union(*(r.shards for _, r in parts))
                later = any(x > b for x in pending)
                waited = time.monotonic() - first_seen[b] > config.ledger_wait_s
                if not (covered >= everything or (later and waited)):
                    break
                if not covered >= everything:
                    metrics.ERRORS.labels("ledger", "incomplete_boundary").inc()
                    log.warning("boundary stepped without every shard", extra={"b": b})
                del pending[b], first_seen[b]
                rest = [eid for parts_ in pending.values() for eid, _ in parts_]
                # resume point: after every entry of the stepped boundaries, before any pending
                resume = _before(min(rest, key=_id_key)) if rest else last_id
                ledger.step(Rows.merge([r for _, r in parts]), resume)
            backoff = 0.1
            for dependency in ("redis", "postgres") if store is not None else ("redis",):
                metrics.DEPENDENCY_UP.labels("ledger", dependency).set(1)
        except (redis.ConnectionError, redis.TimeoutError, OSError, psycopg.Error) as exc:
            _outage("postgres" if isinstance(exc, psycopg.Error) else "redis", exc, stop, backoff)
            backoff = min(backoff * 2, 5.0)
            ledger, pending, first_seen = None, {}, {}  # re-read from the stored state
    if store is not None:
        store.close()


def _id_key(eid: str) -> tuple[int, int]:
    ms, _, seq = eid.partition("-")
    return int(ms), int(seq or 0)


def _before(eid: str) -> str:
    """The stream id just before ``eid`` (XREAD returns entries after the id it is given)."""
    ms, seq = _id_key(eid)
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-18446744073709551615"


def _outage(dependency: str, exc: Exception, stop: threading.Event, backoff: float) -> None:
    metrics.ERRORS.labels("ledger", dependency).inc()
    metrics.DEPENDENCY_UP.labels("ledger", dependency).set(0)
    log.warning(
        f"{dependency} unavailable, retrying",
        extra={"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__},
    )
    stop.wait(backoff)
