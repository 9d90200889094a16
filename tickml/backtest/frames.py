"""Backtest steps 3-4: the result frames (trades, fills, decisions, equity, daily) and metrics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from tickml.backtest.config import BacktestConfig
from tickml.backtest.simulate import Inputs, Run
from tickml.decision import GATES
from tickml.execution import EXIT_REASONS, OPEN, RISK_GATES
from tickml.market import EPOCH, day_numbers, utc_ns


def _f(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _cat(parts: dict[str, list[np.ndarray]], key: str, dtype: Any) -> np.ndarray:
    p = parts[key]
    return np.concatenate(p).astype(dtype) if p else np.zeros(0, dtype=dtype)


def trades_frame(run: Run, names: np.ndarray) -> pd.DataFrame:
    """Step 3a: the round trips, in exit order."""
    t = run.trades
    gross, costs = _cat(t, "gross", np.float64), _cat(t, "costs", np.float64)
    value = _cat(t, "value", np.float64)
    slots = _cat(t, "slot", np.int64)
    book_names = np.asarray(run.book.symbols, dtype=object)
    out = pd.DataFrame(
        {
            "symbol": book_names[slots] if slots.size else np.zeros(0, dtype=object),
            "side": _cat(t, "side", np.int8),
            "entry_ts": pd.to_datetime(_cat(t, "entry_ts", np.int64), utc=True),
            "exit_ts": pd.to_datetime(_cat(t, "exit_ts", np.int64), utc=True),
            "entry_mid": _cat(t, "entry_mid", np.float64),
            "exit_mid": _cat(t, "exit_mid", np.float64),
            "qty": _cat(t, "qty", np.float64),
            "value": value,
            "gross": gross,
            "costs": costs,
            "net": gross - costs,
            "net_return": (gross - costs) / value,
            "exit_reason": np.asarray(EXIT_REASONS, dtype=object)[_cat(t, "reason", np.int64)],
            "position_id": _cat(t, "pos_id", np.int64),
            "entry_vol": _cat(t, "entry_vol", np.float64),
        }
    )
    return out.sort_values(["exit_ts", "symbol"], kind="stable").reset_index(drop=True)


def fills_frame(fills: dict[str, list[np.ndarray]], symbols: list[str]) -> pd.DataFrame:
    """One row per fill, in the book's order (time, then the order of operations)."""
    slots = _cat(fills, "slot", np.int64)
    reason = _cat(fills, "reason", np.int64)
    names = np.asarray(symbols, dtype=object)
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(_cat(fills, "ts", np.int64), utc=True),
            "symbol": names[slots] if slots.size else np.zeros(0, dtype=object),
            "side": _cat(fills, "side", np.int8),
            "qty": _cat(fills, "qty", np.float64),
            "price": _cat(fills, "price", np.float64),
            "cost": _cat(fills, "cost", np.float64),
            "slippage": _cat(fills, "slippage", np.float64),
            "action": np.where(reason == OPEN, "open", "close").astype(object),
            "reason": np.asarray(("signal", *EXIT_REASONS), dtype=object)[reason + 1],
            "position_id": _cat(fills, "pos_id", np.int64),
            "value": _cat(fills, "value", np.float64),
        }
    )


def equity_frames(
    inp: Inputs, run: Run, trades: pd.DataFrame, tz: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Step 3b: decisions, per-symbol equity, portfolio equity, daily P&L (and its array)."""
    row_sym = inp.row_sym
    event_ts = pd.to_datetime(inp.ts, utc=True)
    decisions = pd.DataFrame(
        {
            "symbol": row_sym,
            "event_timestamp": event_ts,
            "score": run.score,
            "long_score": run.long_score,
            "decision": np.array(["NONE", "LONG", "SHORT"], dtype=object)[run.decision % 3],
            "gate": np.asarray(GATES, dtype=object)[run.gate],
            "risk_gate": np.asarray(RISK_GATES, dtype=object)[run.risk_gate],
        }
    )
    sym_eq = pd.DataFrame(
        {"symbol": row_sym, "event_timestamp": event_ts, "position": run.position, "pnl": run.pnl}
    )
    sym_eq["equity"] = sym_eq.groupby("symbol", sort=False)["pnl"].cumsum()
    starts = inp.starts
    if inp.ts.size:
        t_pnl = np.add.reduceat(run.pnl, starts)
        day_of_t = inp.day_codes[starts]
    else:
        t_pnl, day_of_t = np.zeros(0), np.zeros(0, dtype=np.int64)
    equity = pd.DataFrame(
        {"event_timestamp": pd.to_datetime(inp.ts[starts], utc=True), "pnl": t_pnl}
    )
    equity["equity"] = equity["pnl"].cumsum()
    n_days = len(inp.days)
    daily_pnl = np.bincount(day_of_t, weights=t_pnl, minlength=n_days)
    exit_day = day_numbers(utc_ns(trades["exit_ts"]), tz)
    day_number = np.array([(d - EPOCH).days for d in inp.days], dtype=np.int64)
    trade_day = np.searchsorted(day_number, exit_day) if len(trades) else np.zeros(0, np.int64)
    daily = pd.DataFrame(
        {
            "day": inp.days,
            "pnl": daily_pnl,
            "n_trades": np.bincount(trade_day, minlength=n_days).astype(np.int64),
        }
    )
    return decisions, sym_eq, equity, daily, daily_pnl


def summarize(
    inp: Inputs,
    run: Run,
    trades: pd.DataFrame,
    equity: pd.DataFrame,
    daily_pnl: np.ndarray,
    config: BacktestConfig,
) -> dict[str, Any]:
    """Step 4: the metrics (see the module doc)."""
    n_days = len(inp.days)
    eq = equity["equity"].to_numpy()
    peak = np.maximum.accumulate(np.r_[0.0, eq])[1:] if eq.size else eq
    sharpe = sharpe_se = None
    if n_days >= 2:
        sd = float(np.std(daily_pnl, ddof=1))
        if sd > 0:
            sr_d = float(np.mean(daily_pnl)) / sd
            sharpe = sr_d * math.sqrt(config.periods_per_year)
            sharpe_se = math.sqrt((1 + sr_d**2 / 2) / n_days) * math.sqrt(config.periods_per_year)
    n_trades = len(trades)
    net = trades["net"].to_numpy()
    return {
        "net_pnl": float(net.sum()),
        "gross_pnl": float(_cat(run.trades, "gross", np.float64).sum()),  # the book's order
        "costs": float(_cat(run.trades, "costs", np.float64).sum()),
        "sharpe": sharpe,
        "sharpe_se": sharpe_se,
        "max_drawdown": float((peak - eq).max()) if eq.size else 0.0,
        "n_trades": int(n_trades),
        "hit_rate": _f(float((net > 0).mean())) if n_trades else None,
        "avg_net_return_bps": _f(float(net.mean()) / config.notional * 1e4) if n_trades else None,
        "turnover": run.book.traded_value / config.notional / n_days if n_days else 0.0,
        "trades_per_day": n_trades / n_days if n_days else 0.0,
        "n_days": int(n_days),
        "n_rows": int(inp.ts.size),
        "n_symbols": int(len(inp.sym_names)),
        "n_signals_not_executed": int(((run.decision != 0) & ~inp.executable).sum()),
        "sizing": config.sizing,
        "avg_position_value": _f(float(trades["value"].mean())) if n_trades else None,
        "exit_reasons": {r: int((trades["exit_reason"] == r).sum()) for r in EXIT_REASONS},
        "gate_counts": _counts(run.gate, GATES),
        "risk_gate_counts": _counts(run.risk_gate, RISK_GATES, skip=("none",)),
    }


def _counts(codes: np.ndarray, names: tuple[str, ...], skip: tuple[str, ...] = ()) -> dict:
    counts = np.bincount(codes.astype(np.int64), minlength=len(names))
    return {g: int(v) for g, v in zip(names, counts, strict=True) if v and g not in skip}
