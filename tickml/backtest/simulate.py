"""Backtest steps 1-2: the frame as sorted arrays, then decisions and the book per timestamp."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tickml.backtest.config import BacktestConfig
from tickml.decision import LONG_CLASSES, SHORT_CLASSES, DecisionConfig, DecisionState
from tickml.decision import decide as decide_fn
from tickml.execution import FILL_FIELDS, TRADE_FIELDS, PositionBook
from tickml.market import day_numbers, local_days, utc_ns

_OPTIONAL = ("ret", "vol", "age", "bid_size", "ask_size", "direction")


@dataclass(frozen=True, eq=False)
class Inputs:
    """The frame as sorted arrays (time, then symbol) and the schedule of the book."""

    ts: np.ndarray
    code: np.ndarray
    sym_names: np.ndarray
    ps: np.ndarray
    pl: np.ndarray
    mid: np.ndarray
    spread: np.ndarray
    opt: dict[str, np.ndarray | None]
    executable: np.ndarray
    day_codes: np.ndarray
    days: list[dt.date]
    last_of_day: np.ndarray
    starts: np.ndarray

    @property
    def row_sym(self) -> np.ndarray:
        return self.sym_names[self.code]


@dataclass(eq=False)
class Run:
    """Per-row outputs of the simulation and the book's records."""

    pnl: np.ndarray
    position: np.ndarray
    score: np.ndarray
    long_score: np.ndarray
    decision: np.ndarray
    gate: np.ndarray
    risk_gate: np.ndarray
    fills: dict[str, list[np.ndarray]]
    trades: dict[str, list[np.ndarray]]
    book: PositionBook


def _check_columns(frame: pd.DataFrame, config: BacktestConfig) -> None:
    need = [
        "symbol",
        "event_timestamp",
        *config.short_prob_cols,
        *config.long_prob_cols,
        config.mid_col,
        config.spread_col,
    ]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ValueError(f"backtest frame lacks columns {missing}")
    if len(config.short_prob_cols) != len(SHORT_CLASSES):
        raise ValueError(f"short_prob_cols must name {len(SHORT_CLASSES)} columns")
    if len(config.long_prob_cols) != len(LONG_CLASSES):
        raise ValueError(f"long_prob_cols must name {len(LONG_CLASSES)} columns")


def prepare(frame: pd.DataFrame, decision: DecisionConfig, config: BacktestConfig) -> Inputs:
    """Step 1: validate, sort by (time, symbol), and mark each symbol's last executable row of
    every local day ((midnight, midnight], as the feature calendar)."""
    _check_columns(frame, config)
    ts_all = utc_ns(frame["event_timestamp"])
    codes_all, names = pd.factorize(frame["symbol"].astype(str), sort=True)
    order = np.lexsort((codes_all, ts_all))
    ts = ts_all[order]
    code = codes_all[order].astype(np.int64)
    dup = (np.diff(ts) == 0) & (np.diff(code) == 0)
    if dup.any():
        raise ValueError(f"{int(dup.sum())} duplicate (symbol, event_timestamp) rows")

    def col(name: str) -> np.ndarray | None:
        if name in frame.columns:
            return frame[name].to_numpy(dtype=np.float64)[order]
        return None

    cols = (
        config.last_return_col,
        config.recent_vol_col,
        config.feature_age_col,
        config.bid_size_col,
        config.ask_size_col,
        config.direction_col,
    )
    opt = dict(zip(_OPTIONAL, map(col, cols), strict=True))
    opt["direction_model"] = _direction_model(frame, config, order, ts)
    mid = frame[config.mid_col].to_numpy(dtype=np.float64)[order]
    spread = frame[config.spread_col].to_numpy(dtype=np.float64)[order]
    n = ts.size
    executable = np.isfinite(mid) & (mid > 0) & np.isfinite(spread) & (spread >= 0)
    # local day per row (tickml.market's day rule) and the symbol's last executable row of
    # each day (where any position of that day is closed)
    day_codes, days = local_days(ts, decision.market.tz)
    ex_rows = np.flatnonzero(executable)
    by_sym = ex_rows[np.lexsort((ts[ex_rows], code[ex_rows]))]
    last_of_day = np.zeros(n, dtype=bool)
    if by_sym.size:
        s_code, s_day = code[by_sym], day_codes[by_sym]
        boundary = np.r_[(s_code[1:] != s_code[:-1]) | (s_day[1:] != s_day[:-1]), True]
        last_of_day[by_sym[boundary]] = True
    starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]]) if n else np.zeros(0, np.int64)
    return Inputs(
        ts=ts,
        code=code,
        sym_names=np.asarray(names, dtype=object),
        ps=frame[list(config.short_prob_cols)].to_numpy(dtype=np.float64)[order],
        pl=frame[list(config.long_prob_cols)].to_numpy(dtype=np.float64)[order],
        mid=mid,
        spread=spread,
        opt=opt,
        executable=executable,
        day_codes=day_codes,
        days=days,
        last_of_day=last_of_day,
        starts=starts,
    )


def _direction_model(
    frame: pd.DataFrame, config: BacktestConfig, order: np.ndarray, ts: np.ndarray
) -> np.ndarray | None:
    """The sorted ``direction_model_col`` (1.0: the row's version has a direction model, 0.0:
    not; None: column absent); a ValueError when the rows of one timestamp disagree."""
    if config.direction_model_col not in frame.columns:
        return None
    flag = frame[config.direction_model_col].to_numpy(dtype=bool)[order]
    same_ts = ts[1:] == ts[:-1]
    if (same_ts & (flag[1:] != flag[:-1])).any():
        raise ValueError(
            f"{config.direction_model_col} differs within a timestamp: one model version "
            "decides a timestamp"
        )
    return flag.astype(np.float64)


def simulate(
    inp: Inputs, decision: DecisionConfig, config: BacktestConfig, state: DecisionState
) -> Run:
    """Step 2: per timestamp, decide (the live call) then step the book (the ledger's call)."""
    n = inp.ts.size
    book = PositionBook(config.execution())
    run = Run(
        pnl=np.zeros(n),
        position=np.zeros(n, dtype=np.int8),
        score=np.full(n, np.nan),
        long_score=np.full(n, np.nan),
        decision=np.zeros(n, dtype=np.int8),
        gate=np.zeros(n, dtype=np.int8),
        risk_gate=np.zeros(n, dtype=np.int8),
        fills={k: [] for k in FILL_FIELDS},
        trades={k: [] for k in TRADE_FIELDS},
        book=book,
    )
    row_sym = inp.row_sym
    opt = inp.opt
    has_dir = opt["direction_model"]

    def part(name: str, a: int, b: int) -> np.ndarray | None:
        arr = opt[name]
        return None if arr is None else arr[a:b]

    ends = np.r_[inp.starts[1:], n]
    days = day_numbers(inp.ts[inp.starts], decision.market.tz)
    for a, b, day in zip(inp.starts.tolist(), ends.tolist(), days.tolist(), strict=True):
        t = int(inp.ts[a])
        syms = row_sym[a:b]
        # a version without a direction model: the short model decides (direction None)
        by_dir = has_dir is None or bool(has_dir[a] > 0)
        d = decide_fn(
            decision, state, t, syms, inp.ps[a:b], inp.pl[a:b],
            part("ret", a, b), part("vol", a, b), part("age", a, b),
            direction=part("direction", a, b) if by_dir else None,
        )  # fmt: skip
        step = book.step(
            t, syms, d.decision, inp.mid[a:b], inp.spread[a:b],
            vol=part("vol", a, b), strength=d.score, returns=part("ret", a, b),
            bid_size=part("bid_size", a, b), ask_size=part("ask_size", a, b),
            eod=inp.last_of_day[a:b], day=day,
        )  # fmt: skip
        run.score[a:b], run.long_score[a:b] = d.score, d.long_score
        run.decision[a:b], run.gate[a:b] = d.decision, d.gate
        run.pnl[a:b], run.position[a:b], run.risk_gate[a:b] = step.pnl, step.position, step.gate
        for key, parts in step.fills.items():
            run.fills[key].extend(parts)
        for key, parts in step.trades.items():
            run.trades[key].extend(parts)
    if (book.s["side"] != 0).any():  # cannot happen: every opening row has a last executable row
        raise RuntimeError("positions left open at the end of the backtest")
    return run
