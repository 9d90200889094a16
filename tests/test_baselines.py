"""Baselines: logistic regression and "the last move persists", on folds, in any class order."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tickml.evaluation.baselines import (
    LogisticBaseline,
    MomentumBaseline,
    logistic_oos,
    momentum_oos,
)
from tickml.evaluation.metrics import classification_report_oos
from tickml.evaluation.splits import WalkForwardConfig, walk_forward_splits

pytestmark = pytest.mark.unit

ORDER = ["DOWN", "FLAT", "UP"]  # deliberately not the usual order


def test_momentum_probabilities_are_sign_conditional_frequencies():
    r = [0.1, 0.2, -0.1, 0.0, np.nan, 0.3]
    y = ["UP", "UP", "DOWN", "FLAT", "UP", "DOWN"]
    m = MomentumBaseline(ORDER).fit(r, y)
    p = m.predict_proba([0.5, -2.0, 0.0, np.nan])
    # + : DOWN 1, UP 2 of 3; - : DOWN 1 of 1; 0/NaN : FLAT 1, UP 1 of 2; add-one smoothing
    np.testing.assert_allclose(p[0], [2 / 6, 1 / 6, 3 / 6])
    np.testing.assert_allclose(p[1], [2 / 4, 1 / 4, 1 / 4])
    np.testing.assert_allclose(p[2], [1 / 5, 2 / 5, 2 / 5])
    np.testing.assert_allclose(p[3], p[2])
    assert m.predict([0.5, -2.0, 0.0, np.nan]).tolist() == ["UP", "DOWN", "FLAT", "FLAT"]
    assert m.score([0.5, -2.0, 0.0]).tolist() == [1.0, -1.0, 0.0]
    five = ["UP", "DOWN", "FLAT", "TRAP_UP", "TRAP_DOWN"]
    p5 = MomentumBaseline(five).fit(r, y).predict_proba([1.0])
    assert p5.shape == (1, 5) and p5.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        MomentumBaseline(["UP", "DOWN"])


def _synthetic(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    latent = 1.5 * x[:, 0] + rng.normal(size=n)
    y = np.where(latent > 0.7, "UP", np.where(latent < -0.7, "DOWN", "FLAT"))
    x[rng.random((n, 3)) < 0.05] = np.nan
    x[:, 2] = np.where(rng.random(n) < 0.01, np.inf, x[:, 2])
    return x, y


def test_logistic_learns_a_linear_signal_and_keeps_the_class_order():
    x, y = _synthetic()
    a = LogisticBaseline(ORDER).fit(x[:2000], y[:2000])
    pa = a.predict_proba(x[2000:])
    rep = classification_report_oos(y[2000:], pa, ORDER)
    assert rep["balanced_accuracy"] > 0.6 and rep["log_loss"] < math.log(3) - 0.2
    b = LogisticBaseline(["UP", "DOWN", "FLAT"]).fit(x[:2000], y[:2000])
    np.testing.assert_allclose(b.predict_proba(x[2000:])[:, [1, 2, 0]], pa, atol=1e-6)


def test_logistic_imputes_with_training_medians():
    x, y = _synthetic()
    m = LogisticBaseline(ORDER).fit(x, y)
    med = np.nanmedian(np.where(np.isfinite(x), x, np.nan), axis=0)
    row = np.array([[np.nan, 0.3, np.inf]])
    filled = np.array([[med[0], 0.3, med[2]]])
    np.testing.assert_allclose(m.predict_proba(row), m.predict_proba(filled))
    # a class never seen in training gets a zero column; rows still sum to one
    five = ["UP", "DOWN", "FLAT", "TRAP_UP", "TRAP_DOWN"]
    p = LogisticBaseline(five).fit(x, y).predict_proba(x[:10])
    assert (p[:, 3:] == 0).all() and np.allclose(p.sum(axis=1), 1)
    with pytest.raises(ValueError, match="two classes"):
        LogisticBaseline(ORDER).fit(x[:5], ["UP"] * 5)


def test_baselines_on_walk_forward_folds():
    """Five session days of one-minute rows; the label follows the last move 70% of the time."""
    rng = np.random.default_rng(1)
    frames = []
    for d in range(5):
        open_ = pd.Timestamp(f"2013-10-{7 + d:02d} 09:30", tz="America/New_York")
        ev = (open_ + pd.to_timedelta(np.arange(1, 391), unit="min")).tz_convert("UTC")
        last = rng.normal(size=390)
        follow = rng.random(390) < 0.7
        up = np.where(follow, last > 0, last < 0)
        fwd = np.where(up, 1, -1) * rng.exponential(size=390)
        frames.append(
            pd.DataFrame(
                {
                    "event_timestamp": ev,
                    "label_end": ev + pd.Timedelta(minutes=5),
                    "last_return": last,
                    "noise": rng.normal(size=390),
                    "label": np.where(up, "UP", "DOWN"),
                    "fwd_return": fwd,
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    folds = walk_forward_splits(frame, WalkForwardConfig(min_train_days=2))
    mom = momentum_oos(frame, "last_return", "label", folds, ORDER)
    lr = logistic_oos(frame, ["last_return", "noise"], "label", folds, ORDER)
    assert mom.index.tolist() == lr.index.tolist() == list(range(2 * 390, 5 * 390))
    assert mom.fold.tolist() == [0] * 390 + [1] * 390 + [2] * 390
    test = frame.iloc[mom.index]
    rep = classification_report_oos(
        test["label"], mom.proba, ORDER, y_pred=mom.y_pred, score=mom.score,
        fwd_return=test["fwd_return"], day=test["event_timestamp"].dt.date, n_boot=200,
    )  # fmt: skip
    assert rep["directional_accuracy"] == pytest.approx(0.7, abs=0.04)
    assert rep["ic"] > 0.3 and rep["log_loss"] < math.log(2)
    rep_lr = classification_report_oos(
        test["label"], lr.proba, ORDER, fwd_return=test["fwd_return"]
    )
    assert rep_lr["directional_accuracy"] > 0.6
