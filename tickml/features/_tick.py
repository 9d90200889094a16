"""Pieces of the per-tick update: bucket and bar roll-over, the book, trades, the profile."""

from __future__ import annotations

import math

import numpy as np

from tickml.features import _layout as L
from tickml.features._jit import inline_kernel, kernel

NAN = np.nan


@kernel
def roll_secs(F, IS, k, P, ks):
    """Open bucket ks: buckets hold day-cumulative sums, so new ones start at the last total."""
    cur = IS[k, L.I_SEC_CUR]
    if ks <= cur:
        return
    off, cap = P[L.P_SEC_OFF], P[L.P_SEC_CAP]
    start = cur + 1
    if ks - start >= cap:
        start = ks - cap + 1
    for s in range(L.N_SEC_STATS):
        if s == L.S_CLOSE:
            carry = F[k, L.F_LM]
        else:
            carry = F[k, off + s * cap + cur % cap] if cur >= 0 else 0.0
        for j in range(start, ks + 1):
            F[k, off + s * cap + j % cap] = carry
    IS[k, L.I_SEC_CUR] = ks


@kernel
def roll_bars(F, IS, k, P, kb, larr):
    cur = IS[k, L.I_BAR_CUR]
    if kb <= cur:
        return
    off, cap = P[L.P_BAR_OFF], P[L.P_BAR_CAP]
    close = F[k, L.F_LM]
    if IS[k, L.I_IS_LEADER] == 1 and cur >= 0:
        for j in range(cur, kb):  # completed bars: the last close, carried over empty bars
            larr[j] = close
    start = cur + 1
    if kb - start >= cap:
        start = kb - cap + 1
    for j in range(start, kb + 1):
        idx = j % cap
        hl = close if j < kb else NAN  # empty bars: flat at the carried close
        F[k, off + L.B_CLOSE * cap + idx] = close
        F[k, off + L.B_HIGH * cap + idx] = hl
        F[k, off + L.B_LOW * cap + idx] = hl
        F[k, off + L.B_VOL * cap + idx] = 0.0
        F[k, off + L.B_NEV * cap + idx] = 0.0
    IS[k, L.I_BAR_CUR] = kb


@kernel
def profile_add(F, IS, k, P, PF, price, size):
    nb = P[L.P_PROF_BINS]
    half = nb // 2
    anchor = F[k, L.F_PROF_ANCHOR]
    if anchor != anchor:
        anchor = price
        F[k, L.F_PROF_ANCHOR] = price
    b = int(math.floor((price - anchor) / PF[L.PF_PROF_TICK] + 0.5)) + half
    b = min(max(b, 0), nb - 1)
    off = P[L.P_PROF_OFF]
    F[k, off + b] += size
    poc = IS[k, L.I_POC]
    if poc < 0:
        IS[k, L.I_POC] = b
        IS[k, L.I_PROF_LO] = b
        IS[k, L.I_PROF_HI] = b
        return
    v, vp = F[k, off + b], F[k, off + poc]
    if v > vp or (v == vp and b < poc):
        IS[k, L.I_POC] = b
    IS[k, L.I_PROF_LO] = min(IS[k, L.I_PROF_LO], b)
    IS[k, L.I_PROF_HI] = max(IS[k, L.I_PROF_HI], b)


@inline_kernel
def push(F, k, off, cap, nin, inp, pos, prev, v, flags):
    """Record v as input inp's newest value and extend its cumulative sums (prev = the slot of
    the previous tick today, -1 for the first); its past values and the sums of squares only
    when the program reads them (flags)."""
    c1 = off + nin * cap + inp  # cumulative sums: slot-major (a checkpoint reads one run)
    c2 = c1 + nin * cap
    F[k, c2 + nin * cap] = v  # the newest value of every input, side by side
    z = v if v == v else 0.0
    F[k, c1 + pos * nin] = F[k, c1 + prev * nin] + z if prev >= 0 else z
    if flags & L.PUSH_X:
        F[k, off + inp * cap + pos] = v  # values: input-major (scans read one input's run)
    if flags & L.PUSH_C2:
        F[k, c2 + pos * nin] = F[k, c2 + prev * nin] + z * z if prev >= 0 else z * z


@kernel
def sign(x):
    return 1.0 if x > 0 else (-1.0 if x < 0 else 0.0)


@kernel
def book(F, IS, k, bid, ask, bsz, asz):
    """Apply the tick's book; returns (qflag, pchg, flick, widen, qdrift, ofi, bacc, aacc)."""
    if not (bid > 0 and ask > 0 and bsz > 0 and asz > 0 and ask >= bid):
        return 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0  # no valid book: the last one stays
    pchg, flick, widen, qdrift, ofi, bacc, aacc = 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    if IS[k, L.I_HAS_BOOK] == 1:
        pb, pa, pbs, pas = F[k, L.F_BID], F[k, L.F_ASK], F[k, L.F_BSZ], F[k, L.F_ASZ]
        if bid == pb and ask == pa and bsz == pbs and asz == pas:
            return 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
        if bid >= pb:
            ofi += bsz
        if bid <= pb:
            ofi -= pbs
        if ask <= pa:
            ofi -= asz
        if ask >= pa:
            ofi += pas
        if bid == pb:
            bacc = bsz - pbs
        else:
            pchg += 1.0
            if bid == F[k, L.F_BID_FROM]:
                flick += 1.0
            F[k, L.F_BID_FROM] = pb
            qdrift += 0.5 * sign(bid - pb)
        if ask == pa:
            aacc = asz - pas
        else:
            pchg += 1.0
            if ask == F[k, L.F_ASK_FROM]:
                flick += 1.0
            F[k, L.F_ASK_FROM] = pa
            qdrift += 0.5 * sign(ask - pa)
        widen = sign((ask - bid) - F[k, L.F_SPREAD])
    else:
        IS[k, L.I_HAS_BOOK] = 1
    F[k, L.F_BID], F[k, L.F_ASK], F[k, L.F_BSZ], F[k, L.F_ASZ] = bid, ask, bsz, asz
    F[k, L.F_SPREAD] = ask - bid
    return 1.0, pchg, flick, widen, qdrift, ofi, bacc, aacc


@kernel
def trade(F, IS, k, P, PF, ts, price, size, pb, pa, had_book):
    """Classify and record one trade; returns (tick-rule sign, quote-rule sign, large size)."""
    lp = F[k, L.F_LAST_PRICE]
    tsign = F[k, L.F_TICK_SIGN]
    if lp == lp:
        if price > lp:
            tsign = 1.0
        elif price < lp:
            tsign = -1.0
    F[k, L.F_TICK_SIGN] = tsign
    q = tsign
    if had_book:
        m = 0.5 * (pb + pa)
        if price > m:
            q = 1.0
        elif price < m:
            q = -1.0
    F[k, L.F_LR_SIGN] = q
    st = F[k, L.F_TSTREAK]
    if q > 0:
        F[k, L.F_TSTREAK] = st + 1.0 if st > 0 else 1.0
    elif q < 0:
        F[k, L.F_TSTREAK] = st - 1.0 if st < 0 else -1.0
    ew = F[k, L.F_SIZE_EWMA]
    thr = PF[L.PF_LARGE_SIZE]
    if thr != thr:
        thr = PF[L.PF_LARGE_MULT] * ew if ew == ew else np.inf
    lvol = size if size >= thr else 0.0
    F[k, L.F_SIZE_EWMA] = size if ew != ew else ew + PF[L.PF_SIZE_ALPHA] * (size - ew)
    F[k, L.F_LAST_PRICE] = price
    F[k, L.F_DAY_V] += size
    cap, off = P[L.P_TR_CAP], P[L.P_TR_OFF]
    prev = IS[k, L.I_TR_POS]
    pos = prev + 1
    if pos == cap:
        pos = 0
    IS[k, L.I_TR_POS] = pos
    nin = L.N_TR_INPUTS
    IS[k, L.I_N_TR] += 1
    push(F, k, off, cap, nin, L.T_SIZE, pos, prev, size, P[L.P_PUSH_TR + L.T_SIZE])
    push(F, k, off, cap, nin, L.T_SSV, pos, prev, q * size, P[L.P_PUSH_TR + L.T_SSV])
    push(F, k, off, cap, nin, L.T_BUY, pos, prev, 1.0 if q > 0 else 0.0, P[L.P_PUSH_TR + L.T_BUY])
    push(F, k, off, cap, nin, L.T_LVOL, pos, prev, lvol, P[L.P_PUSH_TR + L.T_LVOL])
    push(F, k, off, cap, nin, L.T_LSV, pos, prev, q * lvol, P[L.P_PUSH_TR + L.T_LSV])
    if IS[k, L.I_OPEN] < ts <= IS[k, L.I_CLOSE]:
        # Neumaier-compensated session notional
        x = price * size
        s = F[k, L.F_SESS_PV]
        t = s + x
        if abs(s) >= abs(x):
            F[k, L.F_SESS_PV_C] += (s - t) + x
        else:
            F[k, L.F_SESS_PV_C] += (x - t) + s
        F[k, L.F_SESS_PV] = t
        F[k, L.F_SESS_V] += size
        profile_add(F, IS, k, P, PF, price, size)
    return tsign, q, lvol
