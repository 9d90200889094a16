"""Out-of-sample classification metrics, the information coefficient per day with a Student-t
interval over days, and calibration tables.

Definitions (``classes`` gives the column order of ``proba``; ``up`` / ``down`` name the two
directional classes):

* **predicted class**: argmax of the (row-normalised) probabilities, unless ``y_pred`` is given
  (a rule baseline's own call).
* **log_loss**: mean of ``-log p(true class)`` (scikit-learn; probabilities clipped at machine
  epsilon, so a zero probability on the true class costs about 36 nats, not infinity).
* **balanced_accuracy**: mean recall over the classes present in ``y_true`` (scikit-learn).
* **directional_accuracy**: a *directional call* is a row whose predicted class is ``up`` or
  ``down`` and whose ``fwd_return`` is finite and non-zero; it is correct when the sign of
  ``fwd_return`` is +1 for ``up``, -1 for ``down``. ``n_directional_calls`` counts them; calls
  on rows whose return is exactly 0 (common: mid prices move in ticks) are left out of both
  numerator and denominator and counted in ``n_directional_calls_zero_return``. A coin flip
  scores 0.5 whatever the share of zero returns.
* **macro_f1**: unweighted mean F1 over the classes present in ``y_true`` or predicted.
* **pr_auc**: macro mean over the classes present in ``y_true`` of the one-vs-rest average
  precision (scikit-learn); a class's chance level is its prevalence (``class_share``).
* **ic**: with a day key per row, the *mean per-day IC*: the mean over days of each day's
  Spearman rank correlation (average ranks for ties) of ``score`` (default ``P(up) -
  P(down)``) with ``fwd_return`` over rows where both are finite; it estimates the expected
  IC of a day, every day weighing the same. **ic_ci95**: the Student-t interval of that mean
  over the days (:mod:`tickml.evaluation.ic_interval`: coverage checked by simulation, 95%
  with 5 and 10 days); None with fewer than two days with a defined IC. ``ic_per_day``: each
  day's IC; ``n_ic_days``: days with a defined IC. Without day keys, ``ic`` is the pooled
  Spearman correlation and there is no interval. **ic_pooled**: Spearman over all rows pooled.
  **ic_ci95_bootstrap**: the older percentile interval of ``ic_pooled`` from a block bootstrap
  that resamples whole days (seeded; ``n_boot=0`` skips it). Kept for comparison only: with
  few days it is too narrow (about 85% coverage with 5 days, 90% with 10, for a nominal 95%),
  so nothing decides on it.
* **calibration**: per class, a reliability table over ``n_bins`` equal-width bins of the
  predicted probability (count, mean predicted, observed frequency), the class's expected
  calibration error (``ece``: count-weighted mean |mean predicted - observed|) and one-vs-rest
  Brier score; overall, the multiclass Brier score (mean over rows of the summed squared
  error, 0..2), ``ece`` (mean of the per-class ECEs) and ``ece_top`` (ECE of the top-class
  confidence against accuracy).

Values that are undefined (no directional call, a constant score, fewer than two days for an
interval) are ``None``, so a report is plain JSON.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import (
    average_precision_score,
    balanced_accuracy_score,
    f1_score,
    log_loss,
)

from tickml.evaluation.ic_interval import ic_by_day

#: bootstrap replicates per chunk are limited so that one chunk holds at most this many cells
_CHUNK_CELLS = 4_000_000


def _f(x: Any) -> float | None:
    """A JSON-safe float: None for NaN/inf/None."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def encode_labels(y_true: Any, classes: Sequence[Any]) -> np.ndarray:
    """Class labels -> column indices of ``classes`` (ValueError on an unknown label)."""
    codes = pd.Index(list(classes)).get_indexer(pd.Index(np.asarray(y_true, dtype=object)))
    if (codes < 0).any():
        bad = np.asarray(y_true, dtype=object)[codes < 0][:5]
        raise ValueError(f"labels not in classes {list(classes)}: {list(bad)}")
    return codes.astype(np.int64)


def normalize_proba(proba: Any, n_classes: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != n_classes:
        raise ValueError(f"proba must be (n, {n_classes}), got {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("proba has NaN, infinite or negative values")
    total = p.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise ValueError("a row of proba sums to 0")
    if np.abs(total - 1.0).max(initial=0.0) <= 1e-9:
        return p  # already normalised: dividing would only add rounding noise (and break ties)
    return p / total


def direction_score(proba: np.ndarray, classes: Sequence[Any], up: Any = "UP", down: Any = "DOWN"):
    """``P(up) - P(down)`` per row."""
    cls = list(classes)
    return proba[:, cls.index(up)] - proba[:, cls.index(down)]


def _group_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average (mid) ranks of ``x`` in the multiset where row i appears ``w[b, i]`` times.

    ``w`` is (B, n); returns (B, n). One sort of ``x``; ties share their group's mid rank.
    """
    order = np.argsort(x, kind="stable")
    xs = x[order]
    new = np.empty(xs.size, dtype=bool)
    new[0] = True
    new[1:] = xs[1:] != xs[:-1]
    gid_sorted = np.cumsum(new) - 1
    ends = np.r_[np.flatnonzero(new)[1:] - 1, xs.size - 1]
    cum = np.cumsum(w[:, order], axis=1)
    c_end = cum[:, ends]
    c_start = np.zeros_like(c_end)
    c_start[:, 1:] = c_end[:, :-1]
    rank_g = (c_start + 1.0 + c_end) / 2.0
    gid = np.empty(x.size, dtype=np.int64)
    gid[order] = gid_sorted
    return rank_g[:, gid]


def weighted_spearman(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Spearman correlation of x and y in each resample given by integer weights ``w`` (B, n).

    Equals :func:`scipy.stats.spearmanr` on the expanded resample (each row repeated w times),
    without materialising it. NaN where a resample is constant in x or y.
    """
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    rx, ry = _group_ranks(x, w), _group_ranks(y, w)
    tot = w.sum(axis=1, keepdims=True)
    mx = (w * rx).sum(axis=1, keepdims=True) / tot
    my = (w * ry).sum(axis=1, keepdims=True) / tot
    dx, dy = rx - mx, ry - my
    cov = (w * dx * dy).sum(axis=1)
    vx, vy = (w * dx * dx).sum(axis=1), (w * dy * dy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = cov / np.sqrt(vx * vy)
    out[(vx <= 1e-12 * tot[:, 0] ** 3) | (vy <= 1e-12 * tot[:, 0] ** 3)] = np.nan
    return out


def spearman_ic(score: Any, fwd_return: Any) -> float | None:
    """Spearman rank correlation over rows where both are finite (None if undefined)."""
    s, r = np.asarray(score, dtype=np.float64), np.asarray(fwd_return, dtype=np.float64)
    ok = np.isfinite(s) & np.isfinite(r)
    if ok.sum() < 3 or np.ptp(s[ok]) == 0 or np.ptp(r[ok]) == 0:
        return None
    return _f(stats.spearmanr(s[ok], r[ok]).statistic)


def ic_block_bootstrap(
    score: Any,
    fwd_return: Any,
    day: Any,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float | None, list[float] | None, np.ndarray]:
    """Pooled IC and its percentile interval from resampling whole days with replacement.

    Returns (ic, [low, high] or None, the bootstrap replicates). Rows of one day stay together.
    With few days this interval is too narrow (simulated coverage of a nominal 95%: about 85%
    with 5 days, 90% with 10; see :mod:`tickml.evaluation.ic_interval`): use
    :func:`tickml.evaluation.ic_interval.ic_by_day` for decisions.
    """
    s, r = np.asarray(score, dtype=np.float64), np.asarray(fwd_return, dtype=np.float64)
    d = np.asarray(day)
    ok = np.isfinite(s) & np.isfinite(r)
    s, r, d = s[ok], r[ok], d[ok]
    ic = spearman_ic(s, r)
    codes, uniques = pd.factorize(pd.Series(d), sort=True)
    n_days = len(uniques)
    if ic is None or n_days < 2 or n_boot < 1:
        return ic, None, np.zeros(0)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_days, np.full(n_days, 1.0 / n_days), size=n_boot)
    chunk = max(1, _CHUNK_CELLS // max(1, s.size))
    reps = np.concatenate(
        [weighted_spearman(s, r, counts[i : i + chunk][:, codes]) for i in range(0, n_boot, chunk)]
    )
    good = reps[np.isfinite(reps)]
    if good.size < max(10, n_boot // 2):
        return ic, None, reps
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(good, [alpha, 1.0 - alpha])
    return ic, [float(lo), float(hi)], reps


def calibration_table(
    y: np.ndarray, proba: np.ndarray, classes: Sequence[Any], n_bins: int = 10
) -> dict[str, Any]:
    """Reliability tables per class, ECEs and Brier scores (see the module docstring)."""
    n, k = proba.shape
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), y] = 1.0
    per_class: dict[str, Any] = {}
    eces = []

    def table(p: np.ndarray, hit: np.ndarray) -> tuple[dict[str, Any], float]:
        b = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
        cnt = np.bincount(b, minlength=n_bins).astype(np.float64)
        sp = np.bincount(b, weights=p, minlength=n_bins)
        sh = np.bincount(b, weights=hit, minlength=n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            mp, ob = sp / cnt, sh / cnt
        ece = float(np.nansum(cnt / max(n, 1) * np.abs(mp - ob)))
        return {
            "count": cnt.astype(int).tolist(),
            "mean_predicted": [_f(v) for v in mp],
            "observed": [_f(v) for v in ob],
            "ece": ece,
        }, ece

    for j, cls in enumerate(classes):
        tab, ece = table(proba[:, j], onehot[:, j])
        tab["brier"] = float(np.mean((proba[:, j] - onehot[:, j]) ** 2)) if n else None
        per_class[str(cls)] = tab
        eces.append(ece)
    top = proba.argmax(axis=1)
    top_tab, ece_top = table(proba[np.arange(n), top], (top == y).astype(np.float64))
    return {
        "n_bins": n_bins,
        "bin_edges": edges.tolist(),
        "brier": _f(np.mean(((proba - onehot) ** 2).sum(axis=1))) if n else None,
        "ece": _f(np.mean(eces)) if n else None,
        "ece_top": _f(ece_top) if n else None,
        "per_class": per_class,
        "top": top_tab,
    }


def classification_report_oos(
    y_true: Any,
    proba: Any,
    classes: Sequence[Any],
    *,
    score: Any = None,
    fwd_return: Any = None,
    day: Any = None,
    y_pred: Any = None,
    up: Any = "UP",
    down: Any = "DOWN",
    n_boot: int = 1000,
    n_bins: int = 10,
    seed: int = 0,
) -> dict[str, Any]:
    """Out-of-sample metrics of one model on one set of rows (a fold, or all folds pooled).

    ``y_true``: class labels (values of ``classes``); ``proba``: (n, k) in ``classes`` order
    (rows are normalised to sum to 1); ``score``: defaults to ``P(up) - P(down)`` when both are
    classes; ``fwd_return``: the label's forward return (directional accuracy, IC); ``day``: a
    day key per row (IC interval); ``y_pred``: the model's own class calls (default: argmax).
    """
    cls = list(classes)
    k = len(cls)
    y = encode_labels(y_true, cls)
    p = normalize_proba(proba, k)
    n = y.size
    if p.shape[0] != n:
        raise ValueError(f"{n} labels but {p.shape[0]} probability rows")
    pred = p.argmax(axis=1) if y_pred is None else encode_labels(y_pred, cls)
    if score is None and up in cls and down in cls:
        score = direction_score(p, cls, up, down)
    out: dict[str, Any] = {"n": int(n), "classes": [str(c) for c in cls]}
    counts = np.bincount(y, minlength=k)
    out["class_share"] = {str(c): _f(counts[j] / n) if n else None for j, c in enumerate(cls)}
    if n == 0:
        empty = dict.fromkeys(
            ("log_loss", "balanced_accuracy", "directional_accuracy", "macro_f1", "pr_auc")
        )
        out.update(empty, n_directional_calls=0, n_directional_calls_zero_return=0)
        out.update(pr_auc_per_class={}, n_ic=0, n_days=0, **_ic_fields(None, None, None))
        out["calibration"] = calibration_table(y, p, cls, n_bins)
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes absent from a fold are expected here
        out["log_loss"] = _f(log_loss(y, p, labels=np.arange(k)))
        out["balanced_accuracy"] = _f(balanced_accuracy_score(y, pred))
        out["macro_f1"] = _f(f1_score(y, pred, average="macro", zero_division=0))
        ap = {}
        for j, c in enumerate(cls):
            if counts[j] > 0:
                ap[str(c)] = _f(average_precision_score(y == j, p[:, j]))
    out["pr_auc_per_class"] = ap
    vals = [v for v in ap.values() if v is not None]
    out["pr_auc"] = _f(np.mean(vals)) if vals else None

    n_calls = n_zero = 0
    dir_acc = None
    if fwd_return is not None and up in cls and down in cls:
        r = np.asarray(fwd_return, dtype=np.float64)
        called = (pred == cls.index(up)) | (pred == cls.index(down))
        sign = np.where(pred == cls.index(up), 1.0, -1.0)
        finite = np.isfinite(r)
        n_zero = int((called & finite & (r == 0)).sum())
        calls = called & finite & (r != 0)
        n_calls = int(calls.sum())
        if n_calls:
            dir_acc = _f(np.mean(np.sign(r[calls]) == sign[calls]))
    out["directional_accuracy"] = dir_acc
    out["n_directional_calls"] = n_calls
    out["n_directional_calls_zero_return"] = n_zero

    n_ic, n_days = 0, 0
    ic_out = _ic_fields(None, None, None)
    if score is not None and fwd_return is not None:
        s = np.asarray(score, dtype=np.float64)
        r = np.asarray(fwd_return, dtype=np.float64)
        n_ic = int((np.isfinite(s) & np.isfinite(r)).sum())
        if day is not None:
            n_days = int(pd.Series(np.asarray(day)).nunique())
        ic_out = _ic_fields(s, r, day, n_boot=n_boot, seed=seed)
    out.update(ic_out)
    out["n_ic"] = n_ic
    out["n_days"] = n_days
    out["calibration"] = calibration_table(y, p, cls, n_bins)
    return out


def _ic_fields(
    s: np.ndarray | None, r: np.ndarray | None, day: Any, *, n_boot: int = 0, seed: int = 0
) -> dict[str, Any]:
    """The report's IC keys (see the module docstring); all empty when ``s`` is None."""
    out: dict[str, Any] = {"ic": None, "ic_ci95": None, "ic_per_day": {}, "n_ic_days": 0}
    out.update(ic_pooled=None, ic_ci95_bootstrap=None)
    if s is None or r is None:
        return out
    if day is None:
        out["ic"] = out["ic_pooled"] = spearman_ic(s, r)
        return out
    per_day = ic_by_day(s, r, day)
    out.update(ic=per_day.ic, ic_ci95=per_day.ci, ic_per_day=per_day.per_day)
    out["n_ic_days"] = per_day.n_days
    pooled, boot_ci, _ = ic_block_bootstrap(s, r, day, n_boot=n_boot, seed=seed)
    out.update(ic_pooled=pooled, ic_ci95_bootstrap=boot_ci)
    return out


def report_by_fold(
    y_true: Any,
    proba: Any,
    classes: Sequence[Any],
    fold: Any,
    **kwargs: Any,
) -> dict[str, Any]:
    """``{"pooled": report, "folds": [report with "fold" key, ...]}`` over out-of-sample rows.

    ``fold`` gives each row's fold id; every other argument is as in
    :func:`classification_report_oos` (array arguments are split by fold).
    """
    f = np.asarray(fold)
    y = np.asarray(y_true, dtype=object)
    p = np.asarray(proba, dtype=np.float64)
    arrays: dict[str, Any] = {
        k: np.asarray(v) for k, v in kwargs.items() if k in _ROW_ARGS and v is not None
    }
    scalars: dict[str, Any] = {k: v for k, v in kwargs.items() if k not in _ROW_ARGS}
    pooled = classification_report_oos(y, p, classes, **arrays, **scalars)
    folds = []
    for fid in pd.unique(f):
        m = f == fid
        sub: dict[str, Any] = {k: v[m] for k, v in arrays.items()}
        rep = classification_report_oos(y[m], p[m], classes, **sub, **scalars)
        rep["fold"] = fid.item() if hasattr(fid, "item") else fid
        folds.append(rep)
    return {"pooled": pooled, "folds": folds}


_ROW_ARGS = frozenset({"score", "fwd_return", "day", "y_pred"})
