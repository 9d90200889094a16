"""Compiled drivers: the batch day loop and the streaming snapshot over all symbols.

Both call the same ``update`` per tick and write a row with the same three steps
(``snapshot_row`` = ``ring_prepare``, ``time_prepare``, ``write_row``; the streaming snapshot
keeps each symbol's ring moments between boundaries while it gets no tick); the only thing
they decide is *when* a row is written, with the same rules:

- interval mode: a row at each grid time b (grid aligned to the local midnight) from the first
  grid time at or after the symbol's first tick of the day; ticks with ts <= b are in it.
- every-n mode: a row after every n-th tick, stamped with its ts, written once every tick
  with that same ts has been applied (at the next later tick, or at the end of the day).
- with ``session_only``, rows only at times in (open, close].
"""

from __future__ import annotations

from tickml.features import _layout as L
from tickml.features._jit import inline_kernel, kernel
from tickml.features._snapshot import ring_prepare, snapshot_row, time_prepare, write_row
from tickml.features._update import mark_row, reset_day, update


@kernel
def row_allowed(IS, k, P, t):
    """Whether the symbol in row k gets a row stamped t (its day, after its first tick)."""
    if IS[k, L.I_FIRST_TS] < 0 or IS[k, L.I_FIRST_TS] > t:
        return False
    if t <= IS[k, L.I_DAY_START] or t > IS[k, L.I_DAY_END]:
        return False
    if P[L.P_SESSION_ONLY] == 1 and not (IS[k, L.I_OPEN] < t <= IS[k, L.I_CLOSE]):
        return False
    return True


@kernel
def ceil_grid(t, day_start, step):
    """The first grid time >= t (grid = day_start + j * step)."""
    q = (t - day_start + step - 1) // step
    return day_start + q * step


@kernel
def _row(F, IS, k, prg, lead, work, t, out):
    """Symbol k's feature row at t into ``out``: the one call of the row writer.

    prg = (P, PF, prog, scale, refs, ck, modes): the compiled program
    (:attr:`tickml.features.program.Program.arrays`); lead = (LF, LI, lk, larr): the leader's
    state is row lk of LF/LI (lk = -1: no leader), larr its per-day scalars."""
    P, PF, prog, scale, refs, ck, modes = prg
    LF, LI, lk, larr = lead
    snapshot_row(F, IS, k, P, PF, prog, scale, refs, ck, modes, t, LF, LI, lk, larr, work, out)


@kernel
def _emit(F, IS, prg, lead, work, t, last, out, out_ts, out_last, nrow):
    """Write row ``nrow`` of the symbol in row 0 (stamped t, newest input tick ``last``) if it
    gets one at t; returns the next row index."""
    if not row_allowed(IS, 0, prg[0], t):
        return nrow
    _row(F, IS, 0, prg, lead, work, t, out[nrow])
    out_ts[nrow] = t
    out_last[nrow] = last
    return nrow + 1


@kernel
def run_day(F, IS, prg, lead, work, ts, bid, ask, bsz, asz, price, size, day, step, out, out_ts,
            out_last):
    """Replay one day of one symbol in row 0 of F/IS; write its rows. Returns the row count.

    day = (day_start, day_end, open, close); lead = (LF, LI, lk, larr) with lk = 0: LF/LI row 0
    is the leader's (its final state of this day, or F/IS itself for the leader), lk = -1: no
    leader.
    """
    P, PF = prg[0], prg[1]
    larr = lead[3]
    reset_day(F, IS, 0, P, day[0], day[1], day[2], day[3], larr)
    n = ts.shape[0]
    nrow = 0
    every_n = P[L.P_EVERY_N]
    next_b = ceil_grid(ts[0], day[0], step)
    for i in range(n):
        if every_n == 0:
            while next_b < ts[i]:  # grid rows closing before this tick
                last = IS[0, L.I_LAST_TS]
                nrow = _emit(F, IS, prg, lead, work, next_b, last, out, out_ts, out_last, nrow)
                next_b += step
        st = update(F, IS, 0, P, PF, ts[i], bid[i], ask[i], bsz[i], asz[i], price[i], size[i], larr)
        if st == L.ST_ROW_DUE:  # every-n row at the previous tick time, then apply this tick
            t = IS[0, L.I_LAST_TS]
            nrow = _emit(F, IS, prg, lead, work, t, t, out, out_ts, out_last, nrow)
            mark_row(IS, 0)
            update(F, IS, 0, P, PF, ts[i], bid[i], ask[i], bsz[i], asz[i], price[i], size[i], larr)
    if every_n == 0:  # the grid rows after the last tick (to the close with session_only)
        end = ceil_grid(IS[0, L.I_LAST_TS], day[0], step)
        if P[L.P_SESSION_ONLY] == 1:
            end = max(end, day[3])
        while next_b <= end:
            last = IS[0, L.I_LAST_TS]
            nrow = _emit(F, IS, prg, lead, work, next_b, last, out, out_ts, out_last, nrow)
            next_b += step
    elif IS[0, L.I_PENDING] == 1:  # the pending every-n row of the day's last tick time
        t = IS[0, L.I_LAST_TS]
        nrow = _emit(F, IS, prg, lead, work, t, t, out, out_ts, out_last, nrow)
        mark_row(IS, 0)
    return nrow


@inline_kernel
def _rings_fresh(IS, k, key):
    """Whether key row k still describes symbol k's rings (same day, no tick since)."""
    return key[k, 0] == IS[k, L.I_DAY_START] and key[k, 1] == IS[k, L.I_N_TICKS]


@kernel
def warm_rings(F, IS, P, ck, modes, work, W, key, n_sym, budget):
    """Ring moments (:func:`ring_prepare`, the first P_W_BARS values of the scratch buffer)
    into W[k] for up to ``budget`` symbols whose rings changed since W[k] was written; key[k]
    = (day start, ticks applied) they describe. Returns how many were computed. Every tick
    changes I_N_TICKS and nothing else changes a ring, so a fresh W[k] holds exactly what the
    boundary would compute."""
    nw = W.shape[1]
    done = 0
    for k in range(n_sym):
        if done >= budget:
            break
        if _rings_fresh(IS, k, key):
            continue
        ring_prepare(F, IS, k, P, ck, modes, work)
        for j in range(nw):
            W[k, j] = work[j]
        key[k, 0] = IS[k, L.I_DAY_START]
        key[k, 1] = IS[k, L.I_N_TICKS]
        done += 1
    return done


@kernel
def snapshot_all(F, IS, prg, lead, work, W, key, t, n_sym, out, out_idx, out_last):
    """Rows at grid time t for every symbol that gets one (lead = (F, IS, lk, larr): the
    leader is row lk of the same arrays). A symbol's ring moments come from W[k] while fresh
    (see :func:`warm_rings`; one sequential copy instead of the ring scans), else they are
    computed. Returns the count, or -1 - k when symbol k already holds a tick newer than t (the
    caller snapshotted too late)."""
    P, PF, prog, scale, refs, ck, modes = prg
    LF, LI, lk, larr = lead
    nw = W.shape[1]
    nrow = 0
    for k in range(n_sym):
        if IS[k, L.I_LAST_TS] > t and IS[k, L.I_DAY_START] < t <= IS[k, L.I_DAY_END]:
            return -1 - k
        if not row_allowed(IS, k, P, t):
            continue
        if _rings_fresh(IS, k, key):
            for j in range(nw):
                work[j] = W[k, j]
        else:
            ring_prepare(F, IS, k, P, ck, modes, work)
        time_prepare(F, IS, k, P, ck, t, LF, LI, lk, larr, work)
        write_row(F, IS, k, P, PF, prog, scale, refs, ck, t, work, out[nrow])
        out_idx[nrow] = k
        out_last[nrow] = IS[k, L.I_LAST_TS]
        nrow += 1
    return nrow


@kernel
def snapshot_one(F, IS, k, prg, lead, work, t, out):
    """The every-n row of symbol k at its last tick time t (the caller checks row_allowed)."""
    _row(F, IS, k, prg, lead, work, t, out)
    mark_row(IS, k)


@kernel
def update_groups(F, IS, ks, bounds, P, PF, ts, bid, ask, bsz, asz, price, size, larr, g0, i0):
    """:func:`update_many` of several symbols in one call: ticks bounds[g]:bounds[g + 1] are
    symbol ks[g]'s, applied group after group from (g0, i0); stops at the first tick that
    needs the caller (returns its group, index and status; (len(ks), n, 0) when all were
    applied)."""
    i = i0
    for g in range(g0, ks.shape[0]):
        k = ks[g]
        if i < bounds[g]:
            i = bounds[g]
        while i < bounds[g + 1]:
            st = update(F, IS, k, P, PF, ts[i], bid[i], ask[i], bsz[i], asz[i], price[i], size[i],
                        larr)  # fmt: skip
            if st != 0:
                return g, i, st
            i += 1
    return ks.shape[0], i, 0


@kernel
def update_many(F, IS, k, P, PF, ts, bid, ask, bsz, asz, price, size, larr):
    """Apply ticks in order; stops at the first one that needs the caller (returns its index
    and status, or (n, 0) when all were applied)."""
    for i in range(ts.shape[0]):
        st = update(F, IS, k, P, PF, ts[i], bid[i], ask[i], bsz[i], asz[i], price[i], size[i], larr)
        if st != 0:
            return i, st
    return ts.shape[0], 0
