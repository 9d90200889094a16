"""Window statistics over the tick rings, computed at snapshot time.

Every ring input keeps its last ``cap`` values and the day-cumulative sums of its values and
squares (see :func:`tickml.features._tick.push`). At snapshot time the prefix moments of each
needed input, from age 0 (the newest tick) to each checkpoint age the program uses (every
window start and end), go to the scratch buffer; a window [s, e) is then the difference of
two checkpoints, so a feature costs O(1). Sums and variances come from the cumulative sums in
O(1) per checkpoint; inputs whose features need order statistics, slopes, higher moments or
the variance of a level (log price) are scanned, with values shifted by the newest one
(y = x - x0) so that variances and slopes of levels stay accurate. Cumulative sums only add
(no subtraction of leaving values), so nothing drifts: a window sum carries the rounding of
the day's running total, ~1e-16 of it (exact for the integer-valued inputs: sizes, counts).
"""

from __future__ import annotations

import math

import numpy as np

from tickml.features import _layout as L
from tickml.features._jit import inline_kernel, kernel

NAN = np.nan


@inline_kernel
def slot(cap, pos, a):
    """Ring slot of age a (0 = newest, at slot pos)."""
    j = pos - a
    return j + cap if j < 0 else j


@inline_kernel
def xat(F, k, off, cap, nin, inp, pos, a):
    """Value of input inp at age a (a > 0 only for inputs that keep their past values)."""
    if a == 0:
        return F[k, off + 3 * nin * cap + inp]
    return F[k, off + inp * cap + slot(cap, pos, a)]


@kernel
def _scan(F, k, off, cap, nin, i, pos, ck, nck, work, base):
    """All prefix moments of input i by one pass over its values, newest first."""
    x0 = xat(F, k, off, cap, nin, i, pos, 0)
    s1 = y1 = y2 = y3 = ya = ab = sg = r2 = 0.0
    mn, mx = np.inf, -np.inf
    nan = False
    xb = off + i * cap
    for c in range(nck):
        for a in range(ck[c - 1] if c > 0 else 0, ck[c]):
            x = F[k, xb + slot(cap, pos, a)]
            y = x - x0
            s1 += x
            y1 += y
            y2 += y * y
            y3 += y * y * y
            ya += a * y
            ab += abs(x)
            sg += (1.0 if x > 0 else 0.0) - (1.0 if x < 0 else 0.0)
            r2 += x * x
            mn = min(mn, x)
            mx = max(mx, x)
            nan |= x != x
        b = base + c * L.N_MOM
        work[b + L.MO_S1] = s1
        work[b + L.MO_Y1] = y1
        work[b + L.MO_Y2] = y2
        work[b + L.MO_Y3] = y3
        work[b + L.MO_YA] = ya
        work[b + L.MO_ABS] = ab
        work[b + L.MO_SGN] = sg
        work[b + L.MO_R2] = r2
        work[b + L.MO_MIN] = NAN if nan else mn
        work[b + L.MO_MAX] = NAN if nan else mx


@kernel
def ring_moments(F, k, off, cap, nin, pos, n, n_book, ck, nck, needs, work, w0):
    """Prefix moments of every needed input of one ring at the checkpoint ages ck[0..nck).

    work[w0 + (i * nck + c) * N_MOM + moment] = moment of ages [0, ck[c]) of input i. needs[i]
    holds input i's NEED_* flags. n = ticks in the ring today; n_book = how many of the newest
    have a book (windows reaching further back are NaN for the book inputs; -1: no such rule).
    Cumulative sums are stored slot-major (all inputs of a slot side by side), so one
    checkpoint reads a few cache lines for every input.
    """
    for i in range(nin):
        if needs[i] & L.NEED_SCAN:
            _scan(F, k, off, cap, nin, i, pos, ck, nck, work, w0 + i * nck * L.N_MOM)
    s0 = slot(cap, pos, 0)
    c1, c2 = off + nin * cap, off + 2 * nin * cap
    for c in range(nck):
        e = ck[c]
        se = slot(cap, pos, e)
        for i in range(nin):
            need = needs[i]
            if need == 0 or need & L.NEED_SCAN:
                continue
            b = w0 + (i * nck + c) * L.N_MOM
            valid = n
            if n_book >= 0:
                for j in L.BOOK_INPUTS:
                    if i == j:
                        valid = n_book
            if e > valid:
                work[b + L.MO_S1] = work[b + L.MO_Y1] = work[b + L.MO_Y2] = NAN
                work[b + L.MO_R2] = NAN
                continue
            s1 = s2 = 0.0
            if e > 0:
                s1 = F[k, c1 + s0 * nin + i]
                s2 = F[k, c2 + s0 * nin + i]
                if e < n:  # else the window starts at the day's first tick
                    s1 -= F[k, c1 + se * nin + i]
                    s2 -= F[k, c2 + se * nin + i]
            x0 = F[k, c2 + nin * cap + i]  # the newest values are side by side
            work[b + L.MO_S1] = s1
            work[b + L.MO_R2] = s2
            work[b + L.MO_Y1] = s1 - e * x0
            work[b + L.MO_Y2] = s2 - 2.0 * x0 * s1 + e * x0 * x0


@inline_kernel
def dm(work, base, si, ei, mom):
    """Moment `mom` of the window between checkpoints si < ei (base = the input's block)."""
    return work[base + ei * L.N_MOM + mom] - work[base + si * L.N_MOM + mom]


@kernel
def mstd(work, base, si, ei, n):
    """Sample standard deviation (ddof=1) of a window from its shifted moments."""
    y1 = dm(work, base, si, ei, L.MO_Y1)
    var = (dm(work, base, si, ei, L.MO_Y2) - y1 * y1 / n) / (n - 1)
    if var != var:
        return NAN
    return math.sqrt(var) if var > 0.0 else 0.0


@kernel
def mslope(work, base, si, ei, e, n):
    """OLS slope against the order of the ticks (oldest first), per tick."""
    y1 = dm(work, base, si, ei, L.MO_Y1)
    sty = (e - 1) * y1 - dm(work, base, si, ei, L.MO_YA)  # sum of u * y, u = e - 1 - age
    sxy = sty - (n - 1) / 2.0 * y1
    return sxy / (n * (n * n - 1.0) / 12.0)


@kernel
def mskew(work, base, si, ei, n):
    """Adjusted Fisher-Pearson skewness (pandas ``Series.skew``); 0 for a flat window."""
    m = dm(work, base, si, ei, L.MO_Y1) / n
    e2 = dm(work, base, si, ei, L.MO_Y2) / n
    e3 = dm(work, base, si, ei, L.MO_Y3) / n
    m2 = e2 - m * m
    m3 = e3 - 3.0 * m * e2 + 2.0 * m * m * m
    if m2 != m2:
        return NAN
    if m2 <= 1e-14 * (e2 + 1e-300):  # flat window (up to rounding)
        return 0.0
    return math.sqrt(n * (n - 1.0)) / (n - 2.0) * m3 / m2**1.5


@kernel
def ratio0(num, den):
    """num / den with 0 for a zero denominator (NaN stays NaN)."""
    if den != den or num != num:
        return NAN
    if den == 0.0:
        return 0.0
    return num / den


@kernel
def zscore_of(vals, i):
    """z-score of vals[i] among vals (sample std, two-pass); 0 when they are all equal."""
    n = vals.shape[0]
    m = vals.sum() / n
    acc = 0.0
    for j in range(n):
        acc += (vals[j] - m) ** 2
    sd = math.sqrt(acc / (n - 1))
    if sd != sd:
        return NAN
    return 0.0 if sd == 0.0 else (vals[i] - m) / sd


@kernel
def slope_of(vals):
    """OLS slope of vals against their order (index 0 = oldest)."""
    n = vals.shape[0]
    mx = (n - 1) / 2.0
    my = vals.sum() / n
    sxy, sxx = 0.0, 0.0
    for j in range(n):
        sxy += (j - mx) * (vals[j] - my)
        sxx += (j - mx) ** 2
    return sxy / sxx
