"""Tick writer: bus -> PostgreSQL tick store, exactly once.

At-least-once delivery (a consumer group; entries are acknowledged only after the COPY that
holds their ticks committed) plus :meth:`TickStore.append`'s ``ON CONFLICT (symbol, ts, seq)
DO NOTHING`` gives each tick exactly once in the store, across crashes, restarts and outages.

Leader ticks are broadcast to every shard; the writer keeps a tick only from its symbol's
owner shard. Redis or PostgreSQL being unavailable never stops the writer: it logs a structured
warning, counts the error, backs off (0.1 s doubling to 5 s) and retries the same entries.

Run: ``python -m live.writer --consumer writer-0`` (config from the environment:
``TICKML_REDIS_URL``, ``TICKML_PG_URL``); SIGTERM / SIGINT stop it gracefully.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import psycopg
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from live import logs, metrics
from live.bus import BusEntry, TickBatch
from live.config import LiveConfig
from live.consume import BusConsumer
from tickml.errors import EXIT_USAGE, OneLineArgumentParser, one_line
from tickml.redact import redact
from tickml.settings import Settings
from tickml.store.postgres import TickStore
from tickml.validation import DEFAULT_RULES, ValidationConfig

log = logging.getLogger(__name__)

WORKER = "writer"
BACKOFF_START_S, BACKOFF_MAX_S = 0.1, 5.0
_DATA_ERRORS = (ValueError, OverflowError, psycopg.DataError)
T = TypeVar("T")


class _Unavailable(Exception):
    """A dependency call failed (already logged and counted)."""


class TickWriter:
    """Consumes the tick bus (group ``group``) and appends the ticks to the tick store."""

    def __init__(
        self,
        config: LiveConfig,
        consumer: str = "writer-0",
        shards: Sequence[int] | None = None,
        group: str = "writer",
        *,
        block_ms: int = 100,
        count: int = 64,
        claim_idle_ms: int = 30_000,
        flush_timeout_s: float = 10.0,
        rules: ValidationConfig = DEFAULT_RULES,
    ) -> None:
        if not config.pg_url:
            raise ValueError("the tick writer needs a PostgreSQL URL (TICKML_PG_URL)")
        self.config, self.consumer, self.group = config, consumer, group
        self.shards = list(range(config.shards)) if shards is None else list(shards)
        self._bus_args = {"block_ms": block_ms, "count": count, "claim_idle_ms": claim_idle_ms}
        self.flush_timeout_s = flush_timeout_s
        self.rules = rules
        self.store = TickStore(config.pg_url)
        self._client: redis.Redis | None = None
        self._bus: BusConsumer | None = None
        self._held: list[BusEntry] = []  # read, not yet committed
        self._committed: list[BusEntry] = []  # committed, not yet acknowledged
        self._owner: dict[str, int] = {}
        self._delay: dict[str, float] = {}  # dependency -> current back-off while it is down
        self._down_since: dict[str, float] = {}
        self._sleeper = threading.Event()  # back-off sleeps end early when this is set
        self._next_lag = 0.0
        self.inserted_total = 0

    # --------------------------------------------------------------------- dependencies

    def _consumer(self) -> BusConsumer:
        if self._bus is None:
            self._client = redis.Redis.from_url(
                self.config.redis_url,
                socket_connect_timeout=2.0,
                socket_timeout=self._bus_args["block_ms"] / 1000 + 5.0,
                retry=Retry(NoBackoff(), 0),  # errors surface here: see BusConsumer.read
            )
            self._bus = BusConsumer(
                self._client,
                self.config,
                self.group,
                self.consumer,
                self.shards,
                worker=WORKER,
                rules=self.rules,
                **self._bus_args,
            )
        return self._bus

    def _call(self, dep: str, fn: Callable[[], T]) -> T:
        errors: tuple[type[BaseException], ...] = (
            (redis.RedisError,) if dep == "redis" else (psycopg.Error,)
        )
        try:
            out = fn()
        except Exception as exc:
            if isinstance(exc, _DATA_ERRORS) or not isinstance(exc, errors):
                raise
            self._failed(dep, exc)
            raise _Unavailable(dep) from exc
        if dep in self._down_since:
            down = time.monotonic() - self._down_since.pop(dep)
            log.info("%s recovered", dep, extra={"dependency": dep, "outage_s": round(down, 3)})
        self._delay.pop(dep, None)
        metrics.DEPENDENCY_UP.labels(WORKER, dep).set(1)
        return out

    def _failed(self, dep: str, exc: BaseException) -> None:
        metrics.ERRORS.labels(WORKER, dep).inc()
        metrics.DEPENDENCY_UP.labels(WORKER, dep).set(0)
        self._down_since.setdefault(dep, time.monotonic())
        delay = min(self._delay.get(dep, BACKOFF_START_S / 2) * 2, BACKOFF_MAX_S)
        self._delay[dep] = delay
        url = self.config.redis_url if dep == "redis" else self.config.pg_url
        log.warning(
            "%s unavailable, retrying in %.1f s",
            dep,
            delay,
            extra={
                "dependency": dep,
                "error": f"{type(exc).__name__}: {exc}".strip(),
                "url": redact(url),
                "retry_in_s": delay,
                "held_entries": len(self._held),
            },
        )
        if dep == "redis":
            self._drop_redis()
        else:
            self.store.close()
        self._sleeper.wait(delay)

    def _drop_redis(self) -> None:
        if self._client is not None:
            try:
                self._client.close()
            except redis.RedisError:
                pass
        self._client = self._bus = None

    # ------------------------------------------------------------------------- work

    def _owned(self, entries: Sequence[BusEntry]) -> pd.DataFrame:
        """The ticks of ``entries`` whose symbol's owner shard is the entry's shard."""
        parts: list[TickBatch] = []
        for e in entries:
            if e.batch is None:
                continue
            codes, uniques = pd.factorize(e.batch.symbols)
            own = np.fromiter(
                (self._owner_of(u) == e.shard for u in uniques), dtype=bool, count=len(uniques)
            )
            parts.append(e.batch if own.all() else e.batch.take(own[codes]))
        return TickBatch.concat(parts).to_frame()

    def _owner_of(self, symbol: str) -> int:
        s = self._owner.get(symbol)
        if s is None:
            s = self._owner[symbol] = self.config.shard_of(symbol)
        return s

    def _append(self, frame: pd.DataFrame) -> int:
        if frame.empty:
            return 0
        t0 = time.perf_counter()
        inserted = self._call("postgres", lambda: self.store.append(frame))
        metrics.STORE_WRITE.observe(time.perf_counter() - t0)
        metrics.ticks_processed(WORKER, len(frame))
        metrics.DUPLICATES.labels(WORKER).inc(len(frame) - inserted)
        return inserted

    def _commit_held(self) -> int:
        """Append the held entries' ticks; an entry whose ticks cannot be stored (bad data) is
        dead-lettered alone. Raises :class:`_Unavailable` (entries stay held)."""
        try:
            inserted = self._append(self._owned(self._held))
        except _DATA_ERRORS:
            inserted = 0
            for e in list(self._held):
                try:
                    inserted += self._append(self._owned([e]))
                except _DATA_ERRORS as exc:
                    self._dead_letter(e, f"not storable: {type(exc).__name__}: {exc}")
        self._committed += self._held
        self._held = []
        return inserted

    def _dead_letter(self, entry: BusEntry, reason: str) -> None:
        bad: list[tuple[int, bytes, dict[bytes, bytes] | None, str]]
        bad = [(entry.shard, entry.id, None, reason)]
        self._call("redis", lambda: self._consumer().dead_letter(bad))
        self._held.remove(entry)

    def step(self, read: bool = True) -> int:
        """Read, store and acknowledge one batch of entries; the ticks inserted (0 on a
        dependency failure, after the back-off: the same entries are retried next time)."""
        inserted = 0
        try:
            if self._committed:
                self._call("redis", lambda: self._consumer().ack(self._committed))
                self._committed = []
            if not self._held and read:
                self._held = self._call("redis", lambda: self._consumer().read())
            if self._held:
                inserted = self._commit_held()
                self.inserted_total += inserted
                self._call("redis", lambda: self._consumer().ack(self._committed))
                self._committed = []
            if time.monotonic() >= self._next_lag:
                self._next_lag = time.monotonic() + 1.0
                for shard, lag in self._call("redis", lambda: self._consumer().lag()).items():
                    metrics.LAG.labels(WORKER, str(shard)).set(lag)
        except _Unavailable:
            pass
        return inserted

    def run(self, stop: threading.Event) -> None:
        """Loop :meth:`step` until ``stop`` is set; then finish the current batch and return."""
        self._sleeper = stop
        metrics.worker_started(WORKER, ("redis", "postgres"), boundaries=False)
        log.info(
            "writer started",
            extra={
                "consumer": self.consumer,
                "group": self.group,
                "shards": ",".join(map(str, self.shards)),
            },
        )
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 - a worker survives what it did not foresee
                log.exception("writer step failed", extra={"held": len(self._held)})
                metrics.ERRORS.labels(WORKER, "internal").inc()
                stop.wait(BACKOFF_MAX_S)
        self.flush()
        log.info(
            "writer stopped", extra={"consumer": self.consumer, "inserted": self.inserted_total}
        )

    def flush(self) -> None:
        """Store and acknowledge what is held (no new reads), for up to ``flush_timeout_s``."""
        self._sleeper = threading.Event()
        deadline = time.monotonic() + self.flush_timeout_s
        while (self._held or self._committed) and time.monotonic() < deadline:
            self.step(read=False)
        if self._held or self._committed:
            log.warning(
                "stopping with entries not acknowledged: they will be redelivered",
                extra={"held": len(self._held), "committed": len(self._committed)},
            )
        self.close()

    def close(self) -> None:
        self.store.close()
        self._drop_redis()


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineArgumentParser(prog="python -m live.writer", description=__doc__.split("\n")[0])
    p.add_argument("--consumer", default="writer-0", help="consumer name (stable across restarts)")
    p.add_argument("--group", default="writer", help="consumer group")
    p.add_argument("--shards", default=None, help="comma-separated shard ids (default: all)")
    p.add_argument(
        "--claim-idle-ms",
        type=int,
        default=30_000,
        help="take over other consumers' entries pending longer than this",
    )
    args = p.parse_args(argv)
    settings = Settings.from_env()
    try:
        config = LiveConfig.from_settings(settings)
        shards = [int(s) for s in args.shards.split(",")] if args.shards else None
        bad = [s for s in shards or [] if not 0 <= s < config.shards]
        if bad:
            raise ValueError(f"--shards {bad}: shards are 0..{config.shards - 1}")
        writer = TickWriter(
            config, args.consumer, shards, args.group, claim_idle_ms=args.claim_idle_ms
        )
        metrics.serve(config.metrics_port)
    except ValueError as exc:  # pydantic, a bad shard list, no TICKML_PG_URL, a busy port
        sys.stderr.write(f"python -m live.writer: error: {one_line(exc)}\n")
        return EXIT_USAGE
    logs.setup(WORKER, settings.log_level or "INFO")
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    writer.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
