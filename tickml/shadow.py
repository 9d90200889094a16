"""Shadow trading vs the backtest: the backtest of the rows the live path saw, the comparison of
their fills, and the metrics both sides are reported with.

The backtest input of a replayed (or live) day is built from the batch feature rows of that day
exactly as the live path builds it: the champion's probabilities of each row, the market
columns (:func:`tickml.execution.market.book_at` on the day's ticks, what the materializer
packs), ``last_return`` = ``ret_b1``, ``recent_vol`` from :func:`tickml.volatility.recent_vol`
(what the scorer streams), ``feature_age`` 0 (a row is scored at its own boundary) and the
direction model's prediction (``direction``) when the champion has one; on a day that mixes
versions with and without a direction model, ``direction_model`` marks the rows whose version
has one (the others are decided by the short model, ``direction=None``, as live decides them).
Same rows, same decision function, same book: the fills must be the same, and
:func:`compare_fills` says by how much they are not.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tickml.backtest import BacktestConfig, run_backtest
from tickml.decision import LONG_CLASSES, SHORT_CLASSES, DecisionConfig
from tickml.execution.market import book_at
from tickml.models.train import predict_proba, predict_value
from tickml.volatility import recent_vol

FILL_KEYS = ("ts", "symbol", "side", "action", "reason")
FILL_VALUES = ("qty", "price", "cost")


def backtest_frame(
    rows: pd.DataFrame,
    ticks: pd.DataFrame,
    p_short: np.ndarray,
    p_long: np.ndarray,
    tz: str = "America/New_York",
    direction: np.ndarray | None = None,
    direction_model: np.ndarray | None = None,
) -> pd.DataFrame:
    """The backtest's input for feature ``rows`` (``symbol``, ``event_timestamp``, ``ret_b1``)
    scored with ``p_short`` / ``p_long`` and the direction model's ``direction`` (None: no
    direction model; all aligned with ``rows``); ``direction_model``: per row, whether its
    version has a direction model (None: all rows have one when ``direction`` is given); see
    the module doc."""
    ev = pd.to_datetime(rows["event_timestamp"], utc=True)
    out = pd.DataFrame({"symbol": rows["symbol"].astype(str).to_numpy(), "event_timestamp": ev})
    out.index = rows.index
    for cols, p in (
        ([f"p_short_{c}" for c in SHORT_CLASSES], p_short),
        ([f"p_long_{c}" for c in LONG_CLASSES], p_long),
    ):
        out[cols] = np.asarray(p, dtype=np.float64)
    out = pd.concat([out, book_at(ticks, rows)], axis=1)
    out["last_return"] = rows["ret_b1"].to_numpy(dtype=np.float64)
    ts_ns = ev.dt.tz_convert("UTC").astype("int64").to_numpy()
    out["recent_vol"] = recent_vol(
        out["symbol"].to_numpy(), ts_ns, out["last_return"].to_numpy(dtype=np.float64), tz
    )
    out["feature_age"] = 0.0
    if direction is not None:
        out["direction"] = np.asarray(direction, dtype=np.float64)
        if direction_model is not None:
            out["direction_model"] = np.asarray(direction_model, dtype=bool)
    return out.reset_index(drop=True)


def _ordered(fills: pd.DataFrame) -> pd.DataFrame:
    """Fills in book order: position rank (ids grow in opening order on both sides), open
    before close."""
    f = fills.copy()
    f["ts"] = pd.to_datetime(f["ts"], utc=True)
    rank = f["position_id"].rank(method="dense").astype(np.int64)
    f["_order"] = rank * 2 + (f["action"] == "close")
    return f.sort_values("_order", kind="stable").reset_index(drop=True)


def compare_fills(shadow: pd.DataFrame, backtest: pd.DataFrame) -> dict[str, Any]:
    """Fill by fill: the same (time, symbol, side, action, reason) in the same order, and the
    largest differences of size, price and cost; net P&L (closing fills' ``net`` for the shadow
    side, round trips' ``net`` for the backtest, passed as the fills' ``net`` column)."""
    a, b = _ordered(shadow), _ordered(backtest)
    n = min(len(a), len(b))
    same = [bool((a[k].iloc[:n].to_numpy() == b[k].iloc[:n].to_numpy()).all()) for k in FILL_KEYS]
    diffs = {
        f"max_{k}_diff": float(np.abs(a[k].iloc[:n].to_numpy() - b[k].iloc[:n].to_numpy()).max())
        if n
        else 0.0
        for k in FILL_VALUES
    }
    net_a = float(a["net"].dropna().sum()) if "net" in a else math.nan
    net_b = float(b["net"].dropna().sum()) if "net" in b else math.nan
    return {
        "n_shadow": int(len(a)),
        "n_backtest": int(len(b)),
        "same_fills": len(a) == len(b) and all(same),
        "mismatched_columns": [k for k, ok in zip(FILL_KEYS, same, strict=True) if not ok],
        **diffs,
        "net_shadow": net_a,
        "net_backtest": net_b,
        "net_diff": abs(net_a - net_b),
    }


def book_metrics(
    interval_pnl: Sequence[float] | np.ndarray,
    trade_nets: Sequence[float] | np.ndarray,
    traded_value: float,
    notional: float = 1.0,
    intervals_per_year: float = 252 * 390,
) -> dict[str, Any]:
    """The report's metrics of one side, with one definition for both: net P&L, Sharpe of the
    interval P&L annualised (a description of one day, not evidence), maximum drawdown of the
    cumulative P&L from its running peak (from 0), hit rate of the round trips, turnover
    (traded value / notional) and the number of round trips."""
    pnl = np.asarray(interval_pnl, dtype=np.float64)
    nets = np.asarray(trade_nets, dtype=np.float64)
    eq = np.cumsum(pnl)
    peak = np.maximum.accumulate(np.r_[0.0, eq])[1:] if eq.size else eq
    sd = float(np.std(pnl, ddof=1)) if pnl.size > 1 else 0.0
    return {
        "net_pnl": float(nets.sum()),
        "sharpe": float(pnl.mean()) / sd * math.sqrt(intervals_per_year) if sd > 0 else None,
        "max_drawdown": float((peak - eq).max()) if eq.size else 0.0,
        "hit_rate": float((nets > 0).mean()) if nets.size else None,
        "turnover": traded_value / notional,
        "n_trades": int(nets.size),
    }


def probabilities_by_version(
    rows: pd.DataFrame, row_version: np.ndarray, models: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Each row scored by the model version the live scorer used at its boundary (``models``:
    version -> its :class:`~tickml.models.registry.RegisteredModels`); NaN where no model
    scored (fallback)."""
    ps = np.full((len(rows), len(SHORT_CLASSES)), np.nan)
    pl = np.full((len(rows), len(LONG_CLASSES)), np.nan)
    for version, m in models.items():
        sel = np.flatnonzero(row_version == version)
        if sel.size and m is not None:
            ps[sel] = predict_proba(m.short, rows.iloc[sel])
            pl[sel] = predict_proba(m.long, rows.iloc[sel])
    return ps, pl


def directions_by_version(
    rows: pd.DataFrame, row_version: np.ndarray, models: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Each row's direction prediction by the version the live scorer used (NaN where that
    version has no direction model or no model scored) and whether that version decides by its
    direction model (``decision_model``, :class:`~tickml.models.registry.RegisteredModels`);
    None when no version does."""
    by_dir = {
        v: m.models["direction"]
        for v, m in models.items()
        if m is not None and m.decision_model == "direction"
    }
    if not by_dir:
        return None
    out = np.full(len(rows), np.nan)
    has = np.zeros(len(rows), dtype=bool)
    for version, d in by_dir.items():
        sel = np.flatnonzero(row_version == version)
        if sel.size:
            out[sel] = predict_value(d, rows.iloc[sel])
            has[sel] = True
    return out, has


def shadow_vs_backtest(
    rows: pd.DataFrame,
    ticks: pd.DataFrame,
    shadow_fills: pd.DataFrame,
    shadow_equity: pd.DataFrame,
    models: Mapping[str, Any],
    decision: DecisionConfig,
    config: BacktestConfig,
    intervals_per_year: float = 252 * 390,
) -> dict[str, Any]:
    """One day: the backtest of the batch ``rows`` with the models the live path used
    (``shadow_equity``'s ``model_version`` per boundary), its fills against the shadow fills,
    and both sides' :func:`book_metrics`. ``passed``: the same fills and every size, price, cost
    and the net P&L within ``tolerance`` = 1e-9 x the day's costs (costs' rounding; the live
    path and the backtest are exact on the same rows, so any real divergence is far larger)."""

    def ns(values: Any) -> pd.Series:
        return (
            pd.Series(pd.to_datetime(values, utc=True))
            .astype("datetime64[ns, UTC]")
            .astype("int64")
        )

    version_at = pd.Series(
        shadow_equity["model_version"].to_numpy(), index=ns(shadow_equity["boundary"]).to_numpy()
    )
    row_version = ns(rows["event_timestamp"]).map(version_at).fillna("").to_numpy(dtype=object)
    ps, pl = probabilities_by_version(rows, row_version, models)
    dirs = directions_by_version(rows, row_version, models)
    direction, has = (None, None) if dirs is None else dirs
    frame = backtest_frame(rows, ticks, ps, pl, decision.market.tz, direction, has)
    res = run_backtest(frame, decision, config)
    bt_fills = res.fills
    if bt_fills is None:
        raise RuntimeError("the backtest returned no fills frame")
    cmp = compare_fills(shadow_fills, bt_fills)
    shadow_closes = shadow_fills[shadow_fills["action"] == "close"]
    sides = {
        "shadow": book_metrics(
            shadow_equity["pnl"].to_numpy(dtype=np.float64),
            shadow_closes["net"].to_numpy(dtype=np.float64),
            float((shadow_fills["qty"] * shadow_fills["price"]).sum()),
            config.notional,
            intervals_per_year,
        ),
        "backtest": book_metrics(
            res.equity["pnl"].to_numpy(),
            res.trades["net"].to_numpy(),
            float((bt_fills["qty"] * bt_fills["price"]).sum()),
            config.notional,
            intervals_per_year,
        ),
    }
    tolerance = 1e-9 * max(1.0, float(bt_fills["cost"].abs().sum()))
    diffs = [cmp[f"max_{k}_diff"] for k in FILL_VALUES] + [cmp["net_diff"]]
    return {
        "passed": bool(cmp["same_fills"] and all(d <= tolerance for d in diffs)),
        "tolerance": tolerance,
        "comparison": cmp,
        "metrics": sides,
        "model_versions": sorted({str(v) for v in row_version}),
        "n_rows": int(len(rows)),
        "decisions": res.metrics["gate_counts"],
        "risk_gates": res.metrics["risk_gate_counts"],
    }
