"""The regime ensemble inside the walk-forward evaluation: one fit per fold, on that fold's
validation slice only.

Per fold (:func:`fold_ensemble`):

* **components**, each oriented so that larger means up: ``direction`` (the direction model's
  prediction), ``short`` and ``long`` (``P(UP) - P(DOWN)`` of the two classifiers), and the plain
  rules ``microprice`` and ``imbalance`` (:mod:`tickml.evaluation.rules`);
* **fitting rows**: the fold's *validation slice*. The fold's models were trained on its
  training rows, so their validation predictions are out of sample for the weights (standard
  stacking); the models early-stopped on that slice, which flatters them a little there (the
  weights may lean towards the models over the rules). Test rows are never seen;
* **target**: the volatility-normalized short-horizon return (:mod:`tickml.models.direction`),
  **vol**: the volatility known at t (``recent_vol``) that cuts the regimes;
* :func:`tickml.models.ensemble.fit_regime_ensemble` then fits the weights per volatility regime
  and :func:`tickml.models.ensemble.ensemble_score` scores the fold's test rows: the ``ensemble``
  column of the out-of-sample predictions, evaluated like every model
  (:mod:`tickml.models.scores`); the weights per regime of each fold are in its entry.

The ensemble is reported, not served: the decision score stays the direction model's
prediction (the live path has no ensemble in this round).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tickml.models.ensemble import (
    EnsembleConfig,
    component_ics,
    ensemble_score,
    fit_regime_ensemble,
    weights_table,
)

#: name of the ensemble's out-of-sample column and evaluation entry
ENSEMBLE = "ensemble"


def fold_ensemble(
    fold: int,
    val_scores: Mapping[str, np.ndarray],
    val_target: np.ndarray,
    val_vol: np.ndarray,
    test_scores: Mapping[str, np.ndarray],
    test_vol: np.ndarray,
    config: EnsembleConfig,
) -> tuple[np.ndarray, dict[str, Any]] | None:
    """(the ensemble's score on the test rows, what the report keeps of the fold's fit), or
    None when the validation slice has no row to fit on."""
    target = np.asarray(val_target, dtype=np.float64)
    if not (np.isfinite(target) & np.isfinite(np.asarray(val_vol, dtype=np.float64))).any():
        return None
    ens = fit_regime_ensemble(val_scores, target, val_vol, config)
    score = ensemble_score(ens, {k: test_scores[k] for k in ens.components}, test_vol)
    info = {
        "fold": fold,
        "n_fit_rows": int(np.isfinite(target).sum()),
        "component_ic_val": component_ics(val_scores, target),
        "weights": weights_table(ens),
        "model": ens.to_dict(),
    }
    return score, info
