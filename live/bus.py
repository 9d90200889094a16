"""The tick bus: canonical ticks on Redis Streams, one stream per symbol shard.

Entry format (see the design doc): a tick entry holds ``k=t``, ``syms`` (JSON list of the
entry's distinct symbols), ``code`` (int32 LE index into ``syms`` per tick), ``ts`` / ``seq``
(int64 LE), ``px`` (float64 LE, ``(n, 6)`` row-major: bid, ask, bid_size, ask_size, price,
size), ``wall`` (publish time, ns, decimal) and ``src``. A clock entry holds ``k=c``, ``t``
(watermark ns) and ``wall``. Clock markers and the leader symbol's ticks go to every shard.

Delivery is at-least-once (consumer groups, ack after processing; `live.consume`); `SeqDedup` or the
tick store's ``ON CONFLICT`` turns it into exactly-once. Malformed entries never raise out of
:meth:`BusConsumer.read`: they are moved to the dead-letter stream ``<prefix>:bus:dead``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import redis

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
    #: (codes int64 per tick, distinct symbols): ``symbols == uniques[codes]``, kept from the
    #: bus entry's own encoding (the consumer's checks, the de-duplication and the engine's
    #: grouping need it; hashing the symbols again cost more than the rest for a small entry)
    factor: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ts)

    def factorized(self) -> tuple[np.ndarray, np.ndarray]:
        """(codes, distinct symbols) of the ticks: -1 for a null symbol; a symbol may be unused
        after :meth:`take`."""
        if self.factor is None:
            codes, uniques = pd.factorize(self.symbols, use_na_sentinel=True)
            self.factor = (codes.astype(np.int64), np.asarray(uniques, dtype=object))
        return self.factor

    def groups(self) -> tuple[list[str], np.ndarray]:
        """(the batch's symbols, sorted, once each; per tick its symbol's position among them):
        ``np.unique(symbols, return_inverse=True)`` from :meth:`factorized` (every symbol set)."""
        codes, uniques = self.factorized()
        used = np.zeros(len(uniques), dtype=bool)
        used[codes] = True
        ids = np.flatnonzero(used)
        order = np.argsort(uniques[ids].astype(str), kind="stable")
        rank = np.empty(len(uniques), dtype=np.int64)
        rank[ids[order]] = np.arange(len(ids))
        return uniques[ids[order]].tolist(), rank[codes]

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
        f = None if self.factor is None else (self.factor[0][i], self.factor[1])
        return TickBatch(
            self.symbols[i], self.ts[i], self.seq[i], self.px[i], self.wall_ns, self.src, f
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
    uniques = np.array(syms, dtype=object)
    # the entry's own factorization, unless a producer listed a symbol twice
    factor = (codes.astype(np.int64), uniques) if len(set(syms)) == len(syms) else None
    batch = TickBatch(uniques[codes], ts, seq, px, _int(fields, b"wall"), src, factor)
    return BusEntry(shard, entry_id, "t", batch, None, batch.wall_ns)


def xadd_capped(pipe: Any, key: str, fields: dict[bytes, bytes], maxlen: int) -> None:
    """Append an entry to a stream capped at about ``maxlen`` entries (XADD MAXLEN ~)."""
    pipe.xadd(key, fields, maxlen=maxlen, approximate=True)


def check_client(client: redis.Redis) -> None:
    """The bus moves bytes: a client that decodes responses cannot read it."""
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        raise ValueError("the tick bus needs a Redis client with decode_responses=False")


# ------------------------------------------------------------------------------- producer


class TickBus:
    """Producer side: routes ticks to shard streams, broadcasts the leader and clock markers."""

    def __init__(self, client: redis.Redis, config: LiveConfig, leader: str | None = "SPY"):
        check_client(client)
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
                xadd_capped(pipe, self.config.stream(shard), fields, self.config.stream_maxlen)
                written += 1
        pipe.execute()
        return written

    def publish_clock(self, t_ns: int, wall_ns: int | None = None) -> None:
        """Broadcast "every tick with ts <= t_ns has been published" to every shard."""
        wall = time.time_ns() if wall_ns is None else int(wall_ns)
        fields = {b"k": b"c", b"t": str(int(t_ns)).encode(), b"wall": str(wall).encode()}
        pipe = self.client.pipeline(transaction=False)
        for shard in range(self.config.shards):
            xadd_capped(pipe, self.config.stream(shard), fields, self.config.stream_maxlen)
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
