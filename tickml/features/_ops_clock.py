"""Row-time ops on the clock-based state: scalars, one-second buckets, bars, session, leader.

Bars and the leader's closes are gathered once per row into the scratch buffer ``work`` by
:func:`tickml.features._snapshot.snapshot_row`; every op here only reads.
"""

from __future__ import annotations

import math

import numpy as np

from tickml.features import _layout as L
from tickml.features._jit import inline_kernel
from tickml.features._ops_ring import ratio0
from tickml.features._ops_time import (
    atr_pct,
    bar_vol_z,
    bin_price,
    corr_beta,
    value_area,
)

NAN = np.nan
TWO_PI = 2.0 * math.pi


@inline_kernel
def _session_op(F, IS, k, P, PF, op, t, lm):
    if op == L.OP_MIN_SINCE_OPEN:
        return (t - IS[k, L.I_OPEN]) / 6e10
    if op == L.OP_MIN_TO_CLOSE:
        return (IS[k, L.I_CLOSE] - t) / 6e10
    if op == L.OP_TOD_SIN or op == L.OP_TOD_COS:
        x = TWO_PI * ((t - IS[k, L.I_DAY_START]) / 8.64e13)
        return math.sin(x) if op == L.OP_TOD_SIN else math.cos(x)
    if op == L.OP_VWAP_DEV:
        v = F[k, L.F_SESS_V]
        if v <= 0:
            return NAN
        return lm - math.log((F[k, L.F_SESS_PV] + F[k, L.F_SESS_PV_C]) / v)
    if op == L.OP_SESS_RET:
        return lm - F[k, L.F_SESS_OPEN_LM]
    if op == L.OP_SESS_RANGE:
        return F[k, L.F_SESS_HI] - F[k, L.F_SESS_LO]
    if op == L.OP_SESS_RANGEPOS:
        hi, lo = F[k, L.F_SESS_HI], F[k, L.F_SESS_LO]
        if hi != hi:
            return NAN
        return 0.5 if hi == lo else (lm - lo) / (hi - lo)
    if op == L.OP_POC_DIST:
        if IS[k, L.I_POC] < 0:
            return NAN
        return lm - math.log(bin_price(F, P, PF, k, IS[k, L.I_POC]))
    if op == L.OP_VA_WIDTH or op == L.OP_VA_POS:
        lo, hi = value_area(F, IS, k, P, PF)
        if lo < 0:
            return NAN
        half = 0.5 * PF[L.PF_PROF_TICK]
        pl, ph = bin_price(F, P, PF, k, lo) - half, bin_price(F, P, PF, k, hi) + half
        if op == L.OP_VA_WIDTH:
            return (ph - pl) / math.exp(lm)
        return (math.exp(lm) - pl) / (ph - pl)
    if op == L.OP_SESS_LOGVOL:
        return math.log1p(F[k, L.F_SESS_V])
    return NAN


@inline_kernel
def _bar_op(P, PF, op, s, e, work):
    """Ops on the gathered bars (index bm = the last bar ended at the row time)."""
    bm, wb = P[L.P_BAR_M], P[L.P_W_BARS]
    n = bm + 1
    close = work[wb + L.B_CLOSE * n : wb + (L.B_CLOSE + 1) * n]
    if op == L.OP_BAR_RET:
        return close[bm] - close[bm - s]
    if op == L.OP_ATR:
        return atr_pct(
            close,
            work[wb + L.B_HIGH * n : wb + (L.B_HIGH + 1) * n],
            work[wb + L.B_LOW * n : wb + (L.B_LOW + 1) * n],
            s,
        )
    if op == L.OP_BAR_VOLZ:
        return bar_vol_z(close, work[wb + L.B_VOL * n : wb + (L.B_VOL + 1) * n], s)
    if op == L.OP_BAR_NEV:
        v = work[wb + L.B_NEV * n + bm]
        return 0.0 if v != v else v
    if op == L.OP_FRACDIFF_BAR:
        w0, nw = P[L.P_FD_BAR_OFF], P[L.P_FD_BAR_W]
        acc = 0.0
        for j in range(nw):
            acc += PF[w0 + j] * close[bm - j]
        return acc
    # cross-asset: own / leader closes and returns of the last m bars
    m, wc = P[L.P_CROSS_M], P[L.P_W_CROSS]
    own = close[bm - m : bm + 1]
    lead = work[wc : wc + m + 1]
    xr = work[wc + m + 1 : wc + 2 * m + 1]
    lr = work[wc + 2 * m + 1 : wc + 3 * m + 1]
    if op == L.OP_LEAD_RET:
        return lead[m] - lead[m - s]
    if op == L.OP_CORR or op == L.OP_BETA:
        corr, beta = corr_beta(xr, lr, m - s, m)
        return corr if op == L.OP_CORR else beta
    if op == L.OP_LEADCORR:  # own return at i against the leader's at i - 1
        corr, beta = corr_beta(xr[1:], lr[:-1], m - 1 - s, m - 1)
        return corr
    if op == L.OP_RESID_RET:  # s = horizon, e = beta window
        corr, beta = corr_beta(xr, lr, m - e, m)
        return (own[m] - own[m - s]) - beta * (lead[m] - lead[m - s])
    return NAN


@inline_kernel
def _day_rel(F, IS, k, op, a, s, t, lm, work, wt, nw, iw):
    """Window stats of the last s seconds against the symbol's own rate so far today.

    Rates are per second since the day's first tick (at least 1 s); the day's sums are the
    bucket sums up to the row time (the gathered slot nw). 0 when the day's rate is 0."""
    secs = max((t - IS[k, L.I_FIRST_TS]) / 1e9, 1.0)
    day_r2 = work[wt + L.S_R2 * (nw + 1) + nw]
    if op == L.OP_TW_RETDAY:
        return ratio0(lm - work[wt + L.S_CLOSE * (nw + 1) + iw], math.sqrt(day_r2 * s / secs))
    x = work[wt + a * (nw + 1) + nw] - work[wt + a * (nw + 1) + iw]
    if op == L.OP_TW_RVREL:
        return ratio0(math.sqrt(max(x, 0.0) / s), math.sqrt(day_r2 / secs))
    return ratio0(x / s, F[k, L.F_DAY_V] / secs)


@inline_kernel
def clock_op(F, IS, k, P, PF, prog, i, t, work):
    """Ops on the state scalars, time buckets, bars, session and leader."""
    op, a, b = prog[i, L.C_OP], prog[i, L.C_A], prog[i, L.C_B]
    s, e = prog[i, L.C_START], prog[i, L.C_END]
    lm = F[k, L.F_LM]
    if op == L.OP_STREAK:
        return F[k, L.F_STREAK]
    if op == L.OP_TSTREAK:
        return F[k, L.F_TSTREAK]
    if op == L.OP_SINCE_LAST:
        return (t - IS[k, L.I_LAST_TS]) / 1e9
    if op == L.OP_DEPTH_LOGRATIO:
        return math.log(F[k, L.F_BSZ] / F[k, L.F_ASZ])
    if L.OP_TW_RET <= op <= L.OP_TW_RETDAY:  # gathered buckets: stat at kt - w and at kt
        nw, wt, iw = P[L.P_NTW], P[L.P_W_TIME], prog[i, L.C_SI]
        if op == L.OP_TW_RET:
            return lm - work[wt + L.S_CLOSE * (nw + 1) + iw]
        if op >= L.OP_TW_RVREL:
            return _day_rel(F, IS, k, op, a, s, t, lm, work, wt, nw, iw)
        x = work[wt + a * (nw + 1) + nw] - work[wt + a * (nw + 1) + iw]
        if op == L.OP_TW_SQRT:
            return math.sqrt(max(x, 0.0))
        if op == L.OP_TW_RATE:
            return x / s
        if op == L.OP_TW_VOLREL:
            secs = max((t - IS[k, L.I_FIRST_TS]) / 1e9, 1.0)
            return ratio0(x / s, F[k, L.F_DAY_V] / secs)
        if op == L.OP_TW_OVER_DEPTH:
            return x / (F[k, L.F_BSZ] + F[k, L.F_ASZ])
        y = work[wt + b * (nw + 1) + nw] - work[wt + b * (nw + 1) + iw]
        if op == L.OP_TW_RATIO:
            return ratio0(x, y)
        return math.log((1.0 + x) / (1.0 + y))
    if op < L.OP_MIN_SINCE_OPEN or op >= L.OP_LEAD_RET:
        return _bar_op(P, PF, op, s, e, work)
    return _session_op(F, IS, k, P, PF, op, t, lm)
