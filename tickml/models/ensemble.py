"""Regime ensemble: stacked weights of the component scores, fitted per volatility regime.

The components are per-row scores that all point the same way (larger = "up"): the direction
model's predicted return, ``P(UP) - P(DOWN)`` of the barrier classifiers, the plain rules
(micro-price deviation, book imbalance). :func:`fit_regime_ensemble` fits, on *fitting rows*
only (standard stacking: the caller passes out-of-sample predictions on a training window's
validation slice, never test rows), the weights of the target (the volatility-normalized forward
return) on the standardized components:

- **regimes**: ``n_regimes - 1`` cut points of ``vol`` at its quantiles ``k / n_regimes`` over the
  fitting rows; a row's regime is the number of cut points ``<= vol`` (:func:`regime_of`; ``-1``
  where ``vol`` is NaN, scored with the pooled weights);
- **scales**: each component is divided by its standard deviation over the fitting rows (1.0 when
  ``standardize`` is off, or where the standard deviation is 0 or undefined); components are not
  centred, so 0 keeps meaning "no view";
- **missing values**: a NaN component counts as 0 after standardization (that component has no
  view on that row); rows whose target is NaN are not fitting rows; a component that is constant
  (or all NaN) on the fitting rows is left out of every fit (weight 0);
- **weights**: non-negative least squares (``scipy.optimize.nnls``), or ridge with a penalty of
  ``ridge`` per row when ``nonnegative`` is off, *without an intercept*: the ensemble's sign is a
  trading decision, and an intercept would only carry the validation window's average drift into
  every row's call; with none, a row where no component has a view scores exactly 0;
- **thin regimes**: a regime with fewer than ``min_rows_per_regime`` fitting rows takes the pooled
  weights (one fit on all fitting rows).

Whether the ensemble is kept (it must beat its parts out of sample) is the caller's decision, made
on fitting rows only; :func:`component_ics` gives each part's IC for that comparison, and
:func:`weights_table` the weights per regime for the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import nnls

from tickml.evaluation.metrics import spearman_ic

_FORMAT = "tickml.regime_ensemble/1"


class EnsembleConfig(BaseModel):
    """Knobs of the regime ensemble."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_regimes: int = Field(
        default=3,
        ge=1,
        description="volatility regimes: cut at the quantiles k/n_regimes of `vol` over the "
        "fitting rows (1: one pooled fit)",
    )
    min_rows_per_regime: int = Field(
        default=200,
        ge=1,
        description="a regime with fewer fitting rows uses the pooled (all-regime) weights",
    )
    nonnegative: bool = Field(
        default=True,
        description="non-negative least squares (weights >= 0: the components are oriented so "
        "that + means up); off: ridge regression with penalty `ridge`",
    )
    standardize: bool = Field(
        default=True,
        description="divide each component by its standard deviation over the fitting rows",
    )
    ridge: float = Field(
        default=1e-3,
        ge=0.0,
        description="ridge penalty per fitting row when nonnegative is off: solves "
        "(X'X + ridge * n * I) w = X'y on the standardized components",
    )


@dataclass(frozen=True, eq=False)
class RegimeEnsemble:
    """A fitted regime ensemble (JSON round trip through :meth:`to_dict` / :meth:`from_dict`)."""

    components: tuple[str, ...]
    thresholds: tuple[float, ...]  # n_regimes - 1 cut points of vol, ascending
    scales: tuple[float, ...]  # per component (1.0 when not standardized)
    weights: np.ndarray  # (n_regimes, n_components)
    pooled_weights: np.ndarray  # (n_components,)
    n_rows: tuple[int, ...]  # fitting rows per regime

    def __post_init__(self) -> None:
        k, n = len(self.components), len(self.thresholds) + 1
        weights = np.array(self.weights, dtype=np.float64).reshape(n, k)
        pooled = np.array(self.pooled_weights, dtype=np.float64).reshape(k)
        weights.setflags(write=False)
        pooled.setflags(write=False)
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "pooled_weights", pooled)
        if len(self.scales) != k or len(self.n_rows) != n:
            raise ValueError("scales need one value per component, n_rows one per regime")

    @property
    def n_regimes(self) -> int:
        return len(self.thresholds) + 1

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only; Python's float repr makes the round trip exact."""
        return {
            "format": _FORMAT,
            "components": list(self.components),
            "thresholds": [float(t) for t in self.thresholds],
            "scales": [float(s) for s in self.scales],
            "weights": [[float(w) for w in row] for row in self.weights],
            "pooled_weights": [float(w) for w in self.pooled_weights],
            "n_rows": [int(n) for n in self.n_rows],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RegimeEnsemble:
        if d.get("format") != _FORMAT:
            raise ValueError(f"not a regime ensemble: format {d.get('format')!r}")
        return cls(
            components=tuple(str(c) for c in d["components"]),
            thresholds=tuple(float(t) for t in d["thresholds"]),
            scales=tuple(float(s) for s in d["scales"]),
            weights=np.asarray(d["weights"], dtype=np.float64),
            pooled_weights=np.asarray(d["pooled_weights"], dtype=np.float64),
            n_rows=tuple(int(n) for n in d["n_rows"]),
        )


def _columns(
    scores: Mapping[str, np.ndarray], components: tuple[str, ...], n: int | None
) -> np.ndarray:
    """(rows, components) float64 matrix of the named scores, checking that lengths agree."""
    missing = [c for c in components if c not in scores]
    if missing:
        raise KeyError(f"missing component scores: {missing}")
    cols = [np.asarray(scores[c], dtype=np.float64).ravel() for c in components]
    lengths = {len(c) for c in cols} | ({n} if n is not None else set())
    if len(lengths) > 1:
        raise ValueError(f"scores, target and vol differ in length: {sorted(lengths)}")
    return np.column_stack(cols) if cols else np.empty((n or 0, 0))


def _standardized(x: np.ndarray, scales: tuple[float, ...]) -> np.ndarray:
    """Divide by the scales; NaN (no view) becomes 0."""
    z = x / np.asarray(scales, dtype=np.float64)
    return np.where(np.isfinite(z), z, 0.0)


def _solve(x: np.ndarray, y: np.ndarray, config: EnsembleConfig) -> np.ndarray:
    """Weights of y on the columns of x, no intercept (NNLS, or ridge)."""
    if config.nonnegative:
        return np.asarray(nnls(x, y)[0], dtype=np.float64)
    gram = x.T @ x + config.ridge * len(y) * np.eye(x.shape[1])
    return np.asarray(np.linalg.lstsq(gram, x.T @ y, rcond=None)[0], dtype=np.float64)


def _regimes(thresholds: tuple[float, ...], vol: np.ndarray) -> np.ndarray:
    v = np.asarray(vol, dtype=np.float64).ravel()
    out = np.searchsorted(np.asarray(thresholds, dtype=np.float64), v, side="right")
    return np.where(np.isnan(v), -1, out).astype(np.int64)


def regime_of(ens: RegimeEnsemble, vol: np.ndarray) -> np.ndarray:
    """Regime index per row: the number of cut points <= vol (-1 where vol is NaN)."""
    return _regimes(ens.thresholds, vol)


def fit_regime_ensemble(
    scores: Mapping[str, np.ndarray],
    target: np.ndarray,
    vol: np.ndarray,
    config: EnsembleConfig | None = None,
) -> RegimeEnsemble:
    """Fit the pooled and per-regime weights on the rows where ``target`` is finite."""
    cfg = config or EnsembleConfig()
    components = tuple(scores)
    if not components:
        raise ValueError("no component scores")
    y_all = np.asarray(target, dtype=np.float64).ravel()
    v_all = np.asarray(vol, dtype=np.float64).ravel()
    if len(v_all) != len(y_all):
        raise ValueError(f"target and vol differ in length: {len(y_all)} != {len(v_all)}")
    x_all = _columns(scores, components, len(y_all))
    fit = np.isfinite(y_all)
    x, y, v = x_all[fit], y_all[fit], v_all[fit]
    v_ok = v[np.isfinite(v)]
    if len(v_ok) == 0:
        raise ValueError("no fitting rows with a finite target and a finite vol")
    qs = np.arange(1, cfg.n_regimes) / cfg.n_regimes
    thresholds = tuple(float(t) for t in np.quantile(v_ok, qs))
    scales, active = [], []
    for j in range(len(components)):
        col = x[:, j][np.isfinite(x[:, j])]
        sd = float(np.std(col)) if len(col) else 0.0
        active.append(sd > 0.0 and np.isfinite(sd))
        scales.append(sd if cfg.standardize and active[-1] else 1.0)
    z = _standardized(x, tuple(scales)) * np.asarray(active, dtype=np.float64)
    pooled = _solve(z, y, cfg)
    regime = _regimes(thresholds, v)
    weights, n_rows = np.empty((cfg.n_regimes, len(components))), []
    for r in range(cfg.n_regimes):
        rows = regime == r
        n_rows.append(int(rows.sum()))
        thin = n_rows[-1] < cfg.min_rows_per_regime
        weights[r] = pooled if thin else _solve(z[rows], y[rows], cfg)
    return RegimeEnsemble(
        components=components,
        thresholds=thresholds,
        scales=tuple(scales),
        weights=weights,
        pooled_weights=pooled,
        n_rows=tuple(n_rows),
    )


def ensemble_score(
    ens: RegimeEnsemble, scores: Mapping[str, np.ndarray], vol: np.ndarray
) -> np.ndarray:
    """Weighted sum of the standardized components with each row's regime weights.

    A NaN component contributes 0; a row whose vol is NaN takes the pooled weights.
    """
    v = np.asarray(vol, dtype=np.float64).ravel()
    z = _standardized(_columns(scores, ens.components, len(v)), ens.scales)
    regime = regime_of(ens, v)
    table = np.vstack([ens.weights, ens.pooled_weights[None, :]])  # row -1 -> pooled
    return np.einsum("ij,ij->i", z, table[regime])


def component_ics(
    scores: Mapping[str, np.ndarray], fwd_return: np.ndarray
) -> dict[str, float | None]:
    """Spearman IC of each component with the forward return (rows where both are finite)."""
    return {name: spearman_ic(s, fwd_return) for name, s in scores.items()}


def weights_table(ens: RegimeEnsemble) -> list[dict[str, Any]]:
    """One row per regime, then the pooled weights: the report's "weights per regime" table.

    ``vol_from`` / ``vol_to`` bound the regime (``None``: unbounded); ``uses_pooled`` is true
    where the regime's weights are the pooled ones (a thin regime, or a single regime).
    """
    edges: list[float | None] = [None, *ens.thresholds, None]
    rows: list[dict[str, Any]] = []
    for r in range(ens.n_regimes):
        rows.append(
            {
                "regime": r,
                "vol_from": edges[r],
                "vol_to": edges[r + 1],
                "n_rows": ens.n_rows[r],
                "uses_pooled": bool(np.array_equal(ens.weights[r], ens.pooled_weights)),
                **{c: float(w) for c, w in zip(ens.components, ens.weights[r], strict=True)},
            }
        )
    pooled = zip(ens.components, ens.pooled_weights, strict=True)
    rows.append(
        {
            "regime": "pooled",
            "vol_from": None,
            "vol_to": None,
            "n_rows": sum(ens.n_rows),
            "uses_pooled": True,
            **{c: float(w) for c, w in pooled},
        }
    )
    return rows
