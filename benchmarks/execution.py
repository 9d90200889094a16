"""The execution model's per-boundary costs at universe size: the position book's step (what the
shadow ledger pays per boundary, and the backtest per timestamp), its state's serialization,
and the recent-volatility step the scorer pays on its hot path.

Rows (one JSON object each), for every universe size in ``symbols``:

* ``book-step``: :meth:`PositionBook.step` with the sized book (volatility sizing, per-symbol
  cap, gross and net caps, the VaR risk limit over a ``var_window`` window), ~2% of the
  symbols signalling per boundary; p50 / p99 ms over ``steps`` boundaries after a warm-up,
  and beside it the unit-size book without limits (the cost of sizing and the risk limit);
* ``book-state``: ``to_bytes`` (the ``.npz`` the ledger stores per boundary): p50 ms and bytes;
* ``recent-vol``: :class:`tickml.volatility.RecentVol.step` (vectorised) p50 / p99 ms, and the
  per-symbol Python loop it replaced (the scorer's former ``RecentVol``) as the baseline.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from typing import Any

import numpy as np

from tickml.execution import ExecutionConfig, PositionBook, sized_preset
from tickml.volatility import VOL_MIN, VOL_ROWS, RecentVol


class LoopRecentVol:
    """The replaced implementation (one deque per symbol, a Python loop): the baseline."""

    def __init__(self) -> None:
        self._hist: dict[str, tuple[object, deque[float]]] = {}

    def step(self, day: object, symbols: list[str], ret: np.ndarray, new: np.ndarray) -> np.ndarray:
        out = np.full(len(symbols), np.nan)
        for i, s in enumerate(symbols):
            d, h = self._hist.get(s, (None, None))
            if h is None or d != day:
                h = deque(maxlen=VOL_ROWS)
                self._hist[s] = (day, h)
            vals = np.fromiter(h, dtype=np.float64, count=len(h))
            ok = vals[np.isfinite(vals)]
            if ok.size >= VOL_MIN:
                out[i] = float(np.std(ok, ddof=1))
            if new[i]:
                h.append(float(ret[i]))
        return out


def _pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    return {"p50": round(float(np.median(a)), 3), "p99": round(float(np.percentile(a, 99)), 3)}


def _book_steps(
    cfg: ExecutionConfig, n: int, steps: int, warmup: int, seed: int
) -> tuple[list[float], PositionBook]:
    rng = np.random.default_rng(seed)
    syms = [f"S{i:05d}" for i in range(n)]
    mid = 50 * np.exp(rng.normal(0, 0.5, n))
    spread = np.full(n, 0.01)
    book = PositionBook(cfg)
    t0 = 1_700_000_000 * 10**9
    times = []
    for k in range(warmup + steps):
        ret = rng.normal(0, 3, n)
        mid = mid * (1 + ret * 1e-4)
        want = np.where(rng.random(n) < 0.02, rng.choice([-1, 1], n), 0).astype(np.int8)
        vol = rng.uniform(2, 6, n)
        w = time.perf_counter()
        book.step(t0 + k * 60 * 10**9, syms, want, mid, spread, vol=vol, returns=ret,
                  strength=rng.uniform(-1, 1, n), bid_size=np.full(n, 500.0),
                  ask_size=np.full(n, 500.0))  # fmt: skip
        if k >= warmup:
            times.append(time.perf_counter() - w)
    return times, book


def run(
    symbols: int | list[int] | tuple[int, ...] = (1000, 5000),
    steps: int = 100,
    warmup: int = 30,
    var_window: int = 60,
    seed: int = 3,
) -> list[dict[str, Any]]:
    sizes = [symbols] if isinstance(symbols, int) else list(symbols)
    rows: list[dict[str, Any]] = []
    horizon = dt.timedelta(minutes=15)
    sized = sized_preset(horizon).model_copy(update={"var_window": var_window})
    unit = ExecutionConfig(horizon=horizon)
    for n in sizes:
        t_sized, book = _book_steps(sized, n, steps, warmup, seed)
        t_unit, _ = _book_steps(unit, n, steps, warmup, seed)
        rows.append({"name": "book-step", "symbols": n, "unit": "ms", **_pct(t_sized),
                     "baseline_unit_book": _pct(t_unit), "var_window": var_window,
                     "open_positions": int((book.s["side"] != 0).sum())})  # fmt: skip
        ser = []
        for _ in range(20):
            w = time.perf_counter()
            data = book.to_bytes()
            ser.append(time.perf_counter() - w)
        rows.append({"name": "book-state", "symbols": n, "unit": "ms",
                     "p50": _pct(ser)["p50"], "bytes": len(data)})  # fmt: skip
        rng = np.random.default_rng(seed)
        syms = [f"S{i:05d}" for i in range(n)]
        new = np.ones(n, dtype=bool)
        fast, slow = RecentVol(), LoopRecentVol()
        t_fast, t_slow = [], []
        for k in range(warmup + steps):
            ret = rng.normal(0, 3, n)
            w = time.perf_counter()
            a = fast.step(1, syms, ret, new)
            t1 = time.perf_counter()
            b = slow.step(1, syms, ret, new) if k < warmup + steps // 5 else a
            t2 = time.perf_counter()
            if k >= warmup:
                t_fast.append(t1 - w)
                if k < warmup + steps // 5:
                    t_slow.append(t2 - t1)
                    np.testing.assert_allclose(a, b, rtol=1e-12, equal_nan=True)
        rows.append({"name": "recent-vol", "symbols": n, "unit": "ms", **_pct(t_fast),
                     "baseline_per_symbol_loop": _pct(t_slow),
                     "ratio": round(float(np.median(t_slow) / np.median(t_fast)), 1)})  # fmt: skip
    return rows
