"""Backtest: both models' outputs -> THE decision function -> THE position book -> P&L.

Input: one row per (symbol, event_timestamp) with both models' probabilities, the mid price and
the quoted spread at the row's timestamp (plus optional ``last_return`` / ``recent_vol`` /
``feature_age`` for the volatility halt, the fallback, staleness, volatility sizing and the risk
limit, ``bid_size`` / ``ask_size`` for slippage, and ``direction``, the direction model's
prediction; other columns are ignored). Rows are processed in time order; at each
timestamp the cross-section goes through :func:`tickml.decision.decide` exactly as the live
scorer calls it (one :class:`DecisionState` carried along), then through
:meth:`tickml.execution.PositionBook.step` exactly as the live shadow ledger calls it. Every
execution rule (holding, exits and their precedence, sizing, caps, risk limit, costs) is
documented once, in :mod:`tickml.execution`. ``recent_vol`` comes from
:func:`tickml.volatility.recent_vol`, the function the live scorer streams.

The backtest knows each symbol's last executable row of every local day (the decision config's
time zone) and closes positions there (reason ``eod``); data that end mid-day close there too.

**The models' roles** (:mod:`tickml.decision`): without a ``direction`` column the short
model's ``P(UP) - P(DOWN)`` is the score and calls the trade; with one, the direction model's
prediction is the score (its sign the side, ``min_direction`` its bar), the short model only
blocks trades it sees as traps (``max_trap_prob``, gate ``trap``) and a NaN direction is "no
model" for that row (fallback). A frame of several model versions marks the rows of a version
without a direction model with ``direction_model`` False: those timestamps are decided with no
direction (the short model calls the trade), as the live scorer decides them. In both cases the
long model confirms (``require_agreement``) and the score is the book's ``strength`` (its
sizing and the universe cap's ranking).

Metrics: ``net_pnl`` (= the last portfolio equity = sum of trades' net P&L), ``gross_pnl``,
``costs``; ``sharpe`` = mean / standard deviation (ddof 1) of daily net P&L x sqrt(252), None
with fewer than two days. With a handful of days this is a description, not evidence:
``sharpe_se`` gives its standard error under iid daily returns (Lo 2002: sqrt((1 + SR_d^2 / 2)
/ n_days) x sqrt(252); about 7 for five days). ``max_drawdown``: the largest fall of portfolio
equity from its running peak (starting at 0), positive, in P&L units. ``hit_rate``: share of
round trips with net P&L > 0. ``turnover``: traded value (both sides) per day in units of
``notional``. ``trades_per_day``: round trips per day. ``risk_gate_counts``: the book's outcome
per row (:data:`tickml.execution.RISK_GATES`). Days are local days of the decision config's
time zone, counted when they have rows. P&L is in units of ``notional`` (1.0 = one unit
position's value, so 0.0001 = 1 bp of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tickml.backtest.config import BacktestConfig
from tickml.backtest.frames import equity_frames, fills_frame, summarize, trades_frame
from tickml.backtest.simulate import prepare, simulate
from tickml.decision import DecisionConfig, DecisionState

__all__ = [
    "BacktestConfig",
    "BacktestResult",
    "equity_frames",
    "fills_frame",
    "prepare",
    "run_backtest",
    "simulate",
    "summarize",
    "trades_frame",
]


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Everything the backtest produced. Frames are in time order."""

    #: one row per round trip: symbol, side (+1/-1), entry/exit timestamps and mids, qty, value
    #: (at entry), gross, costs, net (P&L units), net_return (net / value), exit_reason
    trades: pd.DataFrame
    #: per input row (time order): symbol, event_timestamp, score, long_score, decision, gate,
    #: risk_gate (the book's outcome)
    decisions: pd.DataFrame
    #: per input row: symbol, event_timestamp, position (after the row), pnl, equity (symbol's)
    symbol_equity: pd.DataFrame
    #: per timestamp: event_timestamp, pnl, equity (the portfolio's, net of costs)
    equity: pd.DataFrame
    #: per local day: day, pnl, n_trades
    daily: pd.DataFrame
    metrics: dict[str, Any]
    #: one row per fill: ts, symbol, side (+1 buy / -1 sell), qty, price, cost, slippage,
    #: action (open / close), reason, position_id, value
    fills: pd.DataFrame | None = None


def run_backtest(
    frame: pd.DataFrame,
    decision: DecisionConfig | None = None,
    config: BacktestConfig | None = None,
    state: DecisionState | None = None,
) -> BacktestResult:
    """Run the backtest over ``frame``: :func:`prepare` -> :func:`simulate` -> frames ->
    :func:`summarize` (rules: the module doc and :mod:`tickml.execution`)."""
    decision = decision or DecisionConfig()
    config = config or BacktestConfig()
    state = state if state is not None else DecisionState()
    inp = prepare(frame, decision, config)
    run = simulate(inp, decision, config, state)
    trades = trades_frame(run, inp.sym_names)
    decisions, sym_eq, equity, daily, daily_pnl = equity_frames(
        inp, run, trades, decision.market.tz
    )
    return BacktestResult(
        trades=trades,
        decisions=decisions,
        symbol_equity=sym_eq,
        equity=equity,
        daily=daily,
        metrics=summarize(inp, run, trades, equity, daily_pnl, config),
        fills=_with_round_trips(fills_frame(run.fills, run.book.symbols), trades),
    )


def _with_round_trips(fills: pd.DataFrame, trades: pd.DataFrame) -> pd.DataFrame:
    """Closing fills carry their round trip's gross and net P&L (as the shadow ledger's do)."""
    by_pos = trades.set_index("position_id")
    close = (fills["action"] == "close").to_numpy()
    for col in ("gross", "net"):
        fills[col] = np.where(close, fills["position_id"].map(by_pos[col]), np.nan)
    return fills
