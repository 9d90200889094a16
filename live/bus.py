"""The tick bus: canonical ticks on Redis Streams, one stream per symbol shard.

Entry format (see the design doc): a tick entry holds ``k=t``, ``syms`` (JSON list of the
entry's distinct symbols), ``code`` (int32 LE index into ``syms`` per tick), ``ts`` / ``seq``
(int64 LE), ``px`` (float64 LE, ``(n, 6)`` row-major: bid, ask, bid_size, ask_size, price,
size), ``wall`` (publish time, ns, decimal) and ``src``. A clock entry holds ``k=c``, ``t``
(watermark ns) and ``wall``. Clock markers and the leader symbol's ticks go to every shard.

Delivery is at-least-once (consumer groups, ack after processing); :class:`SeqDedup` or the
tick store's ``ON CONFLICT`` turns it into exactly-once. Malformed entries never raise out of
:meth:`BusConsumer.read`: they are moved to the dead-letter stream ``<prefix>:bus:dead``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import redis

from live import metrics
from live.config import LiveConfig
from tickml.schema import FLOAT_COLUMNS, TICK_COLUMNS

log = logging.getLogger(__name__)

DEAD_MAXLEN = 10_000
_I64_MIN = np.iinfo(np.int64).min


class BadEntry(ValueError):
    """A bus entry that cannot be decoded (the reason is the message)."""


@dataclass
class TickBatch:
    """The ticks of one bus entry (or several, concatenated)."""

    symbols: np.ndarray  # object, one per tick
    ts: np.ndarray  # int64 ns UTC
    seq: np.ndarray  # int64
    px: np.ndarray  # float64 (n, 6): bid, ask, bid_size, ask_size, price, size
    wall_ns: int = 0
    src: str = ""

    def __len__(self) -> int:
        return len(self.ts)

    def to_frame(self) -> pd.DataFrame:
        """Canonical ticks (:data:`tickml.schema.TICK_COLUMNS`), ts tz-aware UTC."""
        out = pd.DataFrame(
            {
                "symbol": self.symbols,
                "ts": pd.DatetimeIndex(self.ts.view("datetime64[ns]")).tz_localize("UTC"),
                "seq": self.seq,
            }
        )
        for i, c in enumerate(FLOAT_COLUMNS):
            out[c] = self.px[:, i]
        return out

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, wall_ns: int | None = None, src: str = ""
    ) -> TickBatch:
        missing = [c for c in TICK_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"tick frame lacks canonical columns {missing}")
        ts = frame["ts"]
        if ts.dtype != "datetime64[ns, UTC]":
            ts = pd.to_datetime(ts, utc=True).astype("datetime64[ns, UTC]")
        ts_ns = np.asarray(ts.array.asi8, dtype=np.int64)
        if len(ts_ns) and (ts_ns == _I64_MIN).any():
            raise ValueError("ticks with a null ts")
        if frame["seq"].isna().any() or not pd.api.types.is_integer_dtype(frame["seq"].dtype):
            raise ValueError(f"seq must be a non-null integer column, got {frame['seq'].dtype}")
        px = np.empty((len(frame), len(FLOAT_COLUMNS)), dtype=np.float64)
        for i, c in enumerate(FLOAT_COLUMNS):
            px[:, i] = frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
        return cls(
            symbols=frame["symbol"].to_numpy(dtype=object),
            ts=ts_ns,
            seq=frame["seq"].to_numpy(dtype=np.int64),
            px=px,
            wall_ns=time.time_ns() if wall_ns is None else int(wall_ns),
            src=src,
        )

    def take(self, mask_or_idx: Any) -> TickBatch:
        i = np.asarray(mask_or_idx)
        return TickBatch(
            self.symbols[i], self.ts[i], self.seq[i], self.px[i], self.wall_ns, self.src
        )

    @classmethod
    def concat(cls, batches: Sequence[TickBatch]) -> TickBatch:
        if not batches:
            e = np.empty(0, dtype=np.int64)
            return cls(np.empty(0, dtype=object), e, e.copy(), np.empty((0, 6)))
        return cls(
            np.concatenate([b.symbols for b in batches]),
            np.concatenate([b.ts for b in batches]),
            np.concatenate([b.seq for b in batches]),
            np.concatenate([b.px for b in batches]),
            max(b.wall_ns for b in batches),
            batches[-1].src,
        )


@dataclass
class BusEntry:
    shard: int
    id: bytes
    kind: str  # "t" ticks | "c" clock
    batch: TickBatch | None
    clock_ns: int | None
    wall_ns: int


# ------------------------------------------------------------------------------- encoding


def encode_ticks(
    uniques: np.ndarray,
    codes: np.ndarray,
    ts: np.ndarray,
    seq: np.ndarray,
    px: np.ndarray,
    wall_ns: int,
    src: str,
) -> dict[bytes, bytes]:
    """Fields of one tick entry; ``codes`` index ``uniques`` (the frame's distinct symbols)."""
    used, local = np.unique(codes, return_inverse=True)
    return {
        b"k": b"t",
        b"syms": json.dumps(uniques[used].tolist()).encode(),
        b"code": local.astype("<i4").tobytes(),
        b"ts": ts.astype("<i8").tobytes(),
        b"seq": seq.astype("<i8").tobytes(),
        b"px": np.ascontiguousarray(px, dtype="<f8").tobytes(),
        b"wall": str(wall_ns).encode(),
        b"src": src.encode(),
    }


def _int(fields: dict[bytes, bytes], name: bytes) -> int:
    raw = fields.get(name)
    if raw is None:
        raise BadEntry(f"missing field {name.decode()}")
    try:
        return int(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadEntry(f"field {name.decode()} is not a decimal integer") from exc


def _storable(symbol: Any) -> bool:
    if not isinstance(symbol, str) or not symbol or "\x00" in symbol:
        return False
    try:
        symbol.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from JSON "\ud800"
        return False
    return True


def decode_entry(shard: int, entry_id: bytes, fields: dict[bytes, bytes] | None) -> BusEntry:
    """Decode one stream entry; raises :class:`BadEntry` (only) when it is malformed."""
    if not fields:
        raise BadEntry("entry without fields (deleted or trimmed before delivery)")
    kind = fields.get(b"k")
    if kind == b"c":
        return BusEntry(shard, entry_id, "c", None, _int(fields, b"t"), _int(fields, b"wall"))
    if kind != b"t":
        raise BadEntry(f"unknown entry kind {kind!r}")
    raw: dict[bytes, bytes] = {}
    for name in (b"syms", b"code", b"ts", b"seq", b"px"):
        value = fields.get(name)
        if value is None:
            raise BadEntry(f"missing field {name.decode()}")
        raw[name] = value
    try:
        syms = json.loads(raw[b"syms"])
        src = fields.get(b"src", b"").decode("utf-8")
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadEntry(f"syms or src undecodable: {exc}") from exc
    if not isinstance(syms, list) or not all(_storable(s) for s in syms):
        raise BadEntry("syms is not a list of non-empty UTF-8 symbols without NUL")
    n, rem = divmod(len(raw[b"code"]), 4)
    if rem or n == 0:
        raise BadEntry(f"code holds {len(raw[b'code'])} bytes: not a positive multiple of 4")
    for name, width in ((b"ts", 8), (b"seq", 8), (b"px", 8 * len(FLOAT_COLUMNS))):
        if len(raw[name]) != n * width:
            raise BadEntry(f"{name.decode()} holds {len(raw[name])} bytes for {n} ticks")
    codes = np.frombuffer(raw[b"code"], dtype="<i4")
    if int(codes.min()) < 0 or int(codes.max()) >= len(syms):
        raise BadEntry(f"symbol code outside [0, {len(syms)})")
    ts = np.frombuffer(raw[b"ts"], dtype="<i8").astype(np.int64)
    if (ts == _I64_MIN).any():
        raise BadEntry("null (NaT) timestamp")
    px = np.frombuffer(raw[b"px"], dtype="<f8").astype(np.float64).reshape(n, 6)
    seq = np.frombuffer(raw[b"seq"], dtype="<i8").astype(np.int64)
    symbols = np.array(syms, dtype=object)[codes]
    batch = TickBatch(symbols, ts, seq, px, _int(fields, b"wall"), src)
    return BusEntry(shard, entry_id, "t", batch, None, batch.wall_ns)


def _xadd(pipe: Any, key: str, fields: dict[bytes, bytes], maxlen: int) -> None:
    pipe.xadd(key, fields, maxlen=maxlen, approximate=True)


def _check_client(client: redis.Redis) -> None:
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        raise ValueError("the tick bus needs a Redis client with decode_responses=False")


# ------------------------------------------------------------------------------- producer


class TickBus:
    """Producer side: routes ticks to shard streams, broadcasts the leader and clock markers."""

    def __init__(self, client: redis.Redis, config: LiveConfig, leader: str | None = "SPY"):
        _check_client(client)
        self.client: Any = client  # redis-py's sync/async union types do not help here
        self.config, self.leader = config, leader
        self._shard_cache: dict[str, int] = {}

    def _shard(self, symbol: str) -> int:
        s = self._shard_cache.get(symbol)
        if s is None:
            s = self._shard_cache[symbol] = self.config.shard_of(symbol)
        return s

    def publish(self, ticks: pd.DataFrame, src: str = "") -> int:
        """Publish canonical ticks (input order kept within each shard); entries written."""
        if ticks.empty:
            return 0
        batch = TickBatch.from_frame(ticks, src=src)
        codes, uniques = pd.factorize(batch.symbols, use_na_sentinel=True)
        uniques = np.asarray(uniques, dtype=object)
        if (codes < 0).any() or not all(isinstance(u, str) and u for u in uniques):
            raise ValueError("every tick needs a non-empty str symbol")
        ushard = np.fromiter((self._shard(u) for u in uniques), dtype=np.int64, count=len(uniques))
        tshard = ushard[codes]
        lead_mask = (
            codes == np.flatnonzero(uniques == self.leader)[0]
            if self.leader in set(uniques)
            else None
        )
        step, wall = self.config.batch_ticks, batch.wall_ns
        pipe = self.client.pipeline(transaction=False)
        written = 0
        for shard in range(self.config.shards):
            mask = tshard == shard
            if lead_mask is not None:
                mask |= lead_mask
            idx = np.flatnonzero(mask)
            for i in range(0, len(idx), step):
                j = idx[i : i + step]
                fields = encode_ticks(
                    uniques, codes[j], batch.ts[j], batch.seq[j], batch.px[j], wall, src
                )
                _xadd(pipe, self.config.stream(shard), fields, self.config.stream_maxlen)
                written += 1
        pipe.execute()
        return written

    def publish_clock(self, t_ns: int, wall_ns: int | None = None) -> None:
        """Broadcast "every tick with ts <= t_ns has been published" to every shard."""
        wall = time.time_ns() if wall_ns is None else int(wall_ns)
        fields = {b"k": b"c", b"t": str(int(t_ns)).encode(), b"wall": str(wall).encode()}
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.config.shards):
            _xadd(pipe, self.config.stream(shard), fields, self.config.stream_maxlen)
        pipe.execute()


def trim(
    client: redis.Redis,
    config: LiveConfig,
    shard: int,
    min_id: str | bytes,
    approximate: bool = True,
) -> int:
    """Drop the entries of ``shard``'s stream older than ``min_id`` (XTRIM MINID); removed."""
    c: Any = client
    return int(c.xtrim(config.stream(shard), minid=min_id, approximate=approximate))


# ------------------------------------------------------------------------------- consumer


class BusConsumer:
    """One consumer of a consumer group over some shard streams (at-least-once delivery).

    :meth:`read` hands out, in this order: this consumer's own pending entries (recovery after a
    restart under the same name, or after a lost Redis reply), entries other consumers left
    pending longer than ``claim_idle_ms`` (a crashed consumer's work, XAUTOCLAIM; rescanned every
    ``claim_idle_ms / 2``), then new entries. Entries of one shard come back in stream order
    within one call. Acknowledge with :meth:`ack` once processed.
    """

    def __init__(
        self,
        client: redis.Redis,
        config: LiveConfig,
        group: str,
        consumer: str,
        shards: Sequence[int],
        block_ms: int = 100,
        count: int = 64,
        claim_idle_ms: int = 30_000,
        worker: str | None = None,
    ) -> None:
        _check_client(client)
        self.client: Any = client
        self.config, self.group, self.consumer = config, group, consumer
        self.block_ms, self.count, self.claim_idle_ms = block_ms, count, claim_idle_ms
        self.worker = worker or group
        self.shards = list(shards)
        self._keys = {config.stream(s): s for s in self.shards}
        self._by_bkey = {k.encode(): s for k, s in self._keys.items()}
        self._claim_every = max(claim_idle_ms / 2000.0, 0.01)
        self._restart()
        self.ensure_groups()

    def _restart(self) -> None:
        self._pending_from: dict[str, bytes] = {k: b"0" for k in self._keys}
        self._claim_from: dict[str, bytes] = {}
        self._next_claim = 0.0

    def ensure_groups(self) -> None:
        for key in self._keys:
            try:
                self.client.xgroup_create(key, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def read(self) -> list[BusEntry]:
        """The next entries (possibly none after ``block_ms``); raises only Redis errors."""
        try:
            return self._read()
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream or group vanished (flush): recreate
                self.ensure_groups()
            self._restart()
            raise
        except redis.RedisError:
            self._restart()  # a lost reply may have left delivered entries in our PEL
            raise

    def _read(self) -> list[BusEntry]:
        if self._pending_from:
            reply = self.client.xreadgroup(
                self.group, self.consumer, dict(self._pending_from), count=self.count
            )
            got = {key: entries for key, entries in (reply or [])}
            found: list[tuple[int, list[Any]]] = []
            for key in list(self._pending_from):
                entries = got.get(key.encode()) or []
                if entries:
                    self._pending_from[key] = entries[-1][0]
                    found.append((self._keys[key], entries))
                else:
                    del self._pending_from[key]
            if found:
                return self._decode(found)
        if time.monotonic() >= self._next_claim:
            found = []
            for key in self._keys:
                nxt, entries, *rest = self.client.xautoclaim(
                    key,
                    self.group,
                    self.consumer,
                    self.claim_idle_ms,
                    start_id=self._claim_from.get(key, b"0-0"),
                    count=self.count,
                )
                if rest and rest[0]:
                    self._lost(self._keys[key], rest[0])
                if entries:
                    found.append((self._keys[key], entries))
                if nxt in (b"0-0", "0-0"):
                    self._claim_from.pop(key, None)
                else:
                    self._claim_from[key] = nxt
            if not self._claim_from:
                self._next_claim = time.monotonic() + self._claim_every
            if found:
                log.info(
                    "claimed %d idle entries",
                    sum(len(e) for _, e in found),
                    extra={"group": self.group, "consumer": self.consumer},
                )
                return self._decode(found)
        reply = self.client.xreadgroup(
            self.group,
            self.consumer,
            {k: ">" for k in self._keys},
            count=self.count,
            block=self.block_ms,
        )
        return self._decode([(self._by_bkey[key], entries) for key, entries in (reply or [])])

    def _decode(self, found: list[tuple[int, list[Any]]]) -> list[BusEntry]:
        out: list[BusEntry] = []
        bad: list[tuple[int, bytes, dict[bytes, bytes] | None, str]] = []
        for shard, entries in found:
            for entry_id, fields in entries:
                try:
                    out.append(decode_entry(shard, entry_id, fields))
                except Exception as exc:  # noqa: BLE001 - bad input must never crash a worker
                    bad.append((shard, entry_id, fields, f"{type(exc).__name__}: {exc}"))
        if bad:
            self.dead_letter(bad)
        return out

    def dead_letter(self, bad: list[tuple[int, bytes, dict[bytes, bytes] | None, str]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for shard, entry_id, fields, reason in bad:
            dead = {b"reason": reason.encode(), b"shard": str(shard).encode(), b"id": entry_id}
            dead |= {b"group": self.group.encode(), b"consumer": self.consumer.encode()}
            dead |= {b"f." + k: v for k, v in (fields or {}).items()}
            _xadd(pipe, self.config.key("bus", "dead"), dead, DEAD_MAXLEN)
            pipe.xack(self.config.stream(shard), self.group, entry_id)
            where = {"shard": shard, "entry_id": entry_id.decode(errors="replace")}
            log.warning("malformed bus entry quarantined", extra={**where, "reason": reason})
        pipe.execute()
        metrics.ERRORS.labels(self.worker, "bad_input").inc(len(bad))

    def _lost(self, shard: int, ids: list[bytes]) -> None:
        log.warning(
            "pending entries were trimmed from the stream before processing",
            extra={"shard": shard, "n_lost": len(ids), "group": self.group},
        )
        metrics.ERRORS.labels(self.worker, "trimmed").inc(len(ids))

    def ack(self, entries: Sequence[BusEntry]) -> None:
        if not entries:
            return
        by_shard: dict[int, list[bytes]] = {}
        for e in entries:
            by_shard.setdefault(e.shard, []).append(e.id)
        pipe = self.client.pipeline(transaction=False)
        for shard, ids in by_shard.items():
            pipe.xack(self.config.stream(shard), self.group, *ids)
        pipe.execute()

    def lag(self) -> dict[int, int]:
        """Per shard: entries pending (delivered, not acked) + not yet delivered to the group.

        Where Redis cannot tell the undelivered count (deleted entries), the stream length is
        used instead (an upper bound)."""
        pipe = self.client.pipeline(transaction=False)
        for key in self._keys:
            pipe.xinfo_groups(key)
            pipe.xlen(key)
        res = pipe.execute()
        out: dict[int, int] = {}
        for i, shard in enumerate(self._keys.values()):
            groups, length = res[2 * i], res[2 * i + 1]
            g = next((g for g in groups if g["name"] in (self.group, self.group.encode())), None)
            if g is None:
                out[shard] = int(length)
                continue
            lag = g.get("lag")
            out[shard] = int(g["pending"]) + int(length if lag is None else lag)
        return out


# ---------------------------------------------------------------------------------- dedup


class SeqDedup:
    """Exactly-once by ``(symbol, seq)``: per symbol the newest ``(ts, seq)`` applied so far.

    Feeds publish each symbol's ticks in ``(ts, seq)`` order (the order the feature engine needs)
    and a symbol's ticks travel through one shard stream in that order, so a tick whose
    ``(ts, seq)`` is not above everything applied before (earlier batches, earlier ticks of the
    same batch) is a repeat. ``seq`` alone is not monotone in time for every source (Binance's
    follows arrival order and steps back against exchange time now and then), so the mark is
    the pair, compared lexicographically.
    """

    def __init__(self, mark: dict[str, tuple[int, int]] | None = None) -> None:
        self.mark: dict[str, tuple[int, int]] = dict(mark or {})

    def filter(self, batch: TickBatch) -> np.ndarray:
        """Mask of the ticks of ``batch`` not seen before; records them as seen."""
        n = len(batch)
        if n == 0:
            return np.zeros(0, dtype=bool)
        codes, uniques = pd.factorize(batch.symbols)
        none = (_I64_MIN, _I64_MIN)
        prev = [self.mark.get(u, none) for u in uniques]
        order = np.argsort(codes, kind="stable")
        c = codes[order].astype(np.int64)
        # one dense lexicographic rank over the ticks' and the marks' (ts, seq) pairs
        all_ts = np.r_[batch.ts[order], np.array([p[0] for p in prev], dtype=np.int64)]
        all_sq = np.r_[batch.seq[order], np.array([p[1] for p in prev], dtype=np.int64)]
        o = np.lexsort((all_sq, all_ts))
        a_ts, a_sq = all_ts[o], all_sq[o]
        first = np.r_[True, (a_ts[1:] != a_ts[:-1]) | (a_sq[1:] != a_sq[:-1])]
        dense = np.cumsum(first) - 1
        rank_all = np.empty(len(o), dtype=np.int64)
        rank_all[o] = dense
        rank, prank = rank_all[:n], rank_all[n:]
        width = int(dense[-1]) + 2
        # per-symbol running max of (rank + 1) in one accumulate: groups are contiguous and
        # each group's keys lie above every key of the groups before it
        key = c * width + rank + 1
        acc = np.maximum.accumulate(key)
        start = np.r_[True, c[1:] != c[:-1]]
        excl = np.empty(n, dtype=np.int64)
        excl[0] = 0
        excl[1:] = acc[:-1] - c[1:] * width
        excl[start] = 0
        keep_sorted = (rank > prank[c]) & (rank + 1 > excl)
        keep = np.empty(n, dtype=bool)
        keep[order] = keep_sorted
        end = np.r_[start[1:], True]
        top = acc[end] - c[end] * width - 1
        pair_ts, pair_sq = a_ts[first], a_sq[first]
        for u, p, t in zip(uniques[c[end]], prank[c[end]], top, strict=True):
            if t > p:
                self.mark[u] = (int(pair_ts[t]), int(pair_sq[t]))
        return keep

    def to_json(self) -> str:
        return json.dumps({"version": 2, "mark": self.mark}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> SeqDedup:
        data = json.loads(text)
        state = data.get("mark") if isinstance(data, dict) else None
        if (
            data.get("version") != 2
            or not isinstance(state, dict)
            or not all(
                isinstance(k, str)
                and isinstance(v, list)
                and len(v) == 2
                and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
                for k, v in state.items()
            )
        ):
            raise ValueError("not a SeqDedup checkpoint (version 2, mark {symbol: [ts, seq]})")
        return cls({k: (v[0], v[1]) for k, v in state.items()})
