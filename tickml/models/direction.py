"""The direction model: a LightGBM regression of the volatility-normalized forward return.

Why a third model. The two classifiers learn barrier labels with balanced class weights: the
short 5-class model is rewarded as much for predicting *whether* a barrier is touched (FLAT vs
the rest, traps) as *which* one, and the long 3-class model often calls FLAT everywhere. Their
``P(UP) - P(DOWN)`` is therefore a by-product, not what they optimise. The direction model
optimises a quantity about direction itself.

Target (per row, known only after the short horizon, used for training only)::

    y = fwd_return_short / recent_vol

``recent_vol`` is the dataset's column (:mod:`tickml.volatility`: the standard deviation of
the symbol's previous interval returns that local day, earlier rows only; THE series the live
scorer streams); a dataset without it gets it computed with the same function from its
``momentum`` column (``ret_b1`` / ``last_return``). Rows with an unknown or zero volatility (the
first rows of a day) have no target. Dividing by a volatility known at t makes the target
comparable across symbols ($15 to $180, 1-10 bps spreads) and across the session (U-shaped
volatility), so no symbol or hour dominates the loss. Then the target is **winsorized** at the
``winsor`` quantiles of the *training* rows and divided by the training rows' standard
deviation of the winsorized values (:class:`TargetScaler`, fitted on the training rows only, the
validation slice transformed with the training's parameters): a unitless target with sd 1, so
the Huber loss's ``alpha = 1`` (:func:`tickml.models.train.train_regressor`) means one sd.

Per fold: LightGBM ``huber`` regression on the fold's SHAP-selected top-K features (the same
features as the fold's classifiers, chosen inside its training window), early stopping on the
fold's validation slice; its prediction on the fold's test rows is the ``direction`` column of
the out-of-sample predictions (units: the fold's scaled target). Its IC is the Spearman
correlation of that prediction with ``fwd_return_short`` on the rows the short model is scored
on (:func:`tickml.evaluation.rules.score_report`). The production model trains on all rows with
the pooled selection (:attr:`ExperimentResult.production` ``["direction"]``, saved by the
registry as ``direction.txt``); its target scaling is in its ``info["target"]``.

Roles of the three models in the decision (:func:`tickml.decision.decide`) and the backtest
(which calls the same function):

* **direction model** (this module): the decision score. Its prediction is the row's
  ``direction`` input: the decision's ``score`` is that prediction, the side its sign, and
  ``|direction| < min_direction`` stops the entry (gate ``min_confidence``);
* **short 5-class model** (barrier labels at the short horizon): the trap detector. With
  ``max_trap_prob`` set, a long whose ``P_short(TRAP_UP)`` (a short: ``P_short(TRAP_DOWN)``) is
  >= ``max_trap_prob`` is blocked (gate ``trap``: the move likely runs its way, then reverses);
  its own direction and confidence are not used when a direction model decides;
* **long 3-class model** (barrier labels at the long horizon): horizon confirmation, only a
  veto: with ``require_agreement`` its ``P(UP) - P(DOWN)`` must have the score's sign and
  ``P_long(direction) >= long_min_confidence`` (gate ``disagree``).

The thresholds are :class:`tickml.decision.DecisionConfig` fields; without a ``direction``
input (a model version without a direction model, or a row it did not score) the decision
falls back to the short model's ``P(UP) - P(DOWN)`` as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tickml.market import utc_ns
from tickml.models.train import TrainConfig, TrainedModel, predict_value, train_regressor
from tickml.volatility import recent_vol

#: name of the direction model (registry file ``direction.txt``, out-of-sample column)
DIRECTION = "direction"


class DirectionConfig(BaseModel):
    """The direction model's target and objective."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(
        default=True,
        description="train and evaluate the direction model (the decision score) beside the "
        "two classifiers",
    )
    winsor: tuple[float, float] = Field(
        default=(0.01, 0.99),
        description="quantiles of the training rows' normalized returns at which the target "
        "is clipped (fitted on the training rows only)",
    )
    objective: Literal["huber", "regression"] = Field(
        default="huber",
        description="LightGBM objective: huber (alpha = 1 target sd) or plain l2 regression",
    )
    train: TrainConfig | None = Field(
        default=None,
        description="LightGBM knobs of the direction model (None: the experiment's, as the "
        "classifiers)",
    )
    vol_rows: int = Field(
        default=30,
        ge=2,
        description="rows of the volatility estimate when the dataset has no recent_vol column",
    )


@dataclass(frozen=True)
class TargetScaler:
    """Winsorizing bounds and scale of the normalized return, fitted on training rows."""

    low: float
    high: float
    scale: float

    @classmethod
    def fit(cls, y: np.ndarray, winsor: tuple[float, float]) -> TargetScaler:
        v = np.asarray(y, dtype=np.float64)
        v = v[np.isfinite(v)]
        if v.size < 2:
            raise ValueError("fewer than 2 training rows with a normalized return")
        lo, hi = np.quantile(v, list(winsor))
        sd = float(np.clip(v, lo, hi).std())
        return cls(float(lo), float(hi), sd if sd > 0 else 1.0)

    def transform(self, y: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(y, dtype=np.float64), self.low, self.high) / self.scale

    def to_dict(self) -> dict[str, float]:
        return {"low": self.low, "high": self.high, "scale": self.scale}


def volatility(ds: pd.DataFrame, momentum_col: str, vol_rows: int = 30) -> np.ndarray:
    """The volatility known at each row: the ``recent_vol`` column, else
    :func:`tickml.volatility.recent_vol` of ``momentum_col`` (earlier rows of the symbol's day
    only)."""
    if "recent_vol" in ds.columns:
        return ds["recent_vol"].to_numpy(dtype=np.float64)
    return recent_vol(
        ds["symbol"].to_numpy(),
        utc_ns(ds["event_timestamp"]),
        ds[momentum_col].to_numpy(dtype=np.float64),
        rows=vol_rows,
    )


def normalized_return(ds: pd.DataFrame, momentum_col: str, vol_rows: int = 30) -> np.ndarray:
    """``fwd_return_short / volatility`` per row (NaN where either is unknown or vol <= 0;
    :func:`volatility`)."""
    vol = volatility(ds, momentum_col, vol_rows)
    fwd = ds["fwd_return_short"].to_numpy(dtype=np.float64)
    ok = np.isfinite(vol) & (vol > 0) & np.isfinite(fwd)
    out = np.full(fwd.size, np.nan)
    out[ok] = fwd[ok] / vol[ok]
    return out


def fit_direction(
    x: pd.DataFrame,
    y: np.ndarray,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    features: Sequence[str],
    train: TrainConfig,
    config: DirectionConfig,
) -> TrainedModel:
    """The direction model on ``train_rows`` (early stopping on ``val_rows``) of ``x``
    (positional rows) with normalized returns ``y`` (:func:`normalized_return`)."""
    scaler = TargetScaler.fit(y[train_rows], config.winsor)
    model = train_regressor(
        x.iloc[train_rows],
        scaler.transform(y[train_rows]),
        x.iloc[val_rows] if val_rows.size else None,
        scaler.transform(y[val_rows]) if val_rows.size else None,
        config.train or train,
        list(features),
        objective=config.objective,
    )
    model.info["target"] = {
        "definition": "clip(fwd_return_short / recent_vol, low, high) / scale",
        **scaler.to_dict(),
    }
    return model


def predict_direction(model: TrainedModel, x: pd.DataFrame) -> np.ndarray:
    """The direction model's prediction (the decision score) for the rows of ``x``."""
    return predict_value(model, x)


def fold_entry(model: TrainedModel, fold: int) -> dict[str, Any]:
    """What the evaluation keeps of one fold's direction model."""
    return {
        "fold": fold,
        "best_iteration": model.best_iteration,
        "early_stopped": model.info["early_stopped"],
        "n_train": model.info["n_train"],
        "n_val": model.info["n_val"],
        "size": model.size(),
        "target": model.info["target"],
    }
