"""Snapshot-time readers of the clock-based state: one-second buckets, bars, session, leader.

Everything here reads the state as of the row time ``t`` (every tick applied has ts <= t) and
never writes it. Buckets and bars newer than the symbol's last tick are "virtual": empty, with
the last reference price carried.
"""

from __future__ import annotations

import math

import numpy as np

from tickml.features import _layout as L
from tickml.features._jit import kernel

NS_SEC = 1_000_000_000
NAN = np.nan


@kernel
def sec_index(IS, k, t):
    """Index of the one-second bucket holding time t: bucket j is (start+j s, start+(j+1) s]."""
    return (t - IS[k, L.I_DAY_START] - 1) // NS_SEC


@kernel
def gather_time(F, IS, k, P, t, wins, nw, work, w0):
    """work[w0 + stat * (nw + 1) + i] = the stat at bucket kt - wins[i] (i < nw) and at kt,
    kt = the bucket holding t: day-cumulative sums (0 before the day) and, for S_CLOSE, the
    log price at the bucket's end (carried after the last tick, NaN before the first)."""
    kt = sec_index(IS, k, t)
    cur = IS[k, L.I_SEC_CUR]
    cap, off = P[L.P_SEC_CAP], P[L.P_SEC_OFF]
    for i in range(nw + 1):
        j = kt - wins[i] if i < nw else kt
        for st in range(L.N_SEC_STATS):
            if j < 0 or cur < 0:
                v = NAN if st == L.S_CLOSE else 0.0
            elif j > cur:
                v = F[k, L.F_LM] if st == L.S_CLOSE else F[k, off + st * cap + cur % cap]
            else:
                v = F[k, off + st * cap + j % cap]
            work[w0 + st * (nw + 1) + i] = v


@kernel
def bar_end_index(IS, k, P, t):
    """Index of the last bar that ended at or before t (bar j is (start+j*bar, start+(j+1)*bar])."""
    return (t - IS[k, L.I_DAY_START]) // P[L.P_BAR_NS] - 1


@kernel
def gather_bars(F, IS, k, P, je, bm, work, w0):
    """work[w0 + stat * (bm + 1) + i] = the stat of bar je - bm + i, for the 5 bar stats.

    Bars after the symbol's last tick are empty and flat at the last close; bars before its
    first tick of the day (or older than the ring) are NaN; a bar without a priced tick has
    high = low = close."""
    cur, cap, off = IS[k, L.I_BAR_CUR], P[L.P_BAR_CAP], P[L.P_BAR_OFF]
    n = bm + 1
    lm = F[k, L.F_LM]
    for i in range(n):
        j = je - bm + i
        if cur < 0 or j < 0 or j <= cur - cap:
            c = h = lo = v = ne = NAN
        elif j > cur:
            c = h = lo = lm
            v = ne = 0.0
        else:
            slot = off + j % cap
            c = F[k, slot + L.B_CLOSE * cap]
            h = F[k, slot + L.B_HIGH * cap]
            lo = F[k, slot + L.B_LOW * cap]
            v = F[k, slot + L.B_VOL * cap]
            ne = F[k, slot + L.B_NEV * cap]
            if h != h:
                h = c
            if lo != lo:
                lo = c
        work[w0 + L.B_CLOSE * n + i] = c
        work[w0 + L.B_HIGH * n + i] = h
        work[w0 + L.B_LOW * n + i] = lo
        work[w0 + L.B_VOL * n + i] = v
        work[w0 + L.B_NEV * n + i] = ne


@kernel
def leader_closes(LF, LI, lk, larr, day_end, je, m, out):
    """The leader's closes of bars je-m .. je on the day ending at day_end (NaN if unknown)."""
    out[:] = NAN
    if lk < 0 or LI[lk, L.I_DAY_END] != day_end:
        return
    cur = LI[lk, L.I_BAR_CUR]
    if cur < 0:
        return
    for i in range(m + 1):
        j = je - m + i
        if j < 0:
            continue
        out[i] = larr[j] if j < cur else LF[lk, L.F_LM]


@kernel
def atr_pct(close, high, low, n):
    """Mean true range of the last n bars of the gathered arrays, in percent (log units x 100)."""
    last = close.shape[0] - 1
    acc = 0.0
    for i in range(last - n + 1, last + 1):
        pc, hi, lo = close[i - 1], high[i], low[i]
        if pc != pc or hi != hi or lo != lo:
            return NAN
        acc += max(hi, pc) - min(lo, pc)
    return acc / n * 100.0


@kernel
def bar_vol_z(close, vol, n):
    """z-score of the last bar's volume against the n bars before it (0 if all equal)."""
    last = close.shape[0] - 1
    if close[last - n] != close[last - n]:
        return NAN  # the n reference bars are not all inside the day's data yet
    ref = vol[last - n : last]
    m = ref.sum() / n
    acc = 0.0
    for j in range(n):
        acc += (ref[j] - m) ** 2
    sd = math.sqrt(acc / (n - 1))
    return 0.0 if sd == 0.0 else (vol[last] - m) / sd


@kernel
def corr_beta(x, y, s, e):
    """Pearson correlation and beta (cov/var y) of x[s:e] on y[s:e]; 0 on zero variance."""
    n = e - s
    mx, my = 0.0, 0.0
    for i in range(s, e):
        mx += x[i]
        my += y[i]
    mx /= n
    my /= n
    sxy, sxx, syy = 0.0, 0.0, 0.0
    for i in range(s, e):
        dx, dy = x[i] - mx, y[i] - my
        sxy += dx * dy
        sxx += dx * dx
        syy += dy * dy
    if sxy != sxy:
        return NAN, NAN
    corr = 0.0 if sxx == 0.0 or syy == 0.0 else sxy / math.sqrt(sxx * syy)
    beta = 0.0 if syy == 0.0 else sxy / syy
    return corr, beta


@kernel
def value_area(F, IS, k, P, PF):
    """(low bin, high bin) of the value area grown from the point of control; (-1, -1) if none."""
    poc = IS[k, L.I_POC]
    if poc < 0:
        return -1, -1
    off = P[L.P_PROF_OFF]
    plo, phi = IS[k, L.I_PROF_LO], IS[k, L.I_PROF_HI]
    target = PF[L.PF_VALUE_AREA] * F[k, L.F_SESS_V]
    acc = F[k, off + poc]
    lo, hi = poc, poc
    while acc < target and (lo > plo or hi < phi):
        up = F[k, off + hi + 1] if hi < phi else -1.0
        dn = F[k, off + lo - 1] if lo > plo else -1.0
        if up > dn:
            hi += 1
            acc += up
        else:
            lo -= 1
            acc += dn
    return lo, hi


@kernel
def bin_price(F, P, PF, k, b):
    return F[k, L.F_PROF_ANCHOR] + (b - P[L.P_PROF_BINS] // 2) * PF[L.PF_PROF_TICK]
