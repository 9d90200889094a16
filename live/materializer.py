"""Materializer: tick bus -> streaming features -> Feast's Redis online store (+ offline log).

One :class:`ShardMaterializer` per bus shard (a process may own several): its own
:class:`~tickml.features.StreamingFeatureEngine` (the batch definitions, computed incrementally),
its own (symbol, seq) de-duplication and its own checkpoint. At each sampling boundary (a clock
marker from the feed, or a tick past the boundary when a feed sent none) it

1. snapshots the rows of the boundary,
2. writes the packed model vectors, sized to the model: for the registry champion's layout and
   every layout a scorer declared (:mod:`live.layout`: the champion's features + ``ret_b1``,
   then the market columns of :mod:`tickml.execution.market`: ``mid``, ``spread``, ``bid_size``,
   ``ask_size``), each into its own Feast view, one pipeline, the scorer's input,
3. announces the boundary on ``<prefix>:boundaries`` with the champion's version and the
   layouts written (the scorer waits for every shard, and switches models on it),
4. writes every feature into Feast's ``tick_features`` view (optional) and the offline log
   (``<lake>/online_log/date=D/shard=S/<first>-<last>.parquet``, tickml.lake, rewritten
   identically after a replay). Both are off the close -> signals path: the log is buffered
   until the checkpoint, and the ``tick_features`` rows of a boundary are written once every
   scorer finished that boundary (``<prefix>:<scorer>:last``), after ``view_delay_s`` at the
   latest, before the next boundary and before a checkpoint (at 5,000 symbols this 214-field
   write competed for the 2 cores with the scorer's read and inference),
5. every ``checkpoint_every`` boundaries (or 1,000 entries) stores the engine state, the
   de-duplication state and the last boundary in ``<prefix>:ckpt:<shard>`` and only then
   acknowledges the bus entries; like step 4 it waits until the scorers finished the boundary
   (or ``view_delay_s``): at 5,000 symbols a checkpoint (engine state, the log's Parquet
   files, one large Redis write) made the scorer's read of that boundary 3x slower.

Clock markers are checked first: one more than ``max_clock_step_s`` beyond the shard's newest
tick or accepted marker, or later than the wall clock plus ``max_clock_skew_s``, is refused
(logged, counted in ``tickml_rejected_clock_markers_total``, kept in ``<prefix>:bus:quarantine``)
instead of closing every boundary up to it. Ticks were validated by the consumer already
(:class:`live.consume.BusConsumer`).

Recovery after a crash (kill -9 included): the checkpoint is loaded and the shard's pending
(unacknowledged) entries are read again; ticks already in the checkpoint are dropped by the
(symbol, seq) filter and boundaries already done are skipped, so the rows written after a
restart are bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import redis

from live import metrics
from live.bus import BusEntry, TickBatch
from live.config import LiveConfig
from live.consume import BusConsumer, SeqDedup
from live.layout import MARKET_COLUMNS, VECTOR_FEATURE, LayoutPlan, VectorLayout
from live.online import OnlineLayout, roundtrip, tune_allocator, vector_commands, write_rows
from live.scaleout import scorer_name
from tickml.execution.market import BOOK_FIELDS, market_values
from tickml.features import PIT_COLUMNS, FeatureConfig, StreamingFeatureEngine, feature_names
from tickml.lake import LoggedRows, write_online_log
from tickml.validation import DEFAULT_RULES, ValidationConfig

log = logging.getLogger(__name__)

FEATURE_VIEW = "tick_features"


def vector_columns(feature_config: FeatureConfig) -> list[str]:
    """Every column a layout may take: every feature, then the market columns."""
    return [*feature_names(feature_config), *MARKET_COLUMNS]


def next_boundary(config: FeatureConfig, t_ns: int) -> int:
    """The grid time closing the interval that holds ``t_ns`` (intervals are (b - iv, b])."""
    start = config.market.day_of(t_ns)[0]
    iv = config.interval_ns
    return start + -(-(t_ns - start) // iv) * iv


class ShardMaterializer:
    """Features of one bus shard (see the module doc)."""

    def __init__(
        self,
        config: LiveConfig,
        shard: int,
        client: redis.Redis,
        feature_config: FeatureConfig | None = None,
        log_dir: str | Path | None = None,
        registry: str | Path | None = None,
    ) -> None:
        self.cfg, self.shard, self.r = config, shard, client
        self.fc = feature_config or FeatureConfig()
        self.names = feature_names(self.fc)
        self.plan = LayoutPlan(client, config.prefix, registry)
        self._full = {c: i for i, c in enumerate(vector_columns(self.fc))}
        self._sel: dict[VectorLayout, np.ndarray | None] = {}
        # last book per symbol (BOOK_FIELDS of its last two-sided tick; symbol -> row): the
        # market columns, vectorized, and the checkpoint's books()
        self._sid: dict[str, int] = {}
        self._book = np.full((0, len(BOOK_FIELDS)), np.nan)
        self._rows_key: list[str] = []
        self._rows_idx = (np.zeros(0, dtype=bool), np.zeros(0, dtype=np.int64))
        self.engine = StreamingFeatureEngine(self.fc)
        self.dedup = SeqDedup()
        self.last_done = -1  # newest boundary written
        self.data_ns = -1  # newest tick applied (the shard's data time)
        self.unacked: list[BusEntry] = []
        self._logbuf: list[LoggedRows] = []
        self.since_ckpt = 0
        self.layout = OnlineLayout(
            config.feast_project,
            FEATURE_VIEW,
            [*self.names, *PIT_COLUMNS],
            dtypes=dict.fromkeys(PIT_COLUMNS, "int64"),
        )
        lake = log_dir or config.online_log_dir
        if lake is None:
            raise ValueError("no lake for the online log: set LiveConfig.online_log_dir")
        self.lake = Path(lake)
        self.worker = f"materializer-{shard}"
        self._universe: set[str] = set()
        self._parts: dict[str, float] = {}  # the last boundary's timings (announced)
        #: tick_features rows not yet written: (b, symbols, values, last tick ns)
        self._view_rows: list[tuple[int, list[str], np.ndarray, np.ndarray]] = []
        self._ckpt_due = False  # a checkpoint waits for settle()
        #: after-work waits: (the newest boundary, the oldest waiting one's monotonic deadline)
        self._settle_at: tuple[int, float] | None = None
        self._scored_keys = [config.key(scorer_name(config, i), "last")
                             for i in range(config.scorers)]  # fmt: skip
        self.restore()

    # ---- checkpoints ---------------------------------------------------------------------
    @property
    def ckpt_key(self) -> str:
        return self.cfg.key("ckpt", self.shard)

    def restore(self) -> bool:
        data = self.r.hgetall(self.ckpt_key)
        if not data:
            return False
        self.engine = StreamingFeatureEngine.from_state_bytes(data[b"engine"], self.fc)
        self.dedup = SeqDedup.from_json(data[b"dedup"].decode())
        self.last_done = int(data[b"last_done"])
        pad = (np.nan,) * len(BOOK_FIELDS)  # checkpoints before the sizes: (bid, ask)
        books = {k: (*v, *pad)[: len(BOOK_FIELDS)] for k, v in json.loads(data[b"mid"]).items()}
        for sym, book in books.items():
            k = self._symbol_id(sym)  # may grow self._book: index it afterwards
            self._book[k] = book
        log.info(
            "restored checkpoint",
            extra={
                "shard": self.shard,
                "last_done": self.last_done,
                "symbols": len(self.engine.symbols),
            },
        )
        return True

    def want_checkpoint(self) -> None:
        """Checkpoint at the next :meth:`settle`."""
        self._ckpt_due = True

    def settle(self, consumer: BusConsumer, force: bool = False) -> None:
        """The work boundaries leave for after their scoring (module doc, steps 4-5): done when
        every scorer finished the newest of them, the oldest one's delay ran out, or
        ``force``."""
        if self._settle_at is None and not self._ckpt_due:
            return
        if not force and self._settle_at is not None:
            b, deadline = self._settle_at
            if time.monotonic() < deadline:
                done = self.r.mget(self._scored_keys)
                if min((int(v) if v else -1) for v in done) < b:
                    return
        self.flush_view()
        if self._ckpt_due:
            self.checkpoint(consumer)
        self._settle_at = None

    def checkpoint(self, consumer: BusConsumer) -> None:
        """Write the view rows and the log, store the state, then acknowledge every entry it
        covers."""
        self.flush_view()
        self._ckpt_due = False
        self.flush_log()
        mapping = {
            "engine": self.engine.state_bytes(),
            "dedup": self.dedup.to_json(),
            "last_done": str(self.last_done),
            "mid": json.dumps(self.books()),
            "saved_wall_ns": str(time.time_ns()),
        }
        self.r.hset(self.ckpt_key, mapping=mapping)
        if self.unacked:
            consumer.ack(self.unacked)
        self.unacked = []
        self.since_ckpt = 0

    # ---- processing ----------------------------------------------------------------------
    def process(self, entry: BusEntry, consumer: BusConsumer) -> None:
        """Apply one bus entry (ticks or a clock marker); boundaries are written as reached."""
        self.unacked.append(entry)
        if entry.kind == "c" and entry.clock_ns is not None:
            why = self.clock_problem(entry.clock_ns)
            if why is not None:
                self._refuse_clock(entry, why)
                return
            self._close_until(entry.clock_ns, entry.wall_ns, consumer)
            return
        batch = entry.batch
        if batch is None or not len(batch.ts):
            return
        keep = self.dedup.filter(batch)
        n_dup = int((~keep).sum())
        if n_dup:
            metrics.DUPLICATES.labels(self.worker).inc(n_dup)
            batch = batch.take(keep)
        if not len(batch.ts):
            return
        # a feed that sent no marker: close the boundaries this batch passes first
        while len(batch.ts):
            b = next_boundary(self.fc, int(batch.ts.min()))
            if self.last_done >= 0:
                b = max(b, next_boundary(self.fc, self.last_done + 1))
            if int(batch.ts.max()) <= b:
                self._apply(batch)
                return
            sel = batch.ts <= b
            self._apply(batch.take(sel))
            self._close_until(b, time.time_ns(), consumer)
            batch = batch.take(~sel)

    def clock_problem(self, t_ns: int, now_ns: int | None = None) -> str | None:
        """Why a clock marker at ``t_ns`` must not be applied (None: it may)."""
        now = time.time_ns() if now_ns is None else now_ns
        skew = int(self.cfg.max_clock_skew_s * 1e9)
        if t_ns > now + skew:
            return f"{(t_ns - now) / 1e9:.0f} s ahead of the wall clock"
        known = max(self.data_ns, self.last_done)
        step = int(self.cfg.max_clock_step_s * 1e9)
        if known >= 0 and t_ns > known + step:
            return f"{(t_ns - known) / 1e9:.0f} s beyond the shard's data time"
        return None

    def _refuse_clock(self, entry: BusEntry, why: str) -> None:
        kind = "ahead_of_wall_clock" if "wall clock" in why else "ahead_of_data"
        metrics.CLOCKS_REJECTED.labels(self.worker, kind).inc()
        self.r.xadd(
            self.cfg.key("bus", "quarantine"),
            {"k": "c", "t": str(entry.clock_ns), "reason": f"clock marker {why}",
             "shard": self.shard, "id": entry.id},
            maxlen=10_000,
            approximate=True,
        )
        log.warning(
            "clock marker refused",
            extra={"shard": self.shard, "t_ns": entry.clock_ns, "reason": why,
                   "entry_id": entry.id.decode(errors="replace")},
        )

    def _apply(self, batch: TickBatch) -> None:
        if not len(batch.ts):
            return
        self.data_ns = max(self.data_ns, int(batch.ts.max()))
        # grouped by symbol (stable: each symbol's ticks keep their order), one compiled call
        syms, inv = batch.groups()
        order = np.argsort(inv, kind="stable")
        bounds = np.searchsorted(inv[order], np.arange(len(syms) + 1))
        px = batch.px[order]
        self.engine.update_groups(syms, bounds, batch.ts[order], *(px[:, j] for j in range(6)))
        # each symbol's book: its last tick with a bid and an ask
        ok = np.isfinite(px[:, 0]) & np.isfinite(px[:, 1])
        last = np.maximum.reduceat(np.where(ok, np.arange(len(px)), -1), bounds[:-1])
        has = last >= bounds[:-1]
        if has.any():
            ks = np.fromiter(map(self._symbol_id, syms), np.int64, len(syms))
            self._book[ks[has]] = px[last[has], : len(BOOK_FIELDS)]
        metrics.ticks_processed(self.worker, len(batch.ts))

    def _close_until(self, t_ns: int, close_wall_ns: int, consumer: BusConsumer) -> None:
        if not self.engine.symbols:
            self.last_done = max(self.last_done, t_ns)
            self.r.hset(self.cfg.key("progress"), f"done:{self.shard}", self.last_done)
            return
        b = next_boundary(self.fc, self.last_done + 1) if self.last_done >= 0 else None
        if b is None:
            # first boundary: the one closing the interval of the clock time itself
            b = next_boundary(self.fc, t_ns)
            if b > t_ns:
                b -= self.fc.interval_ns
        while b <= t_ns:
            rows = self._write_boundary(b, close_wall_ns)
            self.last_done = b
            if rows:
                self.r.hset(self.cfg.key("progress"), f"rows:{self.shard}", b)
            self.since_ckpt += rows > 0
            if self.since_ckpt >= self.cfg.checkpoint_every or len(self.unacked) > 1_000:
                self._ckpt_due = True  # after the scorers (settle)
            # wait for the newest boundary, at most view_delay_s after the oldest waiting one
            deadline = time.monotonic() + self.cfg.view_delay_s
            self._settle_at = (b, deadline if self._settle_at is None else self._settle_at[1])
            b += self.fc.interval_ns
            if self.fc.market.local_day(b) != self.fc.market.local_day(b - self.fc.interval_ns):
                b = next_boundary(self.fc, b)
        self.last_done = max(self.last_done, t_ns)
        self.r.hset(self.cfg.key("progress"), f"done:{self.shard}", self.last_done)

    def books(self) -> dict[str, tuple[float, ...]]:
        """Each symbol's book (``BOOK_FIELDS`` of its last tick with a bid and an ask)."""
        return {
            s: tuple(float(v) for v in self._book[k])
            for s, k in self._sid.items()
            if np.isfinite(self._book[k, 0])
        }

    def _symbol_id(self, symbol: str) -> int:
        k = self._sid.get(symbol)
        if k is None:
            k = self._sid[symbol] = len(self._sid)
            if k >= len(self._book):
                grow = np.full((max(64, len(self._book)), len(BOOK_FIELDS)), np.nan)
                self._book = np.vstack([self._book, grow])
        return k

    def _rows_of(self, syms: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(own-shard mask, book rows) of a snapshot's symbols, recomputed only when the
        snapshot's symbols change (the same universe boundary after boundary)."""
        if syms != self._rows_key:
            own = np.fromiter((self.cfg.shard_of(s) == self.shard for s in syms), bool, len(syms))
            idx = np.fromiter(map(self._symbol_id, syms), np.int64, len(syms))
            self._rows_key, self._rows_idx = list(syms), (own, idx)
        return self._rows_idx

    def _columns(self, layout: VectorLayout) -> np.ndarray | None:
        """Positions of a layout's columns in the full row (None: this engine lacks some)."""
        if layout not in self._sel:
            missing = [c for c in layout.columns if c not in self._full]
            if missing:
                log.error(
                    "layout needs columns this materializer does not compute; not written",
                    extra={"layout": layout.view, "missing": ",".join(missing[:10])},
                )
                self._sel[layout] = None
            else:
                self._sel[layout] = np.array([self._full[c] for c in layout.columns])
        return self._sel[layout]

    def _write_boundary(self, b: int, close_wall_ns: int) -> int:
        """Write the rows of boundary ``b``; the number of rows."""
        queued_ms = (time.time_ns() - close_wall_ns) / 1e6  # close -> this shard starts b
        self.flush_view()  # the previous boundary's rows first (order, bounded)
        t_snap = time.perf_counter()
        syms, vals, last = self.engine.snapshot_arrays(b)
        self._parts = {"queued_ms": queued_ms, "snapshot_ms": (time.perf_counter() - t_snap) * 1e3}
        metrics.boundary_processed(self.worker, b)
        champion, layouts = self.plan.current()
        own, rows = self._rows_of(syms)
        if not own.all():
            syms = list(itertools.compress(syms, own))
            vals, last, rows = vals[own], last[own], rows[own]
        written = [lay for lay in layouts if self._columns(lay) is not None]
        if not syms:
            self._announce(b, close_wall_ns, 0, champion, written)
            return 0
        full = np.hstack([vals, market_values(self._book[rows])])
        t0 = time.perf_counter()
        parts = [  # in chunks: Redis stores one while the next is joined (live.online)
            vector_commands(
                self.cfg.feast_project, lay.view, VECTOR_FEATURE, syms, full[:, self._sel[lay]], b
            )
            for lay in written
        ]
        roundtrip(self.r, itertools.chain.from_iterable(parts), len(syms) * len(written))
        self._parts["write_ms"] = (time.perf_counter() - t0) * 1e3
        metrics.ONLINE_WRITE.labels("model_vector").observe(time.perf_counter() - t0)
        new = set(syms) - self._universe
        if new:
            self.r.sadd(self.cfg.key("universe"), *sorted(new))
            self._universe |= new
        self._announce(b, close_wall_ns, len(syms), champion, written)
        if self.cfg.write_feature_view:
            self._view_rows.append((b, syms, vals, last))
        self._log_rows(b, syms, vals, last)
        return len(syms)

    def flush_view(self) -> None:
        """Write the pending ``tick_features`` rows now (:meth:`settle` decides when)."""
        rows, self._view_rows = self._view_rows, []
        for b, syms, vals, last in rows:
            t0 = time.perf_counter()
            pad = np.full((len(syms), len(PIT_COLUMNS)), np.nan)
            pit = {"row_event_ns": np.full(len(syms), b, np.int64), "last_tick_ns": last}
            write_rows(self.r, self.layout, syms, np.hstack([vals, pad]), b, int_columns=pit)
            metrics.ONLINE_WRITE.labels(FEATURE_VIEW).observe(time.perf_counter() - t0)

    def _announce(
        self,
        b: int,
        close_wall_ns: int,
        rows: int,
        champion: str | None = None,
        layouts: list[VectorLayout] | None = None,
    ) -> None:
        """Tell the scorers this shard finished boundary ``b`` (with 0 rows too: they wait for
        every shard), with the champion it saw and the layouts it wrote."""
        self.r.xadd(
            self.cfg.key("boundaries"),
            {
                "shard": self.shard,
                "b": b,
                "close_wall": close_wall_ns,
                "done_wall": time.time_ns(),
                "rows": rows,
                "layouts": ",".join(lay.view for lay in layouts or ()),
                # without a registry this shard does not know the champion: no field
                **({"champion": champion or ""} if self.plan.registry is not None else {}),
                **{k: f"{v:.3f}" for k, v in self._parts.items()},
            },
            maxlen=100_000,
            approximate=True,
        )

    def _log_rows(self, b: int, syms: list[str], vals: np.ndarray, last: np.ndarray) -> None:
        self._logbuf.append((b, syms, vals, last, time.time_ns()))

    def flush_log(self) -> None:
        """Write the buffered rows: one file per local day and flush
        (:func:`tickml.lake.write_online_log`)."""
        buf, self._logbuf = self._logbuf, []
        by_day: dict[dt.date, list[LoggedRows]] = {}
        for item in buf:
            by_day.setdefault(self.fc.market.local_day(item[0]), []).append(item)
        for day, items in by_day.items():
            write_online_log(self.lake, day, self.shard, self.names, items)


def warm_up(fc: FeatureConfig) -> None:
    """Load the compiled kernels (numba's cache: seconds) before the first real boundary."""
    eng = StreamingFeatureEngine(fc)
    t = next_boundary(fc, 1_700_000_000 * 10**9)
    ts = np.array([t - 2 * 10**9, t - 10**9], dtype=np.int64)
    one = np.ones(2)
    eng.update_many("_warmup", ts, one, one * 1.01, one, one, one, one)
    eng.snapshot_arrays(t)


def run_materializer(
    config: LiveConfig,
    shards: list[int],
    stop: threading.Event,
    feature_config: FeatureConfig | None = None,
    consumer_name: str | None = None,
    log_dir: str | Path | None = None,
    rules: ValidationConfig = DEFAULT_RULES,
    registry: str | Path | None = None,
) -> dict[int, ShardMaterializer]:
    """Consume ``shards`` until ``stop`` is set; checkpoint and acknowledge before returning.

    ``registry``: the model registry folder whose champion's layout is written (None: only the
    layouts scorers declared). Redis unavailable: the worker logs it, counts it, backs off and
    resumes from its pending entries (the in-memory state is kept; the (symbol, seq) filter
    drops what was applied).
    """
    name = consumer_name or "mat-" + "-".join(map(str, shards))
    tune_allocator()  # megabytes per boundary: keep them mapped (live.wire.tune_allocator)
    client = redis.Redis.from_url(config.redis_url)
    warm_up(feature_config or FeatureConfig())
    mats = {
        s: ShardMaterializer(config, s, client, feature_config, log_dir, registry) for s in shards
    }
    for s in shards:
        mats[s].plan.current()  # the champion's layout read now, not at the first boundary
        metrics.worker_started(f"materializer-{s}", dependencies=())
    metrics.worker_started(name, boundaries=False)  # the consumer: bus lag, Redis up
    # own pending entries are normal between checkpoints: claim only a long-dead consumer's
    consumer = BusConsumer(
        client, config, "materializer", name, shards, claim_idle_ms=300_000, rules=rules
    )
    client.hset(config.key("ready"), mapping={f"mat:{s}": time.time_ns() for s in shards})
    backoff = 0.1
    down = False
    next_lag = 0.0  # the lag gauge: every loop took 0.2-5 ms at the close (measured at 500)
    while not stop.is_set():
        try:
            entries = consumer.read()
            for e in entries:
                mats[e.shard].process(e, consumer)
            if len(entries) < consumer.count and config.warm_symbols:  # caught up: idle time
                for m in mats.values():
                    m.engine.warm(config.warm_symbols)
            for m in mats.values():
                if not entries and m.unacked:  # idle: acknowledge what the state covers
                    m.want_checkpoint()
                m.settle(consumer)
            if down:
                log.info("redis reachable again", extra={"worker": name})
                metrics.DEPENDENCY_UP.labels(name, "redis").set(1)
                down = False
            backoff = 0.1
            if time.monotonic() >= next_lag:  # a gauge: once a second (two Redis calls)
                next_lag = time.monotonic() + 1.0
                for s, lag in consumer.lag().items():
                    metrics.LAG.labels(name, str(s)).set(lag)
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
            # ResponseError: e.g. the stream or group vanished (a flush); groups are recreated
            metrics.ERRORS.labels(name, "redis").inc()
            metrics.DEPENDENCY_UP.labels(name, "redis").set(0)
            log.warning(
                "redis unavailable, retrying", extra={"error": str(exc), "backoff_s": backoff}
            )
            down = True
            stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
            consumer._restart()  # re-read our pending entries: the filters drop repeats
    for m in mats.values():
        try:
            m.checkpoint(consumer)
        except redis.RedisError as exc:
            log.error("final checkpoint failed", extra={"shard": m.shard, "error": str(exc)})
    return mats
