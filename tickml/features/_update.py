"""The per-tick state update: the one piece of arithmetic both modes run for every tick.

``update`` applies one canonical tick to row ``k`` of the state arrays ``F`` (float64) and
``IS`` (int64). Batch mode calls it from a compiled loop over a day of a symbol's ticks,
streaming mode from :meth:`StreamingFeatureEngine.update`; nothing else touches the state
between snapshots, so both modes hold bit-identical states at every row boundary.

The update is O(1): it pushes one value per input into fixed-size rings (with day-cumulative
sums), adds to the current one-second bucket, bar and session accumulators, and never
subtracts a leaving value (window statistics are derived at snapshot time, so nothing drifts).
"""

from __future__ import annotations

import math

import numpy as np

from tickml.features import _layout as L
from tickml.features._jit import kernel
from tickml.features._tick import book, push, roll_bars, roll_secs, trade

NS_SEC = 1_000_000_000
NAN = np.nan


@kernel
def reset_day(F, IS, k, P, day_start, day_end, open_ns, close_ns, larr):
    """Empty row ``k`` for the day (day_start, day_end]; the session is (open_ns, close_ns]."""
    for j in range(P[L.P_NF]):
        F[k, j] = NAN
    for j in (
        L.F_SESS_PV,
        L.F_SESS_PV_C,
        L.F_SESS_V,
        L.F_DAY_V,
        L.F_STREAK,
        L.F_TSTREAK,
        L.F_TICK_SIGN,
        L.F_LR_SIGN,
    ):
        F[k, j] = 0.0
    off, cap = P[L.P_SEC_OFF], P[L.P_SEC_CAP]
    for s in range(L.N_SEC_STATS):
        fill = NAN if s == L.S_CLOSE else 0.0
        for j in range(cap):
            F[k, off + s * cap + j] = fill
    off, cap = P[L.P_BAR_OFF], P[L.P_BAR_CAP]
    for s in range(L.N_BAR_STATS):
        fill = 0.0 if (s == L.B_VOL or s == L.B_NEV) else NAN
        for j in range(cap):
            F[k, off + s * cap + j] = fill
    off = P[L.P_PROF_OFF]
    for j in range(P[L.P_PROF_BINS]):
        F[k, off + j] = 0.0
    leader = IS[k, L.I_IS_LEADER]
    for j in range(P[L.P_NI]):
        IS[k, j] = 0
    IS[k, L.I_IS_LEADER] = leader
    IS[k, L.I_DAY_START] = day_start
    IS[k, L.I_DAY_END] = day_end
    IS[k, L.I_OPEN] = open_ns
    IS[k, L.I_CLOSE] = close_ns
    for j in (
        L.I_FIRST_TS,
        L.I_LAST_TS,
        L.I_EV_POS,
        L.I_TR_POS,
        L.I_SEC_CUR,
        L.I_BAR_CUR,
        L.I_POC,
        L.I_PROF_LO,
        L.I_PROF_HI,
        L.I_SEC_FIRST,
        L.I_EV_BOOK0,
    ):
        IS[k, j] = -1
    if leader == 1:
        larr[:] = NAN


@kernel
def mark_row(IS, k):
    """An every-n row was taken: start counting again."""
    IS[k, L.I_SINCE_ROW] = 0
    IS[k, L.I_PENDING] = 0


@kernel
def update(F, IS, k, P, PF, ts, bid, ask, bsz, asz, price, size, larr):
    """Apply one tick to row ``k``. Returns ST_OK, ST_NEED_DAY or ST_ROW_DUE (not applied)."""
    if ts <= IS[k, L.I_DAY_START] or ts > IS[k, L.I_DAY_END]:
        return L.ST_NEED_DAY
    last = IS[k, L.I_LAST_TS]
    if ts < last:
        ts = last  # out of order: applied at the latest time seen
    if IS[k, L.I_PENDING] == 1 and ts > last:
        return L.ST_ROW_DUE
    day_start = IS[k, L.I_DAY_START]
    ks = (ts - day_start - 1) // NS_SEC
    if IS[k, L.I_FIRST_TS] < 0:
        IS[k, L.I_FIRST_TS] = ts
        IS[k, L.I_SEC_FIRST] = ks
    IS[k, L.I_LAST_TS] = ts
    IS[k, L.I_N_TICKS] += 1
    roll_secs(F, IS, k, P, ks)
    roll_bars(F, IS, k, P, (ts - day_start - 1) // P[L.P_BAR_NS], larr)

    had_book = IS[k, L.I_HAS_BOOK] == 1
    pb, pa = F[k, L.F_BID], F[k, L.F_ASK]
    qflag, pchg, flick, widen, qdrift, ofi, bacc, aacc = book(F, IS, k, bid, ask, bsz, asz)
    if not had_book and IS[k, L.I_HAS_BOOK] == 1:
        had_book, pb, pa = True, F[k, L.F_BID], F[k, L.F_ASK]
    vol, svt, svq, lvol = 0.0, 0.0, 0.0, 0.0
    if price > 0 and size > 0:
        tsign, q, lvol = trade(F, IS, k, P, PF, ts, price, size, pb, pa, had_book)
        vol, svt, svq = size, tsign * size, q * size

    soff, scap = P[L.P_SEC_OFF], P[L.P_SEC_CAP]
    sidx = IS[k, L.I_SEC_CUR] % scap
    boff, bcap = P[L.P_BAR_OFF], P[L.P_BAR_CAP]
    bidx = IS[k, L.I_BAR_CUR] % bcap
    has_book = IS[k, L.I_HAS_BOOK] == 1
    ref = NAN
    if has_book:
        ref = 0.5 * (F[k, L.F_BID] + F[k, L.F_ASK])
    elif F[k, L.F_LAST_PRICE] > 0:
        ref = F[k, L.F_LAST_PRICE]
    if ref > 0:
        lm = math.log(ref)
        plm = F[k, L.F_LM]
        r = lm - plm if plm == plm else 0.0
        F[k, L.F_LM] = lm
        st = F[k, L.F_STREAK]
        if r > 0:
            F[k, L.F_STREAK] = st + 1.0 if st > 0 else 1.0
        elif r < 0:
            F[k, L.F_STREAK] = st - 1.0 if st < 0 else -1.0
        if plm == plm:
            ew = F[k, L.F_R2_EWMA]
            F[k, L.F_R2_EWMA] = r * r if ew != ew else ew + PF[L.PF_VOL_ALPHA] * (r * r - ew)
        spr, imb, mdev, dep = NAN, NAN, NAN, NAN
        if has_book:
            b, a, bs, as_ = F[k, L.F_BID], F[k, L.F_ASK], F[k, L.F_BSZ], F[k, L.F_ASZ]
            dep = bs + as_
            spr = (a - b) / ref * 1e4
            imb = (bs - as_) / dep
            mdev = ((b * as_ + a * bs) / dep - ref) / ref * 1e4
        cap, off = P[L.P_EV_CAP], P[L.P_EV_OFF]
        prev = IS[k, L.I_EV_POS]
        pos = prev + 1
        if pos == cap:
            pos = 0
        IS[k, L.I_EV_POS] = pos
        nin = L.N_EV_INPUTS
        if has_book and IS[k, L.I_EV_BOOK0] < 0:
            IS[k, L.I_EV_BOOK0] = IS[k, L.I_N_EV]
        IS[k, L.I_N_EV] += 1
        push(F, k, off, cap, nin, L.E_LM, pos, prev, lm, P[L.P_PUSH_EV + L.E_LM])
        push(F, k, off, cap, nin, L.E_R, pos, prev, r, P[L.P_PUSH_EV + L.E_R])
        push(F, k, off, cap, nin, L.E_VOL, pos, prev, vol, P[L.P_PUSH_EV + L.E_VOL])
        push(F, k, off, cap, nin, L.E_SVT, pos, prev, svt, P[L.P_PUSH_EV + L.E_SVT])
        push(F, k, off, cap, nin, L.E_SVQ, pos, prev, svq, P[L.P_PUSH_EV + L.E_SVQ])
        push(F, k, off, cap, nin, L.E_SPR, pos, prev, spr, P[L.P_PUSH_EV + L.E_SPR])
        push(F, k, off, cap, nin, L.E_IMB, pos, prev, imb, P[L.P_PUSH_EV + L.E_IMB])
        push(F, k, off, cap, nin, L.E_MDEV, pos, prev, mdev, P[L.P_PUSH_EV + L.E_MDEV])
        push(F, k, off, cap, nin, L.E_OFI, pos, prev, ofi, P[L.P_PUSH_EV + L.E_OFI])
        push(F, k, off, cap, nin, L.E_DEP, pos, prev, dep, P[L.P_PUSH_EV + L.E_DEP])
        push(F, k, off, cap, nin, L.E_BACC, pos, prev, bacc, P[L.P_PUSH_EV + L.E_BACC])
        push(F, k, off, cap, nin, L.E_AACC, pos, prev, aacc, P[L.P_PUSH_EV + L.E_AACC])
        push(F, k, off, cap, nin, L.E_QFLAG, pos, prev, qflag, P[L.P_PUSH_EV + L.E_QFLAG])
        push(F, k, off, cap, nin, L.E_PCHG, pos, prev, pchg, P[L.P_PUSH_EV + L.E_PCHG])
        push(F, k, off, cap, nin, L.E_FLICK, pos, prev, flick, P[L.P_PUSH_EV + L.E_FLICK])
        push(F, k, off, cap, nin, L.E_WIDEN, pos, prev, widen, P[L.P_PUSH_EV + L.E_WIDEN])
        push(F, k, off, cap, nin, L.E_QDRIFT, pos, prev, qdrift, P[L.P_PUSH_EV + L.E_QDRIFT])
        push(F, k, off, cap, nin, L.E_LVOL, pos, prev, lvol, P[L.P_PUSH_EV + L.E_LVOL])
        if IS[k, L.I_OPEN] < ts <= IS[k, L.I_CLOSE]:
            if F[k, L.F_SESS_OPEN_LM] != F[k, L.F_SESS_OPEN_LM]:
                F[k, L.F_SESS_OPEN_LM] = lm
                F[k, L.F_SESS_HI] = lm
                F[k, L.F_SESS_LO] = lm
            F[k, L.F_SESS_HI] = max(F[k, L.F_SESS_HI], lm)
            F[k, L.F_SESS_LO] = min(F[k, L.F_SESS_LO], lm)
        F[k, soff + L.S_R2 * scap + sidx] += r * r
        F[k, soff + L.S_CLOSE * scap + sidx] = lm
        F[k, boff + L.B_CLOSE * bcap + bidx] = lm
        hi = F[k, boff + L.B_HIGH * bcap + bidx]
        F[k, boff + L.B_HIGH * bcap + bidx] = lm if hi != hi else max(hi, lm)
        lo = F[k, boff + L.B_LOW * bcap + bidx]
        F[k, boff + L.B_LOW * bcap + bidx] = lm if lo != lo else min(lo, lm)
    F[k, soff + L.S_NEV * scap + sidx] += 1.0
    F[k, soff + L.S_NQ * scap + sidx] += qflag
    F[k, soff + L.S_OFI * scap + sidx] += ofi
    F[k, soff + L.S_NTR * scap + sidx] += 1.0 if vol > 0 else 0.0
    F[k, soff + L.S_VOL * scap + sidx] += vol
    F[k, soff + L.S_SVQ * scap + sidx] += svq
    F[k, boff + L.B_VOL * bcap + bidx] += vol
    F[k, boff + L.B_NEV * bcap + bidx] += 1.0
    if P[L.P_EVERY_N] > 0:
        IS[k, L.I_SINCE_ROW] += 1
        if IS[k, L.I_SINCE_ROW] >= P[L.P_EVERY_N]:
            IS[k, L.I_PENDING] = 1
    return L.ST_OK


N_SCALARS = L.N_F_SCALARS  # re-exported for the layout builder
N_RING_INPUTS = (L.N_EV_INPUTS, L.N_TR_INPUTS)
