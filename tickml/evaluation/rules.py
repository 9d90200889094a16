"""Plain-rule baselines and the metrics of a score (a model or rule that gives one number per
row, no class probabilities).

A **rule** needs no fitting: its score is one feature's last value with a sign fixed a priori
(positive -> up), so nothing about it is chosen on any rows, let alone test rows:

=============  =================  =============================================================
rule           feature            meaning (:mod:`tickml.features.families`)
=============  =================  =============================================================
microprice     ``micro_dev_bps``  Stoikov micro-price minus mid, bps of mid (last value): the
                                  book leans up when the micro-price is above the mid
imbalance      ``imbalance``      (bid size - ask size) / (bid size + ask size) (last value)
=============  =================  =============================================================

A missing value (no book) scores 0 (no opinion), so a rule is scored on exactly the rows the
models are. The rules are evaluated on the same out-of-sample rows and folds as the models
(``<rule>_short`` against the short horizon's forward return).

:func:`score_report` gives a score's out-of-sample metrics: Spearman IC (rows where score and
return are finite) with its day-block interval (:func:`tickml.evaluation.metrics.
ic_block_bootstrap`, the same as the classifiers'), directional accuracy of ``sign(score)``
(rows with a non-zero score and a non-zero return), the rows and days; pooled and per fold. A
score has no class probabilities, hence no log loss or calibration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tickml.evaluation.metrics import ic_block_bootstrap, spearman_ic

#: rule name -> feature column (its last value; positive means up)
RULES: dict[str, str] = {"microprice": "micro_dev_bps", "imbalance": "imbalance"}


def rule_scores(frame: pd.DataFrame, rules: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``{rule: score per row}`` for every rule whose feature is a column of ``frame``
    (missing values -> 0). Rules whose feature is absent are left out."""
    out: dict[str, Any] = {}
    for name, col in (RULES if rules is None else rules).items():
        if col in frame.columns:
            v = frame[col].to_numpy(dtype=np.float64)
            out[name] = np.where(np.isfinite(v), v, 0.0)
    return out


def _directional(score: np.ndarray, ret: np.ndarray) -> tuple[float | None, int]:
    calls = np.isfinite(score) & np.isfinite(ret) & (score != 0) & (ret != 0)
    n = int(calls.sum())
    if not n:
        return None, 0
    return float(np.mean(np.sign(score[calls]) == np.sign(ret[calls]))), n


def score_metrics(
    score: Any, fwd_return: Any, day: Any = None, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Out-of-sample metrics of one score on one set of rows (module docstring)."""
    s = np.asarray(score, dtype=np.float64)
    r = np.asarray(fwd_return, dtype=np.float64)
    if s.shape != r.shape:
        raise ValueError(f"{s.size} scores but {r.size} returns")
    ok = np.isfinite(s) & np.isfinite(r)
    if day is not None:
        d = np.asarray(day)
        ic, ci, _ = ic_block_bootstrap(s, r, d, n_boot=n_boot, seed=seed)
        n_days = int(pd.Series(d[ok]).nunique())
    else:
        ic, ci, n_days = spearman_ic(s, r), None, 0
    acc, n_calls = _directional(s, r)
    return {
        "n": int(s.size),
        "ic": ic,
        "ic_ci95": ci,
        "n_ic": int(ok.sum()),
        "n_days": n_days,
        "directional_accuracy": acc,
        "n_directional_calls": n_calls,
    }


def score_report(
    score: Any,
    fwd_return: Any,
    fold: Any,
    day: Any = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """``{"pooled": metrics, "folds": [metrics with "fold", ...]}`` (:func:`score_metrics`)."""
    s = np.asarray(score, dtype=np.float64)
    r = np.asarray(fwd_return, dtype=np.float64)
    f = np.asarray(fold)
    d = None if day is None else np.asarray(day)
    pooled = score_metrics(s, r, d, n_boot=n_boot, seed=seed)
    folds = []
    for fid in pd.unique(f):
        m = f == fid
        rep = score_metrics(s[m], r[m], None if d is None else d[m], n_boot=n_boot, seed=seed)
        rep["fold"] = fid.item() if hasattr(fid, "item") else fid
        folds.append(rep)
    return {"pooled": pooled, "folds": folds}
