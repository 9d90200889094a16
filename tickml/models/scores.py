"""Evaluation entries of the *score* models: one number per row, no class probabilities.

The direction model (:mod:`tickml.models.direction`), the plain rules
(:mod:`tickml.evaluation.rules`) and the regime ensemble are scored against the short horizon's
forward return on exactly the out-of-sample rows the short classifier is scored on (its label
known), fold by fold, with :func:`tickml.evaluation.rules.score_report` (IC with its day-block
interval, directional accuracy of the sign, rows, days). Their entries have the keys of the
classifiers' (``name``, ``kind``, ``model``, ``horizon``, ``oos``, ``per_fold``) with
``classes == []`` and no log loss, so the report, the CLI table, the registry's ``oos`` summary
and the MLflow metrics list them beside the classifiers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tickml.evaluation.rules import score_report

#: the rows every score is evaluated on: those of the short classifier
SCORED_LABEL = "label_short"
SCORED_RETURN = "fwd_return_short"


def score_entry(
    pred: pd.DataFrame,
    column: str,
    *,
    name: str,
    kind: str,
    model: str,
    horizon: str,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """One score column of the out-of-sample predictions as an evaluation entry."""
    sub = pred[pred[SCORED_LABEL].notna().to_numpy()]
    rep = score_report(
        sub[column].to_numpy(dtype=np.float64),
        sub[SCORED_RETURN].to_numpy(dtype=np.float64),
        sub["fold"].to_numpy(),
        sub["day"].to_numpy(),
        n_boot=n_boot,
        seed=seed,
    )
    return {
        "name": name,
        "kind": kind,
        "model": model,
        "horizon": horizon,
        "label": SCORED_RETURN,
        "score": column,
        "classes": [],
        "oos": rep["pooled"],
        "per_fold": rep["folds"],
    }
