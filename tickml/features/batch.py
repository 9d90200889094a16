"""Batch mode: feature rows for a frame of canonical ticks (many symbols, many days).

Each (symbol, day) is replayed by one compiled loop (:func:`tickml.features._loop.run_day`)
that calls the same per-tick update and row writer as the streaming engine. The leader of the
cross-asset family is replayed first each day; its bar closes feed the other symbols' rows.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from tickml.features._layout import I_IS_LEADER
from tickml.features._loop import run_day
from tickml.features.config import FeatureConfig
from tickml.features.program import Program, compile_program
from tickml.market import utc_ns

log = logging.getLogger(__name__)

ID_COLUMNS = ("symbol", "event_timestamp")
LAST_TICK_COLUMN = "last_tick_ts"


def feature_frame(
    symbols: np.ndarray, ts: np.ndarray, values: np.ndarray, last: np.ndarray, names: list[str]
) -> pd.DataFrame:
    """The output frame: symbol, event_timestamp, one float64 column per feature, last_tick_ts."""
    frame = pd.DataFrame(values, columns=names, copy=False)
    frame.insert(0, "symbol", pd.Series(symbols, dtype=object))
    frame.insert(1, "event_timestamp", pd.to_datetime(ts.astype(np.int64), utc=True))
    frame[LAST_TICK_COLUMN] = pd.to_datetime(last.astype(np.int64), utc=True)
    return frame


def _arrays(ticks: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    sym = ticks["symbol"].to_numpy(dtype=object)
    ts = utc_ns(ticks["ts"])
    cols = {
        c: np.ascontiguousarray(ticks[c].to_numpy(dtype=np.float64, na_value=np.nan))
        for c in ("bid", "ask", "bid_size", "ask_size", "price", "size")
    }
    cols["size"] = np.nan_to_num(cols["size"], nan=0.0)
    return sym, np.ascontiguousarray(ts), cols


def compute_features(ticks: pd.DataFrame, config: FeatureConfig | None = None) -> pd.DataFrame:
    """Feature rows of canonical ticks (see :mod:`tickml.features` for the row rules).

    ``ticks`` may hold many symbols and days in any order (they are sorted by symbol, ts and
    seq when needed). Returns ``symbol``, ``event_timestamp`` (datetime64[ns, UTC]), one
    float64 column per :func:`feature_names` entry, and ``last_tick_ts`` (the newest input tick
    of the row, never after ``event_timestamp``), sorted by symbol then event_timestamp.
    """
    cfg = config or FeatureConfig()
    prog = compile_program(cfg)
    names = prog.names
    if len(ticks) == 0:
        return feature_frame(
            np.array([], dtype=object),
            np.array([], dtype=np.int64),
            np.empty((0, len(names))),
            np.array([], dtype=np.int64),
            names,
        )
    sym, ts, cols = _arrays(ticks)
    codes, uniques = pd.factorize(sym, sort=True)
    codes = codes.astype(np.int64)
    dc, dt_ = np.diff(codes), np.diff(ts)
    if not np.all((dc > 0) | ((dc == 0) & (dt_ >= 0))):
        keys = [ts, codes]
        if "seq" in ticks.columns:
            keys.insert(0, ticks["seq"].to_numpy(dtype=np.int64))
        order = np.lexsort(keys)
        codes, ts = codes[order], ts[order]
        cols = {c: np.ascontiguousarray(v[order]) for c, v in cols.items()}
    days_idx, days = cfg.market.day_index(ts)
    cut = np.flatnonzero((np.diff(codes) != 0) | (np.diff(days_idx) != 0)) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut, [len(ts)]])
    lead_code = -1
    if cfg.leader is not None and "cross_asset" in cfg.families:
        hit = np.flatnonzero(np.asarray(uniques, dtype=object) == cfg.leader)
        lead_code = int(hit[0]) if hit.size else -1
    chunk_keys = [
        (int(days_idx[s]), 0 if codes[s] == lead_code else 1, int(codes[s]), int(s), int(e))
        for s, e in zip(starts, ends, strict=True)
    ]
    chunk_keys.sort()
    out_sym, out_ts, out_vals, out_last = [], [], [], []
    runner = _DayRunner(prog)
    leader_state: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for d, _, code, s, e in chunk_keys:
        is_leader = code == lead_code
        sl = slice(s, e)
        vals, rts, rlast = runner.run(
            ts[sl],
            {c: v[sl] for c, v in cols.items()},
            cfg.market.day_bounds(days[d]),
            is_leader,
            leader_state.get(d),
        )
        if is_leader:
            leader_state[d] = runner.leader_snapshot()
        out_sym.append(np.full(len(rts), uniques[code], dtype=object))
        out_ts.append(rts)
        out_vals.append(vals)
        out_last.append(rlast)
    frame = feature_frame(
        np.concatenate(out_sym),
        np.concatenate(out_ts),
        np.vstack(out_vals),
        np.concatenate(out_last),
        names,
    )
    return frame.sort_values(["symbol", "event_timestamp"], kind="stable").reset_index(drop=True)


class _DayRunner:
    """Holds the one-row state and output buffers reused across (symbol, day) chunks."""

    def __init__(self, prog: Program) -> None:
        self.p = prog
        self.F = np.full((1, prog.nf), np.nan)  # noqa: N815
        self.I = np.zeros((1, prog.ni), dtype=np.int64)  # noqa: N815
        self.larr = np.full(prog.bars_per_day, np.nan)
        self._dummy_f = np.full((1, prog.nf), np.nan)
        self._dummy_i = np.zeros((1, prog.ni), dtype=np.int64)
        self._dummy_l = np.full(prog.bars_per_day, np.nan)
        self.work = np.zeros(prog.work_size)

    def leader_snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.F.copy(), self.I.copy(), self.larr.copy()

    def run(
        self,
        ts: np.ndarray,
        cols: dict[str, np.ndarray],
        day: tuple[int, int, int, int],
        is_leader: bool,
        leader: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = self.p
        every_n = p.config.every_n_ticks
        cap = len(ts) // every_n + 2 if every_n else p.bars_per_day + 2
        out = np.empty((cap, len(p.defs)))  # the whole program; outputs selected below
        out_ts = np.empty(cap, dtype=np.int64)
        out_last = np.empty(cap, dtype=np.int64)
        self.I[0, I_IS_LEADER] = 1 if is_leader else 0
        if is_leader:
            lf, li, lk, larr = self.F, self.I, 0, self.larr
        elif leader is not None:
            lf, li, larr = leader
            lk = 0
        else:
            lf, li, lk, larr = self._dummy_f, self._dummy_i, -1, self._dummy_l
        n = run_day(
            self.F,
            self.I,
            p.arrays,
            (lf, li, lk, larr),
            self.work,
            ts,
            cols["bid"],
            cols["ask"],
            cols["bid_size"],
            cols["ask_size"],
            cols["price"],
            cols["size"],
            np.asarray(day, dtype=np.int64),
            p.config.interval_ns,
            out,
            out_ts,
            out_last,
        )
        vals = out[:n] if p.all_outputs else out[:n, p.out_idx]
        return vals, out_ts[:n], out_last[:n]
