"""Recent volatility: THE computation behind the ``recent_vol`` input of the decision function
and of volatility-scaled sizing, in the backtest and in the live scorer alike.

Definition: per symbol and local day, the sample standard deviation (ddof 1) of its previous
:data:`VOL_ROWS` interval returns of that day (earlier rows only, never the current one),
counting finite values only; NaN with fewer than :data:`VOL_MIN` of them. The unit is the
returns' (the pipeline's ``ret_b1``: basis points).

Two entry points, one arithmetic:

* :func:`recent_vol` (batch): every row of a frame at once (the backtest's input column);
* :class:`RecentVol` (streaming): one cross-section per boundary, state per symbol (the live
  scorer), persisted as numeric arrays (``.npz``, no pickle) so a restarted worker continues
  exactly.

Both lay the window out as a ``(rows, VOL_ROWS)`` array, oldest return first, NaN-padded, and
call :func:`window_std`, which accumulates column by column: a row's result depends only on its
own window, never on which other rows share the call, so batch and live agree bit for bit.
Vectorised over symbols throughout (no per-symbol Python loop).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

from tickml.market import day_numbers
from tickml.slots import SymbolSlots

VOL_ROWS = 30
VOL_MIN = 5


def window_std(window: np.ndarray, min_count: int = VOL_MIN) -> np.ndarray:
    """Sample standard deviation (ddof 1) of each row's finite values; NaN with fewer than
    ``min_count``. ``window`` is ``(n, w)``; the sums run over the columns in order."""
    x = np.asarray(window, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"window must be 2-D, got shape {x.shape}")
    n, w = x.shape
    ok = np.isfinite(x)
    count = ok.sum(axis=1)
    total = np.zeros(n)
    for k in range(w):
        total += np.where(ok[:, k], x[:, k], 0.0)
    mean = total / np.maximum(count, 1)
    squares = np.zeros(n)
    for k in range(w):
        d = np.where(ok[:, k], x[:, k] - mean, 0.0)
        squares += d * d
    out = np.full(n, np.nan)
    enough = count >= max(min_count, 2)
    out[enough] = np.sqrt(squares[enough] / (count[enough] - 1))
    return out


def recent_vol(
    symbols: Sequence[str] | np.ndarray,
    ts_ns: np.ndarray,
    returns: np.ndarray,
    tz: str = "America/New_York",
    rows: int = VOL_ROWS,
    min_count: int = VOL_MIN,
) -> np.ndarray:
    """Recent volatility of every row (see the module doc); aligned with the inputs, which may
    come in any order. ``(symbol, ts)`` must be unique."""
    ts = np.asarray(ts_ns, dtype=np.int64)
    ret = np.asarray(returns, dtype=np.float64)
    n = ts.size
    if ret.shape != (n,) or len(symbols) != n:
        raise ValueError("symbols, ts_ns and returns must have the same length")
    if n == 0:
        return np.zeros(0)
    codes, _ = pd.factorize(pd.Index(np.asarray(symbols, dtype=object)), sort=True)
    day = day_numbers(ts, tz)
    order = np.lexsort((ts, day, codes))
    c, d = codes[order], day[order]
    first = np.r_[True, (c[1:] != c[:-1]) | (d[1:] != d[:-1])]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    r = ret[order]
    pos = np.arange(n)
    win = np.full((n, rows), np.nan)
    for j in range(rows):  # column j: the return rows - j rows back (oldest first)
        src = pos - (rows - j)
        ok = src >= start
        win[ok, j] = r[src[ok]]
    out = np.empty(n)
    out[order] = window_std(win, min_count)
    return out


class RecentVol:
    """Streaming :func:`recent_vol`: call :meth:`step` once per boundary with the universe.

    :meth:`step` is :meth:`known` (the volatility at this boundary) then :meth:`append` (the
    boundary's returns). The live scorer calls them apart, around publishing, and calls
    :meth:`prepare` after it published: the next boundary's volatilities are computed then
    (they depend only on returns already appended), so :meth:`known` is a gather on the hot
    path. A row's value does not depend on which rows share a call (:func:`window_std`), so a
    prepared value equals the one computed at the boundary, bit for bit.
    """

    def __init__(self, rows: int = VOL_ROWS, min_count: int = VOL_MIN) -> None:
        self.rows, self.min_count = rows, min_count
        self.slots = SymbolSlots()
        self.hist = np.full((0, rows), np.nan)
        self.day = np.zeros(0, dtype=np.int64)
        self._ready: np.ndarray | None = None  # window_std of every slot's history (prepare)

    @property
    def symbols(self) -> list[str]:
        return self.slots.symbols

    def _resolve(self, symbols: Sequence[str]) -> np.ndarray:
        idx, added = self.slots.resolve(symbols)
        if added:
            self.hist = np.vstack([self.hist, np.full((added, self.rows), np.nan)])
            self.day = np.r_[self.day, np.full(added, -1, dtype=np.int64)]
            if self._ready is not None:  # a new slot's history is empty: NaN
                self._ready = np.r_[self._ready, np.full(added, np.nan)]
        return idx

    def step(
        self, day: int, symbols: Sequence[str], returns: np.ndarray, new: np.ndarray
    ) -> np.ndarray:
        """The volatility known at this boundary (previous returns of ``day``), then append the
        boundary's return for the symbols with a ``new`` (fresh) row. ``day``: the local day
        number (:func:`tickml.market.day_numbers`)."""
        n = len(symbols)
        if np.shape(returns) != (n,) or np.shape(new) != (n,):
            raise ValueError("returns and new must align with symbols")
        out, idx = self.known(day, symbols)
        self.append(idx, returns, new)
        return out

    def known(self, day: int, symbols: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(the volatility of ``symbols`` at this boundary, their slots for :meth:`append`);
        a symbol whose history is of another day starts ``day`` empty."""
        idx = self._resolve(symbols)
        stale_day = self.day[idx] != day
        if stale_day.any():
            reset = idx[stale_day]
            self.hist[reset] = np.nan
            self.day[reset] = day
            if self._ready is not None:
                self._ready[reset] = np.nan  # window_std of an empty window
        if self._ready is not None:
            return self._ready[idx], idx
        return window_std(self.hist[idx], self.min_count), idx

    def append(self, idx: np.ndarray, returns: np.ndarray, new: np.ndarray) -> None:
        """Append the returns of the slots ``idx`` (from :meth:`known`) whose row is ``new``."""
        ret = np.asarray(returns, dtype=np.float64)
        fresh = np.asarray(new, dtype=bool)
        if ret.shape != (idx.size,) or fresh.shape != (idx.size,):
            raise ValueError("returns and new must align with symbols")
        upd = idx[fresh]
        if upd.size:
            self._ready = None
            self.hist[upd, :-1] = self.hist[upd, 1:]
            self.hist[upd, -1] = ret[fresh]

    def prepare(self) -> None:
        """Compute every slot's volatility now, for the next :meth:`known` (off the hot path)."""
        self._ready = window_std(self.hist, self.min_count)

    # -- persistence: numeric arrays only ------------------------------------------------------
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(
            buf,
            symbols=np.array(self.symbols, dtype=np.str_),
            hist=self.hist,
            day=self.day,
            shape=np.array([self.rows, self.min_count], dtype=np.int64),
        )
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> RecentVol:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            rows, min_count = (int(v) for v in z["shape"])
            out = cls(rows, min_count)
            out.slots = SymbolSlots(z["symbols"])
            out.hist = z["hist"].reshape(len(out.symbols), rows).astype(np.float64)
            out.day = z["day"].astype(np.int64)
        if out.day.size != len(out.symbols):
            raise ValueError("RecentVol state arrays do not match its symbols")
        return out
