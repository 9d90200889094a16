"""Backtest: both models' outputs -> positions through THE decision function -> P&L net of costs.

Input: one row per (symbol, event_timestamp) with both models' probabilities, the mid price and
the quoted spread at the row's timestamp (plus optional ``last_return`` / ``recent_vol`` /
``feature_age`` for the volatility halt, the fallback and staleness). Rows are processed in
time order; at each timestamp the cross-section goes through :func:`tickml.decision.decide`
exactly as the live scoring worker calls it (same config, one :class:`DecisionState` carried
along), so the decisions are the live ones.

Execution model (documented choices):

* a signal (gate ``traded`` or ``fallback``) with the symbol flat **opens** a position of
  ``notional`` (quantity ``notional / mid``) at the row's mid;
* a position is held for ``horizon``: it is **closed at the first row of that symbol stamped
  at or after entry + horizon** (with rows on the sampling grid, exactly the label's horizon,
  so the gross return is the label's ``fwd_return``);
* a same-direction signal while holding **extends** the holding period to that row + horizon
  (no new cost); an opposite signal **reverses**: close, then open the other side, at that mid;
* positions never stay overnight: they close at the symbol's last row of the local day (or of
  the data). A position is opened at most once per row; time exits are processed before the
  row's signals, so an exit and a new entry can share a row (both sides pay costs);
* **costs**, per side: half the quoted spread plus ``fee_bps`` of the traded value, i.e.
  ``qty * (spread / 2 + mid * fee_bps / 1e4)`` at that row. P&L is in the units of
  ``notional``: 1.0 = one position's notional (so 0.0001 = 1 bp of it);
* positions are marked to market at each of the symbol's rows (mid), so the equity curves
  and the drawdown include open positions; costs hit equity when paid.

Metrics: ``net_pnl`` (= the last portfolio equity = sum of trades' net P&L), ``gross_pnl``,
``costs``; ``sharpe`` = mean / standard deviation (ddof 1) of daily net P&L x sqrt(252),
None with fewer than two days. With a handful of days this is a description, not evidence:
``sharpe_se`` gives its standard error under iid daily returns (Lo 2002: sqrt((1 + SR_d^2 / 2)
/ n_days) x sqrt(252); about 7 for five days). ``max_drawdown``: the largest fall of portfolio
equity from its running peak (starting at 0), positive, in P&L units. ``hit_rate``: share of
round trips with net P&L > 0. ``turnover``: traded value (both sides) per day in units of
``notional``. ``trades_per_day``: round trips per day. Days are local days of the decision
config's time zone, counted when they have rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tickml.decision import (
    GATES,
    LONG_CLASSES,
    SHORT_CLASSES,
    DecisionConfig,
    DecisionState,
    decide,
)
from tickml.market import EPOCH, day_numbers, local_days, utc_ns

log = logging.getLogger(__name__)

EXIT_REASONS: tuple[str, ...] = ("horizon", "reverse", "eod")


class BacktestConfig(BaseModel):
    """Execution, costs and the input columns of the backtest."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizon: dt.timedelta = Field(
        default=dt.timedelta(minutes=15),
        description="holding period: the short model's horizon",
    )
    fee_bps: float = Field(
        default=0.5, ge=0.0, description="fee per side, basis points of the traded value"
    )
    notional: float = Field(
        default=1.0, gt=0.0, description="value of each position; P&L is in these units"
    )
    periods_per_year: int = Field(
        default=252, ge=1, description="trading days per year, to annualise the daily Sharpe"
    )
    short_prob_cols: tuple[str, ...] = Field(
        default=tuple(f"p_short_{c}" for c in SHORT_CLASSES),
        description="columns of the short model's probabilities, in SHORT_CLASSES order",
    )
    long_prob_cols: tuple[str, ...] = Field(
        default=tuple(f"p_long_{c}" for c in LONG_CLASSES),
        description="columns of the long model's probabilities, in LONG_CLASSES order",
    )
    mid_col: str = Field(default="mid", description="mid price at the row's timestamp")
    spread_col: str = Field(
        default="spread", description="quoted spread (ask - bid) at the row's timestamp, price"
    )
    last_return_col: str = Field(
        default="last_return",
        description="mid return over the last interval (vol halt, fallback); optional column",
    )
    recent_vol_col: str = Field(
        default="recent_vol", description="recent interval-return volatility; optional column"
    )
    feature_age_col: str = Field(
        default="feature_age",
        description="seconds from the features' timestamp to the row's; optional (absent: 0)",
    )


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Everything the backtest produced. Frames are in time order."""

    #: one row per round trip: symbol, side (+1/-1), entry/exit timestamps and mids, qty,
    #: gross, costs, net (P&L units), net_return (net / notional), exit_reason
    trades: pd.DataFrame
    #: per input row (time order): symbol, event_timestamp, score, long_score, decision, gate
    decisions: pd.DataFrame
    #: per input row: symbol, event_timestamp, position (after the row), pnl, equity (symbol's)
    symbol_equity: pd.DataFrame
    #: per timestamp: event_timestamp, pnl, equity (the portfolio's, net of costs)
    equity: pd.DataFrame
    #: per local day: day, pnl, n_trades
    daily: pd.DataFrame
    metrics: dict[str, Any]


def _optional(frame: pd.DataFrame, col: str) -> np.ndarray | None:
    if col in frame.columns:
        return frame[col].to_numpy(dtype=np.float64)
    return None


def _f(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def run_backtest(
    frame: pd.DataFrame,
    decision: DecisionConfig | None = None,
    config: BacktestConfig | None = None,
    state: DecisionState | None = None,
) -> BacktestResult:
    """Run the backtest over ``frame`` (see the module docstring for every rule)."""
    decision = decision or DecisionConfig()
    config = config or BacktestConfig()
    state = state if state is not None else DecisionState()
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

    ts_all = utc_ns(frame["event_timestamp"])
    codes_all, names = pd.factorize(frame["symbol"].astype(str), sort=True)
    order = np.lexsort((codes_all, ts_all))
    ts = ts_all[order]
    code = codes_all[order].astype(np.int64)
    sym_names = np.asarray(names, dtype=object)
    row_sym = sym_names[code]
    dup = (np.diff(ts) == 0) & (np.diff(code) == 0)
    if dup.any():
        raise ValueError(f"{int(dup.sum())} duplicate (symbol, event_timestamp) rows")
    ps = frame[list(config.short_prob_cols)].to_numpy(dtype=np.float64)[order]
    pl = frame[list(config.long_prob_cols)].to_numpy(dtype=np.float64)[order]
    mid = frame[config.mid_col].to_numpy(dtype=np.float64)[order]
    spread = frame[config.spread_col].to_numpy(dtype=np.float64)[order]
    opt = {
        name: (None if (arr := _optional(frame, col)) is None else arr[order])
        for name, col in (
            ("ret", config.last_return_col),
            ("vol", config.recent_vol_col),
            ("age", config.feature_age_col),
        )
    }
    n = ts.size
    executable = np.isfinite(mid) & (mid > 0) & np.isfinite(spread) & (spread >= 0)

    # local day per row (tickml.market's day rule) and the symbol's last
    # executable row of each day (where any position of that day is closed)
    day_codes, days = local_days(ts, decision.market.tz)
    ex_rows = np.flatnonzero(executable)
    by_sym = ex_rows[np.lexsort((ts[ex_rows], code[ex_rows]))]
    last_of_day = np.zeros(n, dtype=bool)
    if by_sym.size:
        s_code, s_day = code[by_sym], day_codes[by_sym]
        boundary = np.r_[(s_code[1:] != s_code[:-1]) | (s_day[1:] != s_day[:-1]), True]
        last_of_day[by_sym[boundary]] = True

    n_sym = len(sym_names)
    side = np.zeros(n_sym, dtype=np.int8)
    qty = np.zeros(n_sym)
    entry_ts = np.zeros(n_sym, dtype=np.int64)
    entry_mid = np.zeros(n_sym)
    entry_cost = np.zeros(n_sym)
    exit_due = np.zeros(n_sym, dtype=np.int64)
    mark = np.zeros(n_sym)
    fee = config.fee_bps * 1e-4
    horizon_ns = int(pd.Timedelta(config.horizon).value)

    row_pnl = np.zeros(n)
    row_pos = np.zeros(n, dtype=np.int8)
    score = np.full(n, np.nan)
    long_score = np.full(n, np.nan)
    dec = np.zeros(n, dtype=np.int8)
    gate = np.zeros(n, dtype=np.int8)
    traded_value = 0.0
    trades: dict[str, list[np.ndarray]] = {
        k: []
        for k in (
            "sym",
            "side",
            "entry_ts",
            "exit_ts",
            "entry_mid",
            "exit_mid",
            "qty",
            "gross",
            "costs",
            "reason",
        )
    }

    def close(rows: np.ndarray, reason: int) -> None:
        nonlocal traded_value
        if rows.size == 0:
            return
        c = code[rows]
        m = mid[rows]
        cost = qty[c] * (spread[rows] / 2 + m * fee)
        row_pnl[rows] -= cost
        trades["sym"].append(c)
        trades["side"].append(side[c].copy())
        trades["entry_ts"].append(entry_ts[c].copy())
        trades["exit_ts"].append(ts[rows])
        trades["entry_mid"].append(entry_mid[c].copy())
        trades["exit_mid"].append(m)
        trades["qty"].append(qty[c].copy())
        trades["gross"].append(side[c] * qty[c] * (m - entry_mid[c]))
        trades["costs"].append(entry_cost[c] + cost)
        trades["reason"].append(np.full(rows.size, reason, dtype=np.int8))
        traded_value += float((qty[c] * m).sum())
        side[c] = 0
        qty[c] = 0.0

    def open_(rows: np.ndarray, direction: np.ndarray) -> None:
        nonlocal traded_value
        if rows.size == 0:
            return
        c = code[rows]
        m = mid[rows]
        q = config.notional / m
        cost = q * (spread[rows] / 2 + m * fee)
        row_pnl[rows] -= cost
        side[c] = direction
        qty[c] = q
        entry_ts[c] = ts[rows]
        entry_mid[c] = m
        entry_cost[c] = cost
        exit_due[c] = ts[rows] + horizon_ns
        mark[c] = m
        traded_value += config.notional * rows.size

    starts = np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]]) if n else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], n]
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        rows = np.arange(a, b)
        c = code[a:b]
        t = int(ts[a])
        ex = executable[a:b]
        held = side[c] != 0
        # mark to market
        mtm = held & ex
        if mtm.any():
            cc = c[mtm]
            row_pnl[rows[mtm]] += side[cc] * qty[cc] * (mid[a:b][mtm] - mark[cc])
            mark[cc] = mid[a:b][mtm]
        # time exits
        close(rows[held & ex & (t >= exit_due[c])], 0)
        # decisions: exactly the live call
        d = decide(
            decision,
            state,
            t,
            row_sym[a:b],
            ps[a:b],
            pl[a:b],
            None if opt["ret"] is None else opt["ret"][a:b],
            None if opt["vol"] is None else opt["vol"][a:b],
            None if opt["age"] is None else opt["age"][a:b],
        )
        score[a:b] = d.score
        long_score[a:b] = d.long_score
        dec[a:b] = d.decision
        gate[a:b] = d.gate
        want = d.decision
        act = (want != 0) & ex
        cur = side[c]
        same = act & (cur == want)
        exit_due[c[same]] = t + horizon_ns
        rev = act & (cur == -want) & (cur != 0)
        close(rows[rev], 1)
        new = act & (side[c] == 0)
        open_(rows[new], want[new])
        # no position overnight
        eod = last_of_day[a:b] & (side[c] != 0) & ex
        close(rows[eod], 2)
        row_pos[a:b] = side[c]
    not_executed = int(((dec != 0) & ~executable).sum())
    if (side != 0).any():  # cannot happen: every opening row has a last executable row
        raise RuntimeError("positions left open at the end of the backtest")

    # -- frames and metrics ------------------------------------------------------------------
    def cat(key: str, dtype: Any) -> np.ndarray:
        parts = trades[key]
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)

    t_sym = cat("sym", np.int64)
    gross = cat("gross", np.float64)
    costs = cat("costs", np.float64)
    trade_frame = pd.DataFrame(
        {
            "symbol": sym_names[t_sym],
            "side": cat("side", np.int8),
            "entry_ts": pd.to_datetime(cat("entry_ts", np.int64), utc=True),
            "exit_ts": pd.to_datetime(cat("exit_ts", np.int64), utc=True),
            "entry_mid": cat("entry_mid", np.float64),
            "exit_mid": cat("exit_mid", np.float64),
            "qty": cat("qty", np.float64),
            "gross": gross,
            "costs": costs,
            "net": gross - costs,
            "net_return": (gross - costs) / config.notional,
            "exit_reason": np.asarray(EXIT_REASONS, dtype=object)[cat("reason", np.int64)],
        }
    )
    trade_frame = trade_frame.sort_values(["exit_ts", "symbol"], kind="stable").reset_index(
        drop=True
    )
    event_ts = pd.to_datetime(ts, utc=True)
    decisions = pd.DataFrame(
        {
            "symbol": row_sym,
            "event_timestamp": event_ts,
            "score": score,
            "long_score": long_score,
            "decision": np.array(["NONE", "LONG", "SHORT"], dtype=object)[dec % 3],
            "gate": np.asarray(GATES, dtype=object)[gate],
        }
    )
    sym_eq = pd.DataFrame(
        {"symbol": row_sym, "event_timestamp": event_ts, "position": row_pos, "pnl": row_pnl}
    )
    sym_eq["equity"] = sym_eq.groupby("symbol", sort=False)["pnl"].cumsum()
    if n:
        t_pnl = np.add.reduceat(row_pnl, starts)
        day_of_t = day_codes[starts]
    else:
        t_pnl = np.zeros(0)
        day_of_t = np.zeros(0, dtype=np.int64)
    equity = pd.DataFrame({"event_timestamp": pd.to_datetime(ts[starts], utc=True), "pnl": t_pnl})
    equity["equity"] = equity["pnl"].cumsum()
    n_days = len(days)
    daily_pnl = np.bincount(day_of_t, weights=t_pnl, minlength=n_days)
    exit_day = day_numbers(utc_ns(trade_frame["exit_ts"]), decision.market.tz)
    day_number = np.array([(d - EPOCH).days for d in days], dtype=np.int64)
    trade_day = np.searchsorted(day_number, exit_day) if len(trade_frame) else np.zeros(0, np.int64)
    daily = pd.DataFrame(
        {
            "day": days,
            "pnl": daily_pnl,
            "n_trades": np.bincount(trade_day, minlength=n_days).astype(np.int64),
        }
    )
    eq = equity["equity"].to_numpy()
    peak = np.maximum.accumulate(np.r_[0.0, eq])[1:] if eq.size else eq
    max_dd = float((peak - eq).max()) if eq.size else 0.0
    sharpe = sharpe_se = None
    if n_days >= 2:
        sd = float(np.std(daily_pnl, ddof=1))
        if sd > 0:
            sr_d = float(np.mean(daily_pnl)) / sd
            sharpe = sr_d * math.sqrt(config.periods_per_year)
            sharpe_se = math.sqrt((1 + sr_d**2 / 2) / n_days) * math.sqrt(config.periods_per_year)
    n_trades = len(trade_frame)
    net = trade_frame["net"].to_numpy()
    metrics: dict[str, Any] = {
        "net_pnl": float(net.sum()),
        "gross_pnl": float(gross.sum()),
        "costs": float(costs.sum()),
        "sharpe": sharpe,
        "sharpe_se": sharpe_se,
        "max_drawdown": max_dd,
        "n_trades": int(n_trades),
        "hit_rate": _f(float((net > 0).mean())) if n_trades else None,
        "avg_net_return_bps": _f(float(net.mean()) / config.notional * 1e4) if n_trades else None,
        "turnover": traded_value / config.notional / n_days if n_days else 0.0,
        "trades_per_day": n_trades / n_days if n_days else 0.0,
        "n_days": int(n_days),
        "n_rows": int(n),
        "n_symbols": int(n_sym),
        "n_signals_not_executed": not_executed,
        "exit_reasons": {r: int((trade_frame["exit_reason"] == r).sum()) for r in EXIT_REASONS},
        "gate_counts": {
            g: int(v)
            for g, v in zip(GATES, np.bincount(gate, minlength=len(GATES)), strict=True)
            if v
        },
    }
    return BacktestResult(
        trades=trade_frame,
        decisions=decisions,
        symbol_equity=sym_eq,
        equity=equity,
        daily=daily,
        metrics=metrics,
    )
