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
from tickml.models.direction import DIRECTION
from tickml.models.stacking import ENSEMBLE

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


def score_entries(
    pred: pd.DataFrame,
    *,
    direction_folds: list[dict[str, Any]] | None,
    ensemble_folds: list[dict[str, Any]] | None,
    rules: list[str],
    horizon: str,
    n_boot: int,
    seed: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(model entries, baseline entries) of the score columns of ``pred``: the direction model
    (with its per-fold models) when ``direction_folds`` is given, the ensemble (with its
    per-fold weights per regime; ``served`` False) when ``ensemble_folds`` is given, and each
    rule's ``score_<rule>`` column as the baseline ``<rule>_short``."""
    kw: dict[str, Any] = {"horizon": horizon, "n_boot": n_boot, "seed": seed}
    models: list[dict[str, Any]] = []
    if direction_folds is not None:
        entry = score_entry(pred, DIRECTION, name=DIRECTION, kind="lightgbm_regression",
                            model=DIRECTION, **kw)  # fmt: skip
        entry["fold_models"] = direction_folds
        models.append(entry)
    if ensemble_folds is not None:
        entry = score_entry(pred, ENSEMBLE, name=ENSEMBLE, kind="ensemble", model=ENSEMBLE, **kw)
        entry["fold_weights"] = ensemble_folds
        entry["served"] = False
        models.append(entry)
    baselines = [
        score_entry(pred, f"score_{r}", name=f"{r}_short", kind="rule", model="short", **kw)
        for r in rules
    ]
    return models, baselines


def add_fold_ics(ic_rows: dict[int, dict[str, Any]], entries: list[dict[str, Any]]) -> None:
    """Each entry's per-fold IC and IC rows into the IC-by-fold table (``ic_<name>``,
    ``n_<name>``)."""
    for entry in entries:
        for r in entry["per_fold"]:
            ic_rows[int(r["fold"])][f"ic_{entry['name']}"] = r["ic"]
            ic_rows[int(r["fold"])][f"n_{entry['name']}"] = r["n_ic"]
