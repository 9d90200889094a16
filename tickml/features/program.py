"""Compile a :class:`FeatureConfig` into what the kernels read: the feature program and layout.

The program is an int matrix (one row per feature, columns ``C_*`` of ``_layout``) plus a scale
per feature and a flat list of feature references; ``P`` / ``PF`` hold the state layout
(ring capacities sized to the longest window that is switched on) and the float parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from tickml.features import _layout as L
from tickml.features.catalog import computed_defs, feature_defs
from tickml.features.config import FeatureConfig
from tickml.features.defs import FeatureDef
from tickml.features.fracdiff import fracdiff_weights

OPS: dict[str, int] = {
    name[3:].lower(): value
    for name, value in vars(L).items()
    if name.startswith("OP_") and isinstance(value, int)
}
EVENT_INPUTS = {
    "lm": L.E_LM,
    "r": L.E_R,
    "vol": L.E_VOL,
    "svt": L.E_SVT,
    "svq": L.E_SVQ,
    "spread": L.E_SPR,
    "imb": L.E_IMB,
    "mdev": L.E_MDEV,
    "ofi": L.E_OFI,
    "depth": L.E_DEP,
    "bacc": L.E_BACC,
    "aacc": L.E_AACC,
    "qflag": L.E_QFLAG,
    "pchg": L.E_PCHG,
    "flick": L.E_FLICK,
    "widen": L.E_WIDEN,
    "qdrift": L.E_QDRIFT,
    "lvol": L.E_LVOL,
}
TRADE_INPUTS = {"size": L.T_SIZE, "ssv": L.T_SSV, "buy": L.T_BUY, "lvol": L.T_LVOL, "lsv": L.T_LSV}
SEC_STATS = {
    "nev": L.S_NEV,
    "ntr": L.S_NTR,
    "nq": L.S_NQ,
    "vol": L.S_VOL,
    "svq": L.S_SVQ,
    "ofi": L.S_OFI,
    "r2": L.S_R2,
}
_CROSS = {"lead_ret", "corr", "beta", "leadcorr", "resid_ret"}
_SUM_OPS = {"mean", "sumratio", "sum_over_mean"}
_NEEDS = {  # prefix moments of input a each window op reads
    "std": L.NEED_VAR,
    "slope": L.NEED_VAR | L.NEED_SLOPE,
    "signbal": L.NEED_ABS,
    "efficiency": L.NEED_SUM | L.NEED_ABS,
    "zlast": L.NEED_SUM | L.NEED_VAR,
    "tstat": L.NEED_SUM | L.NEED_VAR,
    "skew": L.NEED_VAR | L.NEED_SKEW,
    "range": L.NEED_MINMAX,
    "rangepos": L.NEED_MINMAX,
    "maxovermean": L.NEED_SUM | L.NEED_MINMAX,
}
_BLOCK_OPS = {
    "block_z": L.NEED_SUM,
    "block_consist": L.NEED_VAR | L.NEED_SLOPE,
    "block_volslope": L.NEED_VAR,
    "vol_regime": L.NEED_VAR,
}


@dataclass(frozen=True)
class Program:
    config: FeatureConfig
    defs: tuple[FeatureDef, ...]  # what the kernels compute (outputs and what they read)
    outputs: tuple[FeatureDef, ...]  # the output features, in order
    out_idx: np.ndarray  # their positions in ``defs``
    prog: np.ndarray  # int64 (n_features, N_C)
    scale: np.ndarray  # float64 (n_features,)
    refs: np.ndarray  # int64
    P: np.ndarray  # noqa: N815
    PF: np.ndarray  # noqa: N815
    ck: np.ndarray  # int64 (3, n): checkpoint ages of each ring; row 2: time windows
    modes: np.ndarray  # int64 (2, N_EV_INPUTS): NEED_* flags of each ring input
    bars_per_day: int

    @property
    def names(self) -> list[str]:
        """Output feature names, in order."""
        return [d.name for d in self.outputs]

    @property
    def all_outputs(self) -> bool:
        return len(self.outputs) == len(self.defs)

    @property
    def arrays(self) -> tuple[np.ndarray, ...]:
        """(P, PF, prog, scale, refs, ck, modes): the program as the row kernels take it."""
        return (self.P, self.PF, self.prog, self.scale, self.refs, self.ck, self.modes)

    @property
    def work_size(self) -> int:
        return int(self.P[L.P_W_SIZE])

    @property
    def ring_work_size(self) -> int:
        """The scratch buffer's ring-moment part (its first values, before the bars)."""
        return int(self.P[L.P_W_BARS])

    @property
    def nf(self) -> int:
        return int(self.P[L.P_NF])

    @property
    def ni(self) -> int:
        return int(self.P[L.P_NI])


def _input(d: FeatureDef, name: str) -> int:
    if not name:
        return -1
    table = TRADE_INPUTS if d.ring == "trade" else EVENT_INPUTS if d.ring == "event" else SEC_STATS
    if name not in table:
        raise ValueError(f"feature {d.name}: unknown input {name!r} for ring {d.ring!r}")
    return table[name]


def _bar_lookback(d: FeatureDef) -> int:
    return {
        "bar_ret": d.start,
        "atr": d.start,
        "bar_volz": d.start,
        "fracdiff_bar": d.start - 1,
        "bar_nev": 0,
    }.get(d.op, 0)


def _with_refs(config: FeatureConfig) -> tuple[tuple[FeatureDef, ...], tuple[FeatureDef, ...]]:
    outputs = tuple(feature_defs(config))
    table = {d.name: d for d in computed_defs(config)}
    keep = {d.name for d in outputs}
    todo = [r for d in outputs for r in d.refs]
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo.extend(table[name].refs)
    return tuple(d for d in table.values() if d.name in keep), outputs


@lru_cache(maxsize=32)
def compile_program(config: FeatureConfig) -> Program:
    defs, outputs = _with_refs(config)
    index = {d.name: i for i, d in enumerate(defs)}
    prog = np.zeros((len(defs), L.N_C), dtype=np.int64)
    scale = np.ones(len(defs))
    refs: list[int] = []
    ev_need, tr_need, bar_need, m = 2, 1, 1, 0
    cks: list[set[int]] = [{0}, {0}]
    past: list[set[int]] = [set(), set()]  # inputs read at an age > 0 directly
    push_flags = np.zeros(L.P_LEN - L.N_P, dtype=np.int64)
    modes = np.zeros((2, L.N_EV_INPUTS), dtype=np.int64)
    span = config.n_blocks * config.block_size
    for i, d in enumerate(defs):
        if d.op not in OPS:
            raise ValueError(f"feature {d.name}: unknown op {d.op!r}")
        row = prog[i]
        row[L.C_OP] = OPS[d.op]
        row[L.C_RING] = 1 if d.ring == "trade" else 0
        row[L.C_A], row[L.C_B] = _input(d, d.a), _input(d, d.b)
        if d.op == "efficiency":
            row[L.C_C], row[L.C_D] = (1 if d.c == "signed" else 0), -1
        else:
            row[L.C_C], row[L.C_D] = _input(d, d.c), _input(d, d.d)
        row[L.C_START], row[L.C_END] = d.start, d.end
        scale[i] = d.scale
        if d.refs:
            missing = [r for r in d.refs if r not in index or index[r] >= i]
            if missing:
                raise ValueError(f"feature {d.name}: refs {missing} are not earlier features")
            row[L.C_REF_OFF], row[L.C_REF_LEN] = len(refs), len(d.refs)
            refs.extend(index[r] for r in d.refs)
        if d.ring:
            g = int(row[L.C_RING])
            _moments(d, row, cks[g], modes[g], span, config.block_size)
            reads_x = d.op in ("ret", "fracdiff_tick", "var_ratio")
            if reads_x or (d.op in ("last", "rangepos", "zlast") and d.start > 0):
                past[g].add(int(row[L.C_A]))
        if d.ring == "event":
            ev_need = max(ev_need, d.end + 1)
        elif d.ring == "trade":
            tr_need = max(tr_need, d.end)
        bar_need = max(bar_need, _bar_lookback(d))
        if d.op in _CROSS:
            m = max(m, d.start + 1, d.end + 1)
    cfg = config
    sec_cap = max(cfg.time_windows_s) + 1
    bar_m = max(bar_need, m) if (bar_need > 1 or m > 0 or _uses_bars(defs)) else 0
    bar_cap = max(bar_need, m) + 3
    # inputs read value by value: a fixed set, so that a feature's rounding does not depend on
    # which other features are on (log price: a level, its sums of squares would cancel)
    scan = L.NEED_SLOPE | L.NEED_SKEW | L.NEED_ABS | L.NEED_MINMAX
    for g, fixed in ((0, (L.E_LM, L.E_R)), (1, (L.T_SIZE,))):
        for i in range(L.N_EV_INPUTS):
            if modes[g, i] and (i in fixed or modes[g, i] & scan):
                modes[g, i] |= L.NEED_SCAN
    for g, base, n_in in ((0, L.P_PUSH_EV, L.N_EV_INPUTS), (1, L.P_PUSH_TR, L.N_TR_INPUTS)):
        for i in range(n_in):
            flags = 0
            if modes[g, i] & L.NEED_SCAN or i in past[g]:
                flags |= L.PUSH_X
            if modes[g, i] & L.NEED_VAR and not modes[g, i] & L.NEED_SCAN:
                flags |= L.PUSH_C2
            push_flags[base - L.N_P + i] = flags
    ck_lists = [sorted(c) for c in cks]
    max_ck = max(len(c) for c in ck_lists)
    wins = list(cfg.time_windows_s) if any(d.op.startswith("tw_") for d in defs) else []
    ck = np.zeros((3, max(max_ck, len(wins), 1)), dtype=np.int64)
    for g, c in enumerate(ck_lists):
        ck[g, : len(c)] = c
    ck[2, : len(wins)] = wins
    for i, d in enumerate(defs):  # checkpoint indices of each window
        if d.ring:
            c = ck_lists[prog[i, L.C_RING]]
            prog[i, L.C_SI] = c.index(d.start) if d.start in c else -1
            prog[i, L.C_EI] = c.index(d.end) if d.end in c else -1
        elif d.op.startswith("tw_"):
            prog[i, L.C_SI] = wins.index(d.start)
    fd_bar = fracdiff_weights(cfg.fracdiff_d, cfg.fracdiff_width)
    fd_tick = fracdiff_weights(cfg.fracdiff_tick_d, cfg.fracdiff_tick_width)
    P = np.zeros(L.P_LEN, dtype=np.int64)  # noqa: N806
    off = L.N_F_SCALARS
    # rings of values, cumulative sums and sums of squares, then the newest values; a trade
    # window of n needs the cumulative sum before its oldest trade: n + 1 slots
    P[L.P_EV_CAP], P[L.P_EV_OFF] = ev_need, off
    off += (3 * ev_need + 1) * L.N_EV_INPUTS
    P[L.P_TR_CAP], P[L.P_TR_OFF] = tr_need + 1, off
    off += (3 * (tr_need + 1) + 1) * L.N_TR_INPUTS
    P[L.P_SEC_CAP], P[L.P_SEC_OFF] = sec_cap, off
    off += L.N_SEC_STATS * sec_cap
    P[L.P_BAR_CAP], P[L.P_BAR_OFF] = bar_cap, off
    off += L.N_BAR_STATS * bar_cap
    P[L.P_PROF_BINS], P[L.P_PROF_OFF] = cfg.profile_bins, off
    off += cfg.profile_bins
    P[L.P_NF], P[L.P_NI] = off, L.N_I_SCALARS
    P[L.N_P :] = push_flags
    P[L.P_BAR_NS] = cfg.interval_ns
    P[L.P_EVERY_N] = cfg.every_n_ticks or 0
    P[L.P_SESSION_ONLY] = 1 if (cfg.session_only and cfg.has_session) else 0
    P[L.P_FD_BAR_W], P[L.P_FD_BAR_OFF] = cfg.fracdiff_width, L.N_PF
    P[L.P_FD_TICK_W], P[L.P_FD_TICK_OFF] = cfg.fracdiff_tick_width, L.N_PF + cfg.fracdiff_width
    P[L.P_N_BLOCKS], P[L.P_BLOCK_SIZE] = cfg.n_blocks, cfg.block_size
    P[L.P_CROSS_M], P[L.P_BAR_M] = m, bar_m
    P[L.P_NCK_EV], P[L.P_NCK_TR], P[L.P_MAX_CK] = len(ck_lists[0]), len(ck_lists[1]), max_ck
    P[L.P_W_MOM] = 0
    P[L.P_W_MOM_TR] = P[L.P_W_MOM] + L.N_EV_INPUTS * max_ck * L.N_MOM
    P[L.P_W_BARS] = P[L.P_W_MOM_TR] + L.N_TR_INPUTS * max_ck * L.N_MOM
    P[L.P_W_CROSS] = P[L.P_W_BARS] + L.N_BAR_STATS * (bar_m + 1)
    P[L.P_W_TIME] = P[L.P_W_CROSS] + 3 * m + 1
    P[L.P_NTW] = len(wins)
    P[L.P_W_BLK] = P[L.P_W_TIME] + L.N_SEC_STATS * (len(wins) + 1)
    P[L.P_W_SIZE] = P[L.P_W_BLK] + cfg.n_blocks
    PF = np.zeros(L.N_PF + fd_bar.size + fd_tick.size)  # noqa: N806
    PF[L.PF_SIZE_ALPHA] = 1.0 - 0.5 ** (1.0 / cfg.size_ewma_halflife)
    PF[L.PF_LARGE_MULT] = cfg.large_trade_mult
    PF[L.PF_LARGE_SIZE] = np.nan if cfg.large_trade_size is None else cfg.large_trade_size
    PF[L.PF_VOL_ALPHA] = 1.0 - 0.5 ** (1.0 / cfg.vol_ewma_halflife)
    PF[L.PF_PROF_TICK] = cfg.profile_tick
    PF[L.PF_VALUE_AREA] = cfg.value_area
    PF[L.N_PF : L.N_PF + fd_bar.size] = fd_bar
    PF[L.N_PF + fd_bar.size :] = fd_tick
    refs_arr = np.asarray(refs if refs else [0], dtype=np.int64)
    out_idx = np.array([index[d.name] for d in outputs], dtype=np.int64)
    return Program(
        cfg,
        defs,
        outputs,
        out_idx,
        prog,
        scale,
        refs_arr,
        P,
        PF,
        ck,
        modes,
        86_400_000_000_000 // cfg.interval_ns,
    )


def _uses_bars(defs: tuple[FeatureDef, ...]) -> bool:
    return any(
        d.op in ("bar_ret", "atr", "bar_volz", "fracdiff_bar", "bar_nev") or d.op in _CROSS
        for d in defs
    )


def _moments(
    d: FeatureDef, row: np.ndarray, ck: set[int], modes: np.ndarray, span: int, bs: int
) -> None:
    """Record the checkpoint ages and input moments a ring feature reads."""

    def need(col: int, flags: int) -> None:
        if row[col] >= 0:
            modes[row[col]] |= flags

    if d.op in _SUM_OPS or d.op in _NEEDS:
        if d.op in ("range", "rangepos", "maxovermean") and d.start != 0:
            raise ValueError(f"feature {d.name}: {d.op} needs a window starting at age 0")
        ck.update((d.start, d.end))
        if d.op in _SUM_OPS:
            for col in (L.C_A, L.C_B, L.C_C, L.C_D):
                need(col, L.NEED_SUM)
        else:
            need(L.C_A, _NEEDS[d.op])
    elif d.op in _BLOCK_OPS:
        ck.update(range(0, span + 1, bs))
        need(L.C_A, _BLOCK_OPS[d.op])
    elif d.op == "var_ratio":
        ck.update((0, span))
        need(L.C_B, L.NEED_R2)
