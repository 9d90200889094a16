"""Streaming mode: per-symbol state updated tick by tick, rows written at each boundary.

The engine runs the same compiled ``update`` and ``snapshot_row`` as batch mode, so a replay
that feeds the same ticks and snapshots at the same boundaries gives the same numbers, bit for
bit. Contract of the caller (what a live materializer does):

- feed each symbol's ticks in time order (a tick older than the symbol's newest is applied at
  the newest time; a tick from an earlier day is dropped and counted in ``dropped_late``);
- interval mode: call :meth:`snapshot` with each grid time ``b`` after every tick with
  ``ts <= b`` and before any tick with ``ts > b`` (a late call raises);
- every-n mode: rows are produced inside :meth:`update`; collect them with :meth:`drain`
  (and :meth:`flush` at the end of a replay). For the cross-asset family feed all symbols in
  one time-ordered stream.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from tickml.features._checkpoint import pack_state, unpack_state
from tickml.features._layout import (
    I_DAY_END,
    I_DAY_START,
    I_IS_LEADER,
    I_LAST_TS,
    I_PENDING,
    ST_NEED_DAY,
    ST_ROW_DUE,
)
from tickml.features._loop import row_allowed, snapshot_all, snapshot_one, warm_rings
from tickml.features._loop import update_groups as _update_groups
from tickml.features._loop import update_many as _update_many
from tickml.features._update import mark_row, reset_day
from tickml.features._update import update as _update
from tickml.features.batch import feature_frame
from tickml.features.config import FeatureConfig
from tickml.features.program import compile_program
from tickml.market import ts_ns

log = logging.getLogger(__name__)


def _tick_arrays(ts: np.ndarray, *cols: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """(int64 times, float64 columns), contiguous: what the update kernels take."""
    return np.ascontiguousarray(ts, dtype=np.int64), [
        np.ascontiguousarray(a, dtype=np.float64) for a in cols
    ]


class StreamingFeatureEngine:
    """Incremental features for a universe of symbols (one state row per symbol)."""

    def __init__(self, config: FeatureConfig | None = None, symbols: Iterable[str] = ()) -> None:
        self.config = config or FeatureConfig()
        self.program = compile_program(self.config)
        p = self.program
        self.names: list[str] = p.names
        self._symbols: list[str] = []
        self._index: dict[str, int] = {}
        self._F = np.full((0, p.nf), np.nan)  # noqa: N815
        self._I = np.zeros((0, p.ni), dtype=np.int64)  # noqa: N815
        self._larr = np.full(p.bars_per_day, np.nan)
        self._work = np.zeros(p.work_size)  # snapshot scratch
        # interval snapshots: each symbol's ring moments computed ahead (warm(), which
        # allocates them: 8 * ring_work_size bytes per symbol), valid while the symbol's (day,
        # ticks applied) equals its key row
        self._W = np.zeros((0, p.ring_work_size))  # noqa: N815
        self._wkey = np.full((0, 2), -1, dtype=np.int64)
        self._lk = -1
        self._every_n = self.config.every_n_ticks or 0
        self._rows: list[tuple[str, int, np.ndarray]] = []
        self._day_end = -1
        self.dropped_late = 0
        for s in symbols:
            self.add_symbol(s)

    # ---- symbols -------------------------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    def add_symbol(self, symbol: str) -> int:
        """Add a symbol (no-op if known); returns its state row."""
        if symbol in self._index:
            return self._index[symbol]
        k = len(self._symbols)
        if k == self._F.shape[0]:
            grow = max(8, k)
            self._F = np.vstack([self._F, np.full((grow, self.program.nf), np.nan)])
            self._I = np.vstack([self._I, np.zeros((grow, self.program.ni), dtype=np.int64)])
            self._wkey = np.vstack([self._wkey, np.full((grow, 2), -1, dtype=np.int64)])
        self._symbols.append(symbol)
        self._index[symbol] = k
        if self.config.leader is not None and symbol == self.config.leader:
            self._I[k, I_IS_LEADER] = 1
            self._lk = k
        return k

    # ---- ticks ---------------------------------------------------------------------------
    def update(
        self,
        symbol: str,
        ts: int,
        bid: float,
        ask: float,
        bid_size: float,
        ask_size: float,
        price: float,
        size: float,
    ) -> None:
        """Apply one canonical tick (``ts`` in UTC ns; NaN for missing book/price, size 0)."""
        k = self._index.get(symbol)
        if k is None:
            k = self.add_symbol(symbol)
        st = _update(
            self._F,
            self._I,
            k,
            self.program.P,
            self.program.PF,
            ts,
            bid,
            ask,
            bid_size,
            ask_size,
            price,
            size,
            self._larr,
        )
        if st:
            self._slow(k, st, ts, bid, ask, bid_size, ask_size, price, size)

    def update_many(
        self,
        symbol: str,
        ts: np.ndarray,
        bid: np.ndarray,
        ask: np.ndarray,
        bid_size: np.ndarray,
        ask_size: np.ndarray,
        price: np.ndarray,
        size: np.ndarray,
    ) -> None:
        """Apply a batch of one symbol's ticks, exactly as repeated :meth:`update` calls.

        No interval row is written inside the batch: snapshot boundaries between batches.
        """
        k = self._index.get(symbol)
        if k is None:
            k = self.add_symbol(symbol)
        t, arrs = _tick_arrays(ts, bid, ask, bid_size, ask_size, price, size)
        i0, n = 0, t.shape[0]
        p = self.program
        while i0 < n:
            i, st = _update_many(
                self._F, self._I, k, p.P, p.PF, t[i0:], *(a[i0:] for a in arrs), self._larr
            )
            i0 += i
            if st:
                self._slow(k, st, int(t[i0]), *(float(a[i0]) for a in arrs))
                i0 += 1

    def update_groups(
        self,
        symbols: Sequence[str],
        bounds: np.ndarray,
        ts: np.ndarray,
        bid: np.ndarray,
        ask: np.ndarray,
        bid_size: np.ndarray,
        ask_size: np.ndarray,
        price: np.ndarray,
        size: np.ndarray,
    ) -> None:
        """Ticks of several symbols in one compiled call: rows ``bounds[g]:bounds[g + 1]`` are
        ``symbols[g]``'s (in time order); exactly :meth:`update_many` of each group in turn (a
        live materializer's batch: no Python step per symbol)."""
        ks = np.fromiter(
            (self._index[s] if s in self._index else self.add_symbol(s) for s in symbols),
            np.int64,
            len(symbols),
        )
        b = np.ascontiguousarray(bounds, dtype=np.int64)
        if b.shape != (len(symbols) + 1,) or b[0] != 0 or (np.diff(b) < 0).any():
            raise ValueError("bounds must be 0, ..., len(ts): one more than symbols, rising")
        t, arrs = _tick_arrays(ts, bid, ask, bid_size, ask_size, price, size)
        if t.shape[0] != b[-1] or any(a.shape != t.shape for a in arrs):
            raise ValueError("ts, the tick columns and bounds[-1] must have the same length")
        p = self.program
        g, i = 0, 0
        while g < len(ks):
            g, i, st = _update_groups(
                self._F, self._I, ks, b, p.P, p.PF, t, *arrs, self._larr, g, i
            )
            if st:
                self._slow(int(ks[g]), st, int(t[i]), *(float(a[i]) for a in arrs))
                i += 1

    def _slow(self, k: int, st: int, ts: int, *tick: float) -> None:
        p = self.program
        while st:
            if st == ST_NEED_DAY:
                if self._I[k, I_DAY_END] != 0 and ts <= self._I[k, I_DAY_START]:
                    self.dropped_late += 1
                    log.warning(
                        "%s: tick at %d is from an earlier day, dropped", self._symbols[k], ts
                    )
                    return
                day = self.config.market.day_of(ts)
                if day[1] > self._day_end:
                    self.flush()  # every-n rows of the ending day first (leader still there)
                    self._day_end = day[1]
                elif self._I[k, I_PENDING] == 1:
                    self._emit(k)
                reset_day(self._F, self._I, k, p.P, day[0], day[1], day[2], day[3], self._larr)
            elif st == ST_ROW_DUE:
                self._emit(k)
            st = _update(self._F, self._I, k, p.P, p.PF, ts, *tick, self._larr)

    def _lead(self) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
        """Where the row kernels find the leader: row ``_lk`` of this engine's state."""
        return (self._F, self._I, self._lk, self._larr)

    def _emit(self, k: int) -> None:
        p = self.program
        t = int(self._I[k, I_LAST_TS])
        if row_allowed(self._I, k, p.P, t):
            out = np.empty(len(p.defs))
            snapshot_one(self._F, self._I, k, p.arrays, self._lead(), self._work, t, out)
            self._rows.append((self._symbols[k], t, out if p.all_outputs else out[p.out_idx]))
        else:
            mark_row(self._I, k)

    # ---- rows ----------------------------------------------------------------------------
    def snapshot_arrays(
        self, boundary_ts: int | pd.Timestamp
    ) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Rows at grid time ``boundary_ts``: (symbols, values [n, features], last tick ns)."""
        if self._every_n:
            raise ValueError("every-n-ticks engine: rows come from update(); use drain()")
        b = ts_ns(boundary_ts)
        p, n_sym = self.program, len(self._symbols)
        out = np.empty((n_sym, len(p.defs)))
        idx = np.empty(n_sym, dtype=np.int64)
        last = np.empty(n_sym, dtype=np.int64)
        n = snapshot_all(
            self._F, self._I, p.arrays, self._lead(), self._work, self._W, self._wkey, b, n_sym,
            out, idx, last,
        )
        if n < 0:
            sym = self._symbols[-1 - n]
            raise ValueError(
                f"snapshot at {pd.Timestamp(b, tz='UTC')} after {sym} already "
                "applied a later tick: snapshot before feeding newer ticks"
            )
        vals = out[:n] if p.all_outputs else out[:n][:, p.out_idx]
        return [self._symbols[i] for i in idx[:n]], vals, last[:n]

    def warm(self, budget: int | None = None) -> int:
        """Compute, ahead of the boundary, the ring moments of up to ``budget`` symbols (None:
        all) that got ticks since theirs were last computed; returns how many. The next
        :meth:`snapshot_arrays` reuses them for every symbol with no tick since, so a caller
        with idle time between ticks (a live materializer) moves most of a snapshot's cost
        before the close. The rows are the same bit for bit, warmed or not."""
        if self._every_n:
            return 0
        p, n_sym = self.program, len(self._symbols)
        P, ck, modes = p.arrays[0], p.arrays[5], p.arrays[6]
        cap = n_sym if budget is None else max(int(budget), 0)
        if self._W.shape[0] < n_sym:  # keep what is there: its key rows say it is valid
            extra = np.zeros((self._F.shape[0] - self._W.shape[0], p.ring_work_size))
            self._W = np.vstack([self._W, extra])
        return int(
            warm_rings(
                self._F, self._I, P, ck, modes, self._work, self._W, self._wkey, n_sym, cap
            )
        )

    def snapshot(self, boundary_ts: int | pd.Timestamp) -> pd.DataFrame:
        """Feature rows stamped ``boundary_ts`` (same columns as :func:`compute_features`)."""
        syms, vals, last = self.snapshot_arrays(boundary_ts)
        b = ts_ns(boundary_ts)
        return feature_frame(
            np.asarray(syms, dtype=object), np.full(len(syms), b, np.int64), vals, last, self.names
        )

    def flush(self) -> None:
        """Write every pending every-n row (end of a replay or of a day)."""
        if not self._every_n:
            return
        for k in np.flatnonzero(self._I[: len(self._symbols), I_PENDING] == 1):
            self._emit(int(k))

    def drain(self) -> pd.DataFrame:
        """The every-n rows written since the last drain, as a feature frame."""
        rows, self._rows = self._rows, []
        if not rows:
            return feature_frame(
                np.array([], dtype=object),
                np.array([], dtype=np.int64),
                np.empty((0, len(self.names))),
                np.array([], dtype=np.int64),
                self.names,
            )
        ts = np.array([r[1] for r in rows], dtype=np.int64)
        return feature_frame(
            np.array([r[0] for r in rows], dtype=object),
            ts,
            np.vstack([r[2] for r in rows]),
            ts.copy(),
            self.names,
        )

    # ---- checkpoints (tickml.features._checkpoint) ----------------------------------------
    def state_bytes(self) -> bytes:
        """The engine's whole state as bytes (an ``.npz`` of numeric arrays, no pickle).

        A live materializer stores this with the bus position it covers; :meth:`from_state_bytes`
        then continues exactly where this engine stood (bit-exact rows after a restart).
        """
        if self._rows:
            raise ValueError("drain() the every-n rows before taking a checkpoint")
        n = len(self._symbols)
        meta = {
            "config": self.config.model_dump(mode="json"),
            "symbols": self._symbols,
            "lk": self._lk,
            "day_end": self._day_end,
            "dropped_late": self.dropped_late,
        }
        return pack_state(self._F[:n], self._I[:n], self._larr, meta)

    @classmethod
    def from_state_bytes(
        cls, data: bytes, config: FeatureConfig | None = None
    ) -> StreamingFeatureEngine:
        """An engine restored from :meth:`state_bytes` (its config must equal ``config``)."""
        F, I, larr, meta = unpack_state(data)  # noqa: N806, E741
        saved = FeatureConfig.model_validate(meta["config"])
        if config is not None and config != saved:
            raise ValueError("checkpoint was taken with a different FeatureConfig")
        eng = cls(saved)
        n = len(meta["symbols"])
        if F.shape != (n, eng.program.nf) or I.shape != (n, eng.program.ni):
            raise ValueError("checkpoint arrays do not match the feature program")
        eng._F, eng._I = F, I
        eng._wkey = np.full((n, 2), -1, dtype=np.int64)
        eng._larr[:] = larr
        eng._symbols = list(meta["symbols"])
        eng._index = {s: i for i, s in enumerate(eng._symbols)}
        eng._lk = int(meta["lk"])
        eng._day_end = int(meta["day_end"])
        eng.dropped_late = int(meta["dropped_late"])
        return eng
