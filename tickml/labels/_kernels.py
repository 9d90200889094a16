"""Numba kernels of the labels (self-contained: numba caches per source file)."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def reference_prices(
    seg: np.ndarray, bid: np.ndarray, ask: np.ndarray, trade: np.ndarray
) -> np.ndarray:
    """Per tick, the reference price known after it: the mid of the last two-sided book seen
    in its segment (symbol-day), else the last trade price of the segment, else NaN."""
    n = seg.shape[0]
    out = np.empty(n, dtype=np.float64)
    cur = -1
    last_mid = np.nan
    last_trade = np.nan
    for i in range(n):
        if seg[i] != cur:
            cur = seg[i]
            last_mid = np.nan
            last_trade = np.nan
        b = bid[i]
        a = ask[i]
        if not (math.isnan(b) or math.isnan(a)):
            last_mid = 0.5 * (b + a)
        t = trade[i]
        if not math.isnan(t):
            last_trade = t
        out[i] = last_mid if not math.isnan(last_mid) else last_trade
    return out


@njit(cache=True)
def _bisect_right(ts: np.ndarray, x: np.int64, lo: np.int64, hi: np.int64) -> np.int64:
    while lo < hi:
        mid = (lo + hi) // 2
        if ts[mid] <= x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def reference_index(
    ts: np.ndarray, seg_lo: np.ndarray, seg_hi: np.ndarray, t: np.ndarray
) -> np.ndarray:
    """Per event, the index of the last price point with ts <= t in [seg_lo, seg_hi), or -1."""
    n = t.shape[0]
    out = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        lo = seg_lo[i]
        if lo < 0:
            continue
        r = _bisect_right(ts, t[i], lo, seg_hi[i]) - 1
        if r >= lo:
            out[i] = r
    return out


@njit(cache=True)
def scan_paths(
    ts: np.ndarray,
    p: np.ndarray,
    ref_idx: np.ndarray,
    seg_hi: np.ndarray,
    end: np.ndarray,
    up: np.ndarray,
    down: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Walk each event's path (ref_idx, last point with ts <= end] until a barrier is touched.

    Returns touch (1 up, -1 down, 0 none; -2 no reference), the index of the touching point
    (or of the last path point, ref_idx when the path is empty), the price at that point (the
    close at the vertical barrier when no touch), and the max / min price over the reference and
    the path up to and including the touch.
    """
    n = ref_idx.shape[0]
    touch = np.full(n, -2, dtype=np.int8)
    stop_idx = np.full(n, -1, dtype=np.int64)
    close = np.full(n, np.nan)
    hi_p = np.full(n, np.nan)
    lo_p = np.full(n, np.nan)
    for i in range(n):
        r = ref_idx[i]
        if r < 0:
            continue
        e = _bisect_right(ts, end[i], r + 1, seg_hi[i])
        ref = p[r]
        mx = ref
        mn = ref
        u = up[i]
        d = down[i]
        k = r
        hit = 0
        for j in range(r + 1, e):
            x = p[j]
            k = j
            if x > mx:
                mx = x
            if x < mn:
                mn = x
            if x >= u:
                hit = 1
                break
            if x <= d:
                hit = -1
                break
        touch[i] = hit
        stop_idx[i] = k
        close[i] = p[k]
        hi_p[i] = mx
        lo_p[i] = mn
    return touch, stop_idx, close, hi_p, lo_p


@njit(cache=True)
def grid_vol(
    ts: np.ndarray,
    p: np.ndarray,
    seg_lo: np.ndarray,
    seg_hi: np.ndarray,
    anchor: np.ndarray,
    n_grid: np.ndarray,
    offset: np.ndarray,
    step: np.int64,
    alpha: float,
    min_n: np.int64,
) -> np.ndarray:
    """EWMA volatility of sampled log returns, per segment on the grid anchor + k * step.

    Sample k is the last price with ts <= anchor + k * step (missing before the segment's first
    price); return k is log(sample k / sample k-1) when both exist. The value at grid point k is
    sqrt(sum_i w_i r_i^2 / sum_i w_i) over the returns up to k with weights (1 - alpha)^age
    (pandas ``ewm(alpha=alpha, adjust=True).mean()`` of r^2, not demeaned), NaN while fewer
    than ``min_n`` returns exist. Only prices at or before the grid point enter it.
    """
    out = np.full(offset[-1] if offset.shape[0] else 0, np.nan)
    keep = 1.0 - alpha
    for s in range(seg_lo.shape[0]):
        lo = seg_lo[s]
        hi = seg_hi[s]
        j = lo - 1
        prev = np.nan
        num = 0.0
        den = 0.0
        cnt = 0
        base = offset[s]
        for k in range(n_grid[s]):
            g = anchor[s] + k * step
            while j + 1 < hi and ts[j + 1] <= g:
                j += 1
            if j < lo:
                continue
            lp = math.log(p[j])
            if not math.isnan(prev):
                ret = lp - prev
                num = keep * num + ret * ret
                den = keep * den + 1.0
                cnt += 1
            prev = lp
            if cnt >= min_n:
                out[base + k] = math.sqrt(num / den)
    return out
