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

:func:`score_report` gives a score's out-of-sample metrics with the classifiers' IC keys and
definitions (:mod:`tickml.evaluation.metrics`): ``ic`` the mean per-day Spearman IC and
``ic_ci95`` its Student-t interval over days (:func:`tickml.evaluation.ic_interval.ic_by_day`),
``ic_per_day``, ``n_ic_days``, ``ic_pooled`` (Spearman over all rows) and
``ic_ci95_bootstrap`` (the day-block bootstrap, for comparison); plus the directional accuracy
of ``sign(score)`` (rows with a non-zero score and a non-zero return), the rows and days;
pooled and per fold. A score has no class probabilities, hence no log loss or calibration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tickml.evaluation.ic_interval import ic_by_day
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
    out: dict[str, Any] = {"n": int(s.size), "ic": None, "ic_ci95": None, "ic_per_day": {}}
    out.update(n_ic_days=0, ic_pooled=spearman_ic(s, r), ic_ci95_bootstrap=None, n_days=0)
    if day is None:
        out["ic"] = out["ic_pooled"]
    else:
        d = np.asarray(day)
        per_day = ic_by_day(s, r, d)
        out.update(ic=per_day.ic, ic_ci95=per_day.ci, ic_per_day=per_day.per_day)
        out["n_ic_days"] = per_day.n_days
        out["n_days"] = int(pd.Series(d).nunique())
        if n_boot > 0:
            _, out["ic_ci95_bootstrap"], _ = ic_block_bootstrap(s, r, d, n_boot=n_boot, seed=seed)
    acc, n_calls = _directional(s, r)
    out.update(n_ic=int(ok.sum()), directional_accuracy=acc, n_directional_calls=n_calls)
    return out


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
