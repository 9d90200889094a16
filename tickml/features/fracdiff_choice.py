"""Choosing the fracdiff orders on the series exactly as the feature engine computes them.

The engine has two fracdiff features (family ``stationarity``):

* ``fracdiff_b<W>``: fixed-width (``fracdiff_width`` bars) fractional difference, order
  ``fracdiff_d``, of the **bar closes** of the log reference price (the mid of the carried
  valid book, else the last trade price), bars ``(start + j * interval, start + (j + 1) *
  interval]`` of the market day, a bar without a priced tick carrying the previous close;
* ``fracdiff_t<WT>``: the same on the **last WT priced ticks** (``fracdiff_tick_width``),
  order ``fracdiff_tick_d``.

Both reset every market day: nothing of yesterday enters today's values. So the series whose
stationarity matters is, per symbol-day, the feature's own values at the engine's rows (the
interval grid, inside the regular session when ``session_only``): :func:`engine_series`
rebuilds, for each symbol-day, the lagged inputs of both features at those rows, so that the
value for any order d is one dot product (tests/test_fracdiff_choice.py checks them against
``compute_features`` on a real day). :func:`choose_fracdiff_orders` then picks, per variant,
the smallest d on the grid whose fracdiffed series passes an ADF test (5%) on at least
``min_share`` of the symbol-days (default: every one).

The order is a feature-configuration choice like any other: choose it on **training days
only** (the days before the evaluation's first test fold, or a separate earlier period), never
on the days a model is evaluated on. ``tickml fracdiff-d --ticks PATH --source KIND [--end
DAY]`` runs it; store the result in the run configuration (``features.fracdiff_d``,
``features.fracdiff_tick_d``).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from tickml.features.config import FeatureConfig
from tickml.features.fracdiff import adf_pvalue, fracdiff_weights
from tickml.market import utc_ns

#: the default grid of orders: 0, 0.05, ..., 1
D_GRID: tuple[float, ...] = tuple(round(x, 2) for x in np.arange(0.0, 1.0001, 0.05))


@dataclass(frozen=True)
class SymbolDaySeries:
    """One symbol-day's lagged inputs of both fracdiff features at the engine's rows.

    ``bar_lags[i, k]`` is the log bar close k bars before row i's bar (k = 0: the bar that
    closes at the row); ``tick_lags[i, k]`` the log price k priced ticks before row i's last
    one. Rows where a feature is undefined (too few bars or ticks today) are left out of that
    matrix, so the two can have different row counts."""

    symbol: str
    day: dt.date
    bar_lags: np.ndarray
    tick_lags: np.ndarray
    #: UTC ns of the rows behind ``bar_lags`` / ``tick_lags``
    bar_rows: np.ndarray
    tick_rows: np.ndarray

    def fracdiff_bar(self, d: float) -> np.ndarray:
        return self.bar_lags @ fracdiff_weights(d, self.bar_lags.shape[1])

    def fracdiff_tick(self, d: float) -> np.ndarray:
        return self.tick_lags @ fracdiff_weights(d, self.tick_lags.shape[1])


def reference_log_price(ticks: pd.DataFrame) -> np.ndarray:
    """Per tick of ONE symbol-day (in engine order), the engine's log reference price: the mid
    of the last valid book (bid, ask, sizes > 0 and ask >= bid; an invalid one leaves the
    previous in place), else the last trade price (price and size > 0); NaN before either."""
    bid, ask = ticks["bid"].to_numpy(np.float64), ticks["ask"].to_numpy(np.float64)
    bsz, asz = ticks["bid_size"].to_numpy(np.float64), ticks["ask_size"].to_numpy(np.float64)
    px, sz = ticks["price"].to_numpy(np.float64), ticks["size"].to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        ok = (bid > 0) & (ask > 0) & (bsz > 0) & (asz > 0) & (ask >= bid)
        trade = (px > 0) & (sz > 0)
    mid = pd.Series(np.where(ok, 0.5 * (bid + ask), np.nan)).ffill().to_numpy()
    last = pd.Series(np.where(trade, px, np.nan)).ffill().to_numpy()
    ref = np.where(np.isfinite(mid), mid, last)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ref > 0, np.log(ref), np.nan)


def _row_times(cfg: FeatureConfig, day: dt.date) -> tuple[np.ndarray, int]:
    """The engine's row times on ``day`` (interval grid, session-only if configured) and the
    day's start (UTC ns)."""
    start, end, open_ns, close_ns = (int(x) for x in cfg.market.day_bounds(day))
    step = cfg.interval_ns
    grid = start + step * np.arange(1, (end - start) // step + 1, dtype=np.int64)
    if cfg.session_only and cfg.has_session:
        grid = grid[(grid > open_ns) & (grid <= close_ns)]
    return grid, start


def _lagged(values: np.ndarray, last: np.ndarray, width: int) -> np.ndarray:
    """``values[last - k]`` for k = 0..width-1 (rows: ``last``)."""
    return values[last[:, None] - np.arange(width)[None, :]]


def symbol_day_series(
    ticks: pd.DataFrame, cfg: FeatureConfig, day: dt.date, symbol: str
) -> SymbolDaySeries:
    """:class:`SymbolDaySeries` of one symbol's ticks of one market day (engine order)."""
    rows, start = _row_times(cfg, day)
    ts = utc_ns(ticks["ts"])
    lm = reference_log_price(ticks)
    priced = np.isfinite(lm)
    ets, elm = ts[priced], lm[priced]
    w, wt = cfg.fracdiff_width, cfg.fracdiff_tick_width
    empty = np.zeros((0, 0))
    if ets.size == 0:
        none = np.zeros(0, dtype=np.int64)
        return SymbolDaySeries(symbol, day, empty.reshape(0, w), empty.reshape(0, wt), none, none)
    # bars: the close of bar j is the last priced tick in (start + j*step, start + (j+1)*step]
    step = cfg.interval_ns
    bar_of_tick = (ets - start - 1) // step
    first_bar = int(bar_of_tick[0])
    row_bar = (rows - start) // step - 1  # the bar that closes at each row
    n_bars = int(max(row_bar.max(initial=first_bar), bar_of_tick[-1])) - first_bar + 1
    closes = np.full(n_bars, np.nan)
    closes[bar_of_tick - first_bar] = elm  # later ticks of a bar overwrite earlier ones
    closes = pd.Series(closes).ffill().to_numpy()
    has_bars = row_bar - first_bar >= w - 1
    bar_rows = rows[has_bars]
    bar_lags = _lagged(closes, row_bar[has_bars] - first_bar, w)
    # ticks: the last WT priced ticks at or before the row
    count = np.searchsorted(ets, rows, side="right")
    has_ticks = count >= wt
    tick_rows = rows[has_ticks]
    tick_lags = _lagged(elm, count[has_ticks] - 1, wt)
    return SymbolDaySeries(symbol, day, bar_lags, tick_lags, bar_rows, tick_rows)


def engine_series(ticks: pd.DataFrame, cfg: FeatureConfig | None = None) -> list[SymbolDaySeries]:
    """Per (symbol, market day) of canonical ``ticks``: :func:`symbol_day_series`."""
    cfg = cfg or FeatureConfig()
    if ticks.empty:
        return []
    ts = utc_ns(ticks["ts"])
    day_idx, days = cfg.market.day_index(ts)
    sort_cols = ["symbol", "ts"] + (["seq"] if "seq" in ticks.columns else [])
    frame = ticks.assign(_day=day_idx).sort_values(["_day", *sort_cols], kind="stable")
    out = []
    for key, grp in frame.groupby(["_day", "symbol"], sort=True):
        di, sym = cast(tuple[int, str], key)
        out.append(symbol_day_series(grp, cfg, days[int(di)], str(sym)))
    return out


@dataclass(frozen=True)
class FracdiffChoice:
    """The chosen orders and the ADF pass counts behind them."""

    d_bar: float
    d_tick: float
    #: one row per (variant, d): variant, d, n_series, n_pass, n_constant, share
    table: pd.DataFrame
    #: per (variant, d, symbol, day): the ADF p-value (NaN when constant), constant, passes
    pvalues: pd.DataFrame
    min_share: float

    def passes(self, variant: str, d: float) -> tuple[int, int]:
        """(symbol-days passing, symbol-days tested) at order ``d``."""
        row = self.table[(self.table["variant"] == variant) & np.isclose(self.table["d"], d)]
        if row.empty:
            raise KeyError(f"{variant} d={d} was not tested")
        return int(row["n_pass"].iloc[0]), int(row["n_series"].iloc[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "d_bar": self.d_bar,
            "d_tick": self.d_tick,
            "min_share": self.min_share,
            "table": self.table.to_dict(orient="records"),
        }


def _adf(values: np.ndarray) -> float:
    with warnings.catch_warnings():  # near-constant stretches make some lag fits singular
        warnings.simplefilter("ignore")
        return adf_pvalue(values)


def _choose(table: pd.DataFrame, variant: str, min_share: float) -> float:
    sub = table[table["variant"] == variant].sort_values("d")
    ok = sub[(sub["n_series"] > 0) & (sub["share"] >= min_share - 1e-12)]
    return float(ok["d"].iloc[0]) if len(ok) else float(sub["d"].iloc[-1])


def choose_fracdiff_orders(
    series: Iterable[SymbolDaySeries],
    grid: Iterable[float] = D_GRID,
    pvalue: float = 0.05,
    min_share: float = 1.0,
    min_rows: int = 20,
) -> FracdiffChoice:
    """Per variant (``bar``, ``tick``), the smallest d on ``grid`` whose fracdiffed series
    passes ADF at ``pvalue`` on at least ``min_share`` of the symbol-days (the largest d when
    none does). A symbol-day with fewer than ``min_rows`` defined values in a variant is not
    tested for it (and not counted); one whose fracdiffed values are all equal passes (a
    constant is stationary; the ADF regression is undefined on it) and is counted in
    ``n_constant``."""
    if not 0.0 < min_share <= 1.0:
        raise ValueError("min_share must be in (0, 1]")
    items = list(series)
    d_grid = sorted(float(d) for d in grid)
    recs = []
    for s in items:
        for variant, lags in (("bar", s.bar_lags), ("tick", s.tick_lags)):
            if lags.shape[0] < min_rows:
                continue
            for d in d_grid:
                values = lags @ fracdiff_weights(d, lags.shape[1])
                constant = bool(np.ptp(values) == 0)
                p = float("nan") if constant else _adf(values)
                recs.append((variant, d, s.symbol, s.day, p, constant))
    cols = ["variant", "d", "symbol", "day", "pvalue", "constant"]
    pv = pd.DataFrame(recs, columns=cols)
    pv["passes"] = (pv["pvalue"] < pvalue) | pv["constant"]
    table = (
        pv.groupby(["variant", "d"], as_index=False)
        .agg(n_series=("passes", "size"), n_pass=("passes", "sum"), n_constant=("constant", "sum"))
        .astype({"n_series": int, "n_pass": int, "n_constant": int})
    )
    table["share"] = table["n_pass"] / table["n_series"]
    if table.empty or set(table["variant"]) != {"bar", "tick"}:
        raise ValueError("no symbol-day has enough rows for both fracdiff variants")
    return FracdiffChoice(
        _choose(table, "bar", min_share),
        _choose(table, "tick", min_share),
        table,
        pv,
        min_share,
    )
