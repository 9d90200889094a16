"""Baselines evaluated on the same folds as the models: logistic regression and "the last move
persists".

Both return probabilities in a caller-given class order (columns of classes never seen in
training are 0), so every metric of :mod:`tickml.evaluation.metrics` applies to them.

* :class:`LogisticBaseline`: the same features as the model; non-finite values imputed with the
  *training* medians (a column that is all missing in training is imputed with 0), then
  standardised with the training mean/std, then a multinomial logistic regression (lbfgs, L2,
  ``class_weight="balanced"``). Trained on the fold's train + validation rows (it has no early
  stopping to feed).
* :class:`MomentumBaseline`: the rule calls ``up`` if the last interval's return is > 0,
  ``down`` if < 0 and ``flat`` otherwise (also when the return is missing). Its probabilities
  are the training rows' class frequencies conditional on that sign, with add-``alpha``
  (Laplace) smoothing, so it has a log loss and a calibration table; its ``score`` is the sign
  itself (+1/0/-1: the rule's conviction, used for the IC) and its class calls are the rule's,
  not the argmax of those frequencies.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from tickml.evaluation.metrics import encode_labels
from tickml.evaluation.splits import Fold

log = logging.getLogger(__name__)


def _matrix(x: Any) -> np.ndarray:
    m = np.array(x, dtype=np.float64, copy=True)
    if m.ndim == 1:
        m = m[:, None]
    m[~np.isfinite(m)] = np.nan
    return m


class LogisticBaseline:
    """Median-imputed, standardised, class-balanced multinomial logistic regression."""

    def __init__(self, classes: Sequence[Any], C: float = 1.0, max_iter: int = 1000) -> None:
        self.classes = list(classes)
        self.C = C
        self.max_iter = max_iter
        self.medians_: np.ndarray | None = None
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.model_: LogisticRegression | None = None
        self.columns_: np.ndarray | None = None  # our class index of each model column

    def _prepare(self, x: Any) -> np.ndarray:
        assert self.medians_ is not None and self.mean_ is not None and self.scale_ is not None
        m = _matrix(x)
        if m.shape[1] != self.medians_.size:
            raise ValueError(f"expected {self.medians_.size} features, got {m.shape[1]}")
        m = np.where(np.isnan(m), self.medians_, m)
        return (m - self.mean_) / self.scale_

    def fit(self, x: Any, y: Any) -> LogisticBaseline:
        m = _matrix(x)
        codes = encode_labels(y, self.classes)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column
            med = np.nanmedian(m, axis=0)
        self.medians_ = np.where(np.isfinite(med), med, 0.0)
        m = np.where(np.isnan(m), self.medians_, m)
        self.mean_ = m.mean(axis=0)
        std = m.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        z = (m - self.mean_) / self.scale_
        present = np.unique(codes)
        if present.size < 2:
            raise ValueError("logistic baseline needs at least two classes in training")
        model = LogisticRegression(C=self.C, class_weight="balanced", max_iter=self.max_iter)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.fit(z, codes)
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            log.warning("logistic baseline did not converge in %d iterations", self.max_iter)
        self.model_ = model
        self.columns_ = model.classes_.astype(np.int64)
        return self

    def predict_proba(self, x: Any) -> np.ndarray:
        if self.model_ is None or self.columns_ is None:
            raise RuntimeError("fit first")
        z = self._prepare(x)
        out = np.zeros((z.shape[0], len(self.classes)))
        out[:, self.columns_] = self.model_.predict_proba(z)
        return out

    def predict(self, x: Any) -> np.ndarray:
        p = self.predict_proba(x)
        return np.asarray(self.classes, dtype=object)[p.argmax(axis=1)]


class MomentumBaseline:
    """ "The last move persists", with sign-conditional class frequencies as probabilities."""

    def __init__(
        self,
        classes: Sequence[Any],
        up: Any = "UP",
        down: Any = "DOWN",
        flat: Any = "FLAT",
        alpha: float = 1.0,
    ) -> None:
        self.classes = list(classes)
        for c in (up, down, flat):
            if c not in self.classes:
                raise ValueError(f"class {c!r} not in {self.classes}")
        self.up, self.down, self.flat = up, down, flat
        self.alpha = alpha
        self.table_: np.ndarray | None = None  # (3, k): rows sign -1, 0, +1

    @staticmethod
    def sign(last_return: Any) -> np.ndarray:
        r = np.asarray(last_return, dtype=np.float64)
        return np.where(np.isfinite(r), np.sign(r), 0.0).astype(np.int64)

    def fit(self, last_return: Any, y: Any) -> MomentumBaseline:
        s = self.sign(last_return) + 1
        codes = encode_labels(y, self.classes)
        k = len(self.classes)
        counts = np.zeros((3, k))
        np.add.at(counts, (s, codes), 1.0)
        self.table_ = (counts + self.alpha) / (counts.sum(axis=1, keepdims=True) + self.alpha * k)
        return self

    def predict_proba(self, last_return: Any) -> np.ndarray:
        if self.table_ is None:
            raise RuntimeError("fit first")
        return self.table_[self.sign(last_return) + 1]

    def predict(self, last_return: Any) -> np.ndarray:
        calls = np.array([self.down, self.flat, self.up], dtype=object)
        return calls[self.sign(last_return) + 1]

    def score(self, last_return: Any) -> np.ndarray:
        return self.sign(last_return).astype(np.float64)


@dataclass(frozen=True)
class OOSPredictions:
    """Out-of-sample predictions, fold by fold, for the test rows of each fold."""

    index: np.ndarray  # positions (frame.iloc) of the predicted rows
    fold: np.ndarray  # fold id per row
    proba: np.ndarray  # (n, k) in ``classes`` order
    classes: list[Any]
    y_pred: np.ndarray | None = None  # the model's own calls, when not the argmax
    score: np.ndarray | None = None  # the model's own score, when not P(UP) - P(DOWN)


def _cat(parts: list[np.ndarray | None]) -> np.ndarray | None:
    arrays = [p for p in parts if p is not None]
    if not arrays or len(arrays) != len(parts):
        return None
    return np.concatenate(arrays)


_Pred = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]


def _run_folds(
    folds: Sequence[Fold],
    classes: Sequence[Any],
    fit_predict: Callable[[np.ndarray, np.ndarray], _Pred],
) -> OOSPredictions:
    idx, fid, probs, preds, scores = [], [], [], [], []
    for f in folds:
        learn = np.sort(np.concatenate([f.train, f.val]))
        p, yp, sc = fit_predict(learn, f.test)
        idx.append(f.test)
        fid.append(np.full(f.test.size, f.fold))
        probs.append(p)
        preds.append(yp)
        scores.append(sc)
    k = len(classes)
    return OOSPredictions(
        index=np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64),
        fold=np.concatenate(fid) if fid else np.zeros(0, dtype=np.int64),
        proba=np.concatenate(probs) if probs else np.zeros((0, k)),
        classes=list(classes),
        y_pred=_cat(preds),
        score=_cat(scores),
    )


def logistic_oos(
    frame: pd.DataFrame,
    features: Sequence[str],
    label: str,
    folds: Sequence[Fold],
    classes: Sequence[Any],
    **kwargs: Any,
) -> OOSPredictions:
    """Fit :class:`LogisticBaseline` on each fold's train + validation rows, predict its test."""
    x = frame[list(features)].to_numpy(dtype=np.float64)
    y = frame[label].to_numpy(dtype=object)

    def fit_predict(learn: np.ndarray, test: np.ndarray) -> _Pred:
        model = LogisticBaseline(classes, **kwargs).fit(x[learn], y[learn])
        return model.predict_proba(x[test]), None, None

    return _run_folds(folds, classes, fit_predict)


def momentum_oos(
    frame: pd.DataFrame,
    last_return: str,
    label: str,
    folds: Sequence[Fold],
    classes: Sequence[Any],
    **kwargs: Any,
) -> OOSPredictions:
    """Fit :class:`MomentumBaseline` on each fold's train + validation rows, predict its test."""
    r = frame[last_return].to_numpy(dtype=np.float64)
    y = frame[label].to_numpy(dtype=object)

    def fit_predict(learn: np.ndarray, test: np.ndarray) -> _Pred:
        model = MomentumBaseline(classes, **kwargs).fit(r[learn], y[learn])
        return model.predict_proba(r[test]), model.predict(r[test]), model.score(r[test])

    return _run_folds(folds, classes, fit_predict)
