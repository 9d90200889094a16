"""Fixed-width fractional differencing (Lopez de Prado) and the offline choice of d.

``fracdiff_weights(d, width)`` gives w_0..w_{width-1} with w_0 = 1 and
w_k = -w_{k-1} (d - k + 1) / k; the fracdiffed value at t is sum_k w_k x_{t-k}. d = 0 keeps the
series, d = 1 is the first difference; in between the series keeps memory while its level
becomes (more) stationary. The engine applies the weights to bar closes (order
:attr:`FeatureConfig.fracdiff_d`) and to tick prices (:attr:`FeatureConfig.fracdiff_tick_d`).
The orders are chosen offline by :func:`tickml.features.fracdiff_choice.choose_fracdiff_orders`
on the engine's own per-day series (``tickml fracdiff-d``); ``choose_fracdiff_d`` below is the
plain helper on given series (the smallest d whose fracdiffed series passes an ADF test).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def fracdiff_weights(d: float, width: int) -> np.ndarray:
    """w_0..w_{width-1} for order d (w_0 multiplies the newest value)."""
    w = np.empty(width)
    w[0] = 1.0
    for k in range(1, width):
        w[k] = -w[k - 1] * (d - k + 1) / k
    return w


def fracdiff(values: np.ndarray | pd.Series, d: float, width: int) -> np.ndarray:
    """Fixed-width fracdiff of a series (NaN for the first width - 1 values)."""
    x = np.asarray(values, dtype=np.float64)
    w = fracdiff_weights(d, width)
    out = np.full(x.shape[0], np.nan)
    for t in range(width - 1, x.shape[0]):
        out[t] = float(np.dot(w, x[t - width + 1 : t + 1][::-1]))
    return out


def adf_pvalue(values: np.ndarray) -> float:
    """p-value of the augmented Dickey-Fuller test (constant, AIC lag choice)."""
    from statsmodels.tsa.stattools import adfuller  # offline helper: imported on use

    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.shape[0] < 20 or np.ptp(x) == 0:
        return float("nan")
    return float(adfuller(x, regression="c", autolag="AIC", result_object=False)[1])


def choose_fracdiff_d(
    series: np.ndarray | pd.Series | Sequence[np.ndarray | pd.Series],
    width: int = 30,
    grid: Iterable[float] | None = None,
    pvalue: float = 0.05,
) -> float:
    """Smallest d on ``grid`` whose width-``width`` fracdiff passes ADF at ``pvalue``.

    ``series`` is one log-price series or several (e.g. one per symbol-day or symbol-week);
    with several, d must pass for every one of them. Offline helper on series you build; for
    the engine's own series use :func:`tickml.features.fracdiff_choice.choose_fracdiff_orders`.
    The engines never call it.
    """
    many: list[Any] = list(series) if isinstance(series, list | tuple) else [series]
    d_grid = list(grid) if grid is not None else [round(x, 2) for x in np.arange(0, 1.0001, 0.05)]
    for d in d_grid:
        ps = [adf_pvalue(fracdiff(s, d, width)) for s in many]
        ok = [p < pvalue for p in ps if p == p]
        log.debug("fracdiff d=%.2f adf p-values %s", d, ps)
        if ok and all(ok):
            return float(d)
    return float(d_grid[-1])
