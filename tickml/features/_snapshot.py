"""Write one feature row from a symbol's state: the compiled interpreter of the feature program.

The program (built by :mod:`tickml.features.program` from the ``FeatureDef`` table) is an int
matrix, one row per feature: op code, ring, inputs, window (ages and checkpoint indices),
references to earlier features. ``snapshot_row`` first computes what several features share
(prefix moments of the ring inputs, the bars and the leader's closes, into the scratch buffer
``work``), then walks the program and writes ``out[i]``. It only reads the state, so writing a
row (batch at each boundary, stream at ``snapshot``) never changes later values.
"""

from __future__ import annotations

import math

import numpy as np

from tickml.features import _layout as L
from tickml.features._jit import inline_kernel, kernel
from tickml.features._ops_clock import clock_op
from tickml.features._ops_ring import (
    dm,
    mskew,
    mslope,
    mstd,
    ratio0,
    ring_moments,
    slope_of,
    xat,
    zscore_of,
)
from tickml.features._ops_time import bar_end_index, gather_bars, gather_time, leader_closes

NAN = np.nan


@inline_kernel
def _ck(ck, g, nck, age):
    """Index of a checkpoint age of ring g (the program guarantees it exists)."""
    for c in range(nck):
        if ck[g, c] == age:
            return c
    return -1


@inline_kernel
def _blocks(F, k, P, op, w, base, ck, g, nck):
    nb, bs = P[L.P_N_BLOCKS], P[L.P_BLOCK_SIZE]
    vals = w[P[L.P_W_BLK] : P[L.P_W_BLK] + nb]
    for j in range(nb):  # vals[0] = oldest block; block q = ages [q * bs, (q + 1) * bs)
        q = nb - 1 - j
        si, ei = _ck(ck, g, nck, q * bs), _ck(ck, g, nck, (q + 1) * bs)
        if op == L.OP_BLOCK_Z:
            vals[j] = dm(w, base, si, ei, L.MO_S1)
        elif op == L.OP_BLOCK_CONSIST:
            vals[j] = mslope(w, base, si, ei, (q + 1) * bs, bs)
        else:
            vals[j] = mstd(w, base, si, ei, bs)
    return vals


@inline_kernel
def _ring_op(F, IS, k, P, PF, prog, i, ck, w):
    """Ops over the event (ring 0) or trade (ring 1) ring; NaN until the window has filled."""
    op, a, b, c, d = prog[i, L.C_OP], prog[i, L.C_A], prog[i, L.C_B], prog[i, L.C_C], prog[i, L.C_D]
    s, e, si, ei = prog[i, L.C_START], prog[i, L.C_END], prog[i, L.C_SI], prog[i, L.C_EI]
    g = prog[i, L.C_RING]
    if g == 0:
        cap, off, pos, n = P[L.P_EV_CAP], P[L.P_EV_OFF], IS[k, L.I_EV_POS], IS[k, L.I_N_EV]
        nck, w0, nin = P[L.P_NCK_EV], P[L.P_W_MOM], L.N_EV_INPUTS
        if n < e + 1:
            return NAN
    else:
        cap, off, pos, n = P[L.P_TR_CAP], P[L.P_TR_OFF], IS[k, L.I_TR_POS], IS[k, L.I_N_TR]
        nck, w0, nin = P[L.P_NCK_TR], P[L.P_W_MOM_TR], L.N_TR_INPUTS
        if n < max(e, 1):
            return NAN
    if op == L.OP_RET:
        return xat(F, k, off, cap, nin, a, pos, s) - xat(F, k, off, cap, nin, a, pos, e)
    if op == L.OP_LAST:
        return xat(F, k, off, cap, nin, a, pos, s)
    if op == L.OP_FRACDIFF_TICK:
        f0, nw = P[L.P_FD_TICK_OFF], P[L.P_FD_TICK_W]
        acc = 0.0
        for j in range(nw):
            acc += PF[f0 + j] * xat(F, k, off, cap, nin, a, pos, j)
        return acc
    blk = nck * L.N_MOM
    ba = w0 + a * blk
    nn = e - s
    if op == L.OP_MEAN:
        return dm(w, ba, si, ei, L.MO_S1) / nn
    if op == L.OP_STD:
        return mstd(w, ba, si, ei, nn)
    if op == L.OP_SUMRATIO:
        num = dm(w, ba, si, ei, L.MO_S1)
        den = dm(w, w0 + b * blk, si, ei, L.MO_S1)
        if c >= 0:
            num -= dm(w, w0 + c * blk, si, ei, L.MO_S1)
        if d >= 0:
            den -= dm(w, w0 + d * blk, si, ei, L.MO_S1)
        return ratio0(num, den)
    if op == L.OP_SUM_OVER_MEAN:
        return ratio0(dm(w, ba, si, ei, L.MO_S1), dm(w, w0 + b * blk, si, ei, L.MO_S1) / nn)
    if op == L.OP_SLOPE:
        return mslope(w, ba, si, ei, e, nn)
    if op == L.OP_RANGE or op == L.OP_RANGEPOS or op == L.OP_MAXOVERMEAN:  # windows from age 0
        lo, hi = w[ba + ei * L.N_MOM + L.MO_MIN], w[ba + ei * L.N_MOM + L.MO_MAX]
        if op == L.OP_RANGE:
            return hi - lo
        if op == L.OP_MAXOVERMEAN:
            return ratio0(hi, dm(w, ba, si, ei, L.MO_S1) / nn)
        if lo != lo:
            return NAN
        return 0.5 if hi == lo else (xat(F, k, off, cap, nin, a, pos, s) - lo) / (hi - lo)
    if op == L.OP_SIGNBAL:
        return dm(w, ba, si, ei, L.MO_SGN) / nn
    if op == L.OP_EFFICIENCY:
        tot, ab = dm(w, ba, si, ei, L.MO_S1), dm(w, ba, si, ei, L.MO_ABS)
        return ratio0(tot if c == 1 else abs(tot), ab)
    if op == L.OP_ZLAST:
        x = xat(F, k, off, cap, nin, a, pos, s)
        return ratio0(x - dm(w, ba, si, ei, L.MO_S1) / nn, mstd(w, ba, si, ei, nn))
    if op == L.OP_TSTAT:
        return ratio0(dm(w, ba, si, ei, L.MO_S1), mstd(w, ba, si, ei, nn) * math.sqrt(nn))
    if op == L.OP_SKEW:
        return mskew(w, ba, si, ei, nn)
    if op == L.OP_VAR_RATIO:  # a = log price, b = tick returns, over the blocks
        nb, bs = P[L.P_N_BLOCKS], P[L.P_BLOCK_SIZE]
        num = 0.0
        for j in range(nb):
            dr = xat(F, k, off, cap, nin, a, pos, j * bs) - xat(
                F, k, off, cap, nin, a, pos, (j + 1) * bs
            )
            num += dr * dr
        den = dm(w, w0 + b * blk, 0, _ck(ck, g, nck, nb * bs), L.MO_R2)
        return ratio0(num / nb, bs * den / (nb * bs))
    vals = _blocks(F, k, P, op, w, ba, ck, g, nck)
    if op == L.OP_BLOCK_Z:  # s = block index, 0 = newest
        return zscore_of(vals, vals.shape[0] - 1 - s)
    if op == L.OP_BLOCK_CONSIST:
        tot, ab = 0.0, 0.0
        for j in range(vals.shape[0]):
            tot += vals[j]
            ab += abs(vals[j])
        return ratio0(tot, ab)
    if op == L.OP_BLOCK_VOLSLOPE:
        return ratio0(slope_of(vals), vals.mean())
    if op == L.OP_VOL_REGIME:
        return ratio0(vals.mean(), math.sqrt(F[k, L.F_R2_EWMA]))
    return NAN


@kernel
def ring_prepare(F, IS, k, P, ck, modes, w):
    """The ring part of the scratch buffer: prefix moments of the event and trade rings. They
    depend on the rings alone (not on the row's time), so a streaming engine may compute them
    ahead of the boundary and keep them while the symbol gets no tick."""
    n = IS[k, L.I_N_EV]
    if P[L.P_NCK_EV] > 1 and n > 0:
        b0 = IS[k, L.I_EV_BOOK0]
        n_book = n - b0 if b0 >= 0 else 0
        off, cap, pos = P[L.P_EV_OFF], P[L.P_EV_CAP], IS[k, L.I_EV_POS]
        ring_moments(F, k, off, cap, L.N_EV_INPUTS, pos, n, n_book, ck[0], P[L.P_NCK_EV],
                     modes[0], w, P[L.P_W_MOM])  # fmt: skip
    n = IS[k, L.I_N_TR]
    if P[L.P_NCK_TR] > 1 and n > 0:
        off, cap, pos = P[L.P_TR_OFF], P[L.P_TR_CAP], IS[k, L.I_TR_POS]
        ring_moments(F, k, off, cap, L.N_TR_INPUTS, pos, n, -1, ck[1], P[L.P_NCK_TR],
                     modes[1], w, P[L.P_W_MOM_TR])  # fmt: skip


@kernel
def time_prepare(F, IS, k, P, ck, t, LF, LI, lk, larr, w):
    """The rest of the scratch buffer, which depends on the row's time t: time windows,
    gathered bars, leader closes and returns."""
    if P[L.P_NTW] > 0:
        gather_time(F, IS, k, P, t, ck[2], P[L.P_NTW], w, P[L.P_W_TIME])
    bm = P[L.P_BAR_M]
    if bm > 0:
        je = bar_end_index(IS, k, P, t)
        gather_bars(F, IS, k, P, je, bm, w, P[L.P_W_BARS])
        m = P[L.P_CROSS_M]
        if m > 0:
            wc = P[L.P_W_CROSS]
            lead = w[wc : wc + m + 1]
            leader_closes(LF, LI, lk, larr, IS[k, L.I_DAY_END], je, m, lead)
            own = P[L.P_W_BARS] + L.B_CLOSE * (bm + 1) + bm - m
            for i in range(m):
                w[wc + m + 1 + i] = w[own + i + 1] - w[own + i]
                w[wc + 2 * m + 1 + i] = lead[i + 1] - lead[i]


@kernel
def snapshot_row(
    F,
    IS,
    k,
    P,
    PF,
    prog,
    scale,
    refs,
    ck,
    modes,
    t,
    LF,
    LI,
    lk,
    larr,
    work,
    out,
):
    """Write the program's features for row k at time t into out (len(prog) values)."""
    ring_prepare(F, IS, k, P, ck, modes, work)
    time_prepare(F, IS, k, P, ck, t, LF, LI, lk, larr, work)
    write_row(F, IS, k, P, PF, prog, scale, refs, ck, t, work, out)


@kernel
def write_row(F, IS, k, P, PF, prog, scale, refs, ck, t, work, out):
    """Walk the program over a prepared scratch buffer (:func:`ring_prepare` and
    :func:`time_prepare` of row k at t) and write its features into out."""
    for i in range(prog.shape[0]):
        op = prog[i, L.C_OP]
        if op < 30:
            v = _ring_op(F, IS, k, P, PF, prog, i, ck, work)
        elif op < 90:
            v = clock_op(F, IS, k, P, PF, prog, i, t, work)
        else:
            roff, rlen = prog[i, L.C_REF_OFF], prog[i, L.C_REF_LEN]
            ra = refs[roff]
            rb = refs[roff + 1] if rlen > 1 else ra
            if op == L.OP_REF_RATIO:
                v = ratio0(out[ra], out[rb])
            elif op == L.OP_REF_DIFF:
                v = out[ra] - out[rb]
            elif op == L.OP_REF_MEANTANH:
                acc = 0.0
                for j in range(rlen):
                    acc += math.tanh(out[refs[roff + j]])
                v = acc / rlen
            elif op == L.OP_REF_REGIME:
                va, vb = out[ra], out[rb]
                v = (
                    NAN
                    if (va != va or vb != vb)
                    else (2.0 if va > 1.0 else 0.0) + (1.0 if abs(vb) > 0.5 else 0.0)
                )
            else:
                v = NAN
        out[i] = v * scale[i]
