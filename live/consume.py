"""Consuming the tick bus: consumer groups (at-least-once) and (symbol, ts, seq) de-duplication.

:class:`BusConsumer` hands out a consumer's pending entries first (recovery), then entries a
dead consumer left pending (XAUTOCLAIM), then new ones; malformed entries go to the dead-letter
stream. Well-formed entries are validated again tick by tick (:func:`tickml.validation.row_reasons`:
symbol, NaN/inf, sign, plausibility ranges, crossed book, empty event): a tick that fails is
taken out of the entry and written to ``<prefix>:bus:quarantine`` with its reason (one stream
entry per bus entry, the rejected ticks in the bus encoding), counted in
``tickml_rejected_ticks_total{worker, reason}`` and logged; the rest of the entry is processed.
:class:`SeqDedup` turns at-least-once delivery into exactly-once counting.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import redis
from numba import njit

from live import metrics
from live.bus import (
    DEAD_MAXLEN,
    BusEntry,
    TickBatch,
    check_client,
    decode_entry,
    encode_ticks,
    xadd_capped,
)
from live.config import LiveConfig
from tickml.schema import FLOAT_COLUMNS
from tickml.validation import DEFAULT_RULES, ValidationConfig, row_reasons

log = logging.getLogger(__name__)

_I64_MIN = np.iinfo(np.int64).min

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
        rules: ValidationConfig = DEFAULT_RULES,
    ) -> None:
        check_client(client)
        self.rules = rules
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
                    entry = decode_entry(shard, entry_id, fields)
                except Exception as exc:  # noqa: BLE001 - bad input must never crash a worker
                    bad.append((shard, entry_id, fields, f"{type(exc).__name__}: {exc}"))
                    continue
                out.append(self.screen(entry))
        if bad:
            self.dead_letter(bad)
        return out

    def screen(self, entry: BusEntry) -> BusEntry:
        """Take the ticks that fail validation out of ``entry`` (they go to the bus
        quarantine with their reasons); the entry itself is kept and acknowledged as usual."""
        batch = entry.batch
        if batch is None or not len(batch):
            return entry
        vals = {c: batch.px[:, i] for i, c in enumerate(FLOAT_COLUMNS)}
        codes, uniques = batch.factorized()
        reason = row_reasons(batch.symbols, batch.ts, vals, self.rules, factorized=(codes, uniques))
        bad = reason != ""
        if bad.any():
            self._quarantine(entry, batch.take(bad), reason[bad])
            entry.batch = batch.take(~bad)
        return entry

    def _quarantine(self, entry: BusEntry, rejected: TickBatch, reasons: np.ndarray) -> None:
        counts = pd.Series(reasons).value_counts().sort_index()
        codes, uniques = pd.factorize(pd.Series(rejected.symbols, dtype=object).fillna(""))
        fields = encode_ticks(
            np.array([str(u) for u in uniques], dtype=object), codes, rejected.ts, rejected.seq,
            rejected.px, rejected.wall_ns, rejected.src,
        )
        fields |= {
            b"reasons": json.dumps(reasons.tolist()).encode(),
            b"shard": str(entry.shard).encode(),
            b"id": entry.id,
            b"group": self.group.encode(),
            b"consumer": self.consumer.encode(),
        }
        xadd_capped(self.client, self.config.key("bus", "quarantine"), fields, DEAD_MAXLEN)
        for reason, n in counts.items():
            metrics.REJECTED.labels(self.worker, str(reason)).inc(int(n))
        log.warning(
            "invalid ticks quarantined",
            extra={
                "shard": entry.shard,
                "entry_id": entry.id.decode(errors="replace"),
                "counts": json.dumps({str(k): int(v) for k, v in counts.items()}),
                "symbols": json.dumps([str(u)[:40] for u in uniques[:5]]),
            },
        )

    def dead_letter(self, bad: list[tuple[int, bytes, dict[bytes, bytes] | None, str]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for shard, entry_id, fields, reason in bad:
            dead = {b"reason": reason.encode(), b"shard": str(shard).encode(), b"id": entry_id}
            dead |= {b"group": self.group.encode(), b"consumer": self.consumer.encode()}
            dead |= {b"f." + k: v for k, v in (fields or {}).items()}
            xadd_capped(pipe, self.config.key("bus", "dead"), dead, DEAD_MAXLEN)
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
        codes, uniques = batch.factorized()
        if codes.min() < 0:
            raise ValueError("ticks without a symbol cannot be de-duplicated")
        none = (_I64_MIN, _I64_MIN)
        before = np.array([self.mark.get(u, none) for u in uniques], dtype=np.int64)
        before = before.reshape(len(uniques), 2)
        mts, msq = before[:, 0].copy(), before[:, 1].copy()
        keep = _dedup(codes, batch.ts, batch.seq, mts, msq)
        for k in np.flatnonzero((mts != before[:, 0]) | (msq != before[:, 1])):
            self.mark[uniques[k]] = (int(mts[k]), int(msq[k]))
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


@njit(cache=True)
def _dedup(
    codes: np.ndarray, ts: np.ndarray, seq: np.ndarray, mts: np.ndarray, msq: np.ndarray
) -> np.ndarray:
    """Keep a tick whose ``(ts, seq)`` is above its symbol's mark (``mts``, ``msq`` per code,
    raised in place as ticks are kept), in batch order: one pass (the vectorized form of this
    rank-and-accumulate cost ~120 us for a 20-tick entry, mostly numpy's per-call overhead)."""
    keep = np.zeros(codes.shape[0], dtype=np.bool_)
    for i in range(codes.shape[0]):
        c = codes[i]
        if ts[i] > mts[c] or (ts[i] == mts[c] and seq[i] > msq[c]):
            keep[i] = True
            mts[c] = ts[i]
            msq[c] = seq[i]
    return keep
