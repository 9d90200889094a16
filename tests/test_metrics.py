"""Out-of-sample metrics: hand-computed values, extremes, the IC block bootstrap (the per-day IC
and its t-interval: tests/test_ic_interval.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from tickml.evaluation.metrics import (
    classification_report_oos,
    ic_block_bootstrap,
    report_by_fold,
    weighted_spearman,
)

pytestmark = pytest.mark.unit

C3 = ["UP", "DOWN", "FLAT"]


@pytest.fixture()
def tiny():
    y = ["UP", "DOWN", "FLAT", "UP"]
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.5, 0.2, 0.3], [0.1, 0.7, 0.2]])
    r = np.array([0.01, -0.02, 0.0, 0.03])
    return y, p, r


def test_hand_computed_tiny_case(tiny):
    y, p, r = tiny
    rep = classification_report_oos(y, p, C3, fwd_return=r, day=["d1", "d1", "d2", "d2"])
    assert rep["n"] == 4
    assert rep["log_loss"] == pytest.approx(-(math.log(0.6 * 0.5 * 0.3 * 0.1)) / 4)
    # recalls: UP 1/2, DOWN 1/1, FLAT 0/1
    assert rep["balanced_accuracy"] == pytest.approx(0.5)
    # F1: UP 0.5, DOWN 2/3, FLAT 0
    assert rep["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    # calls: UP +0.01 right, DOWN -0.02 right, UP on a zero return left out, DOWN +0.03 wrong
    assert rep["directional_accuracy"] == pytest.approx(2 / 3)
    assert rep["n_directional_calls"] == 3
    assert rep["n_directional_calls_zero_return"] == 1
    # AP: UP (1 + 2/4)/2, DOWN 1/2, FLAT 1/2 (tied with a negative at 0.3)
    assert rep["pr_auc_per_class"] == pytest.approx({"UP": 0.75, "DOWN": 0.5, "FLAT": 0.5})
    assert rep["pr_auc"] == pytest.approx((0.75 + 0.5 + 0.5) / 3)
    # score = [.3, -.3, .3, -.6] -> ranks [3.5, 2, 3.5, 1]; returns -> [3, 1, 2, 4]
    assert rep["ic_pooled"] == pytest.approx(-1.5 / math.sqrt(4.5 * 5))
    assert rep["ic_ci95_bootstrap"] is not None
    # two rows a day: no day has a defined IC, so the mean per-day IC and its interval are None
    assert rep["n_days"] == 2 and rep["n_ic_days"] == 0
    assert rep["ic"] is None and rep["ic_ci95"] is None
    assert rep["ic_per_day"] == {"d1": None, "d2": None}
    cal = rep["calibration"]
    assert cal["brier"] == pytest.approx((0.26 + 0.38 + 0.78 + 1.34) / 4)
    assert cal["per_class"]["UP"]["ece"] == pytest.approx((0.4 + 0.2 + 0.5 + 0.9) / 4)
    assert cal["per_class"]["UP"]["count"] == [0, 1, 1, 0, 0, 1, 1, 0, 0, 0]
    # top-class confidence [.6, .5, .5, .7], correct [1, 1, 0, 0]
    assert cal["ece_top"] == pytest.approx((0.4 + 0.0 + 0.7) / 4)
    json.dumps(rep, allow_nan=False)  # plain JSON, no NaN


def test_given_predictions_and_score_override_argmax(tiny):
    y, p, r = tiny
    rep = classification_report_oos(
        y, p, C3, fwd_return=r, y_pred=["UP", "FLAT", "FLAT", "FLAT"], score=r
    )
    assert rep["n_directional_calls"] == 1 and rep["directional_accuracy"] == 1.0
    assert rep["balanced_accuracy"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert rep["ic"] == pytest.approx(1.0) and rep["ic_pooled"] == rep["ic"]
    assert rep["ic_ci95"] is None and rep["n_ic_days"] == 0  # no days given


def test_perfect_predictor_gives_the_best_values():
    rng = np.random.default_rng(1)
    n = 3000
    r = rng.normal(size=n)
    y = np.where(r > 0.5, "UP", np.where(r < -0.5, "DOWN", "FLAT"))
    onehot = (y[:, None] == np.array(C3)[None, :]).astype(float)
    day = np.repeat(np.arange(10), n // 10)
    rep = classification_report_oos(y, onehot, C3, fwd_return=r, score=r, day=day)
    assert rep["log_loss"] < 1e-9
    assert rep["balanced_accuracy"] == 1.0 and rep["macro_f1"] == 1.0
    assert rep["pr_auc"] == 1.0 and rep["directional_accuracy"] == 1.0
    assert rep["ic"] == pytest.approx(1.0) and rep["ic_ci95"] == pytest.approx([1.0, 1.0])
    assert rep["ic_ci95_bootstrap"] == pytest.approx([1.0, 1.0]) and rep["n_ic_days"] == 10
    assert rep["calibration"]["brier"] == 0.0 and rep["calibration"]["ece"] == 0.0


def test_random_predictor_gives_chance_values():
    rng = np.random.default_rng(2)
    n = 20_000
    y = rng.choice(C3, size=n, p=[0.3, 0.3, 0.4])
    # returns: a third exactly zero, as with tick-size mid moves
    r = rng.normal(size=n) * (rng.random(n) > 1 / 3)
    uniform = np.full((n, 3), 1 / 3)
    rep = classification_report_oos(y, uniform, C3, fwd_return=r)
    assert rep["log_loss"] == pytest.approx(math.log(3))
    noise = rng.dirichlet([1, 1, 1], size=n)
    day = np.repeat(np.arange(20), n // 20)
    rep = classification_report_oos(y, noise, C3, fwd_return=r, day=day)
    assert rep["balanced_accuracy"] == pytest.approx(1 / 3, abs=0.02)
    assert rep["directional_accuracy"] == pytest.approx(0.5, abs=0.02)
    assert rep["n_directional_calls_zero_return"] > 0.25 * rep["n_directional_calls"]
    assert abs(rep["ic"]) < 0.03
    lo, hi = rep["ic_ci95"]
    assert lo < 0 < hi and rep["n_ic_days"] == 20
    assert rep["ic"] == pytest.approx(np.mean(list(rep["ic_per_day"].values())))
    share = rep["class_share"]
    for c in C3:
        assert rep["pr_auc_per_class"][c] == pytest.approx(share[c], abs=0.02)


def test_weighted_spearman_equals_scipy_on_the_expanded_resample():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, size=40).astype(float)  # many ties
    y = x + rng.integers(0, 3, size=40)
    w = rng.integers(0, 3, size=(6, 40))
    got = weighted_spearman(x, y, w)
    for b in range(6):
        xe, ye = np.repeat(x, w[b]), np.repeat(y, w[b])
        assert got[b] == pytest.approx(stats.spearmanr(xe, ye).statistic, abs=1e-12)
    const = weighted_spearman(np.ones(5), np.arange(5.0), np.ones((1, 5)))
    assert np.isnan(const[0])


def _overlapping_days(rng, n_days, rows=100, window=15, rho=0.3):
    """Per day, score and return are moving sums over `window` of correlated innovations:
    neighbouring rows share most of their window, like overlapping labels."""
    cov = [[1, rho], [rho, 1]]
    s, r, d = [], [], []
    kernel = np.ones(window)
    for k in range(n_days):
        z = rng.multivariate_normal([0, 0], cov, size=rows + window - 1)
        s.append(np.convolve(z[:, 0], kernel, "valid"))
        r.append(np.convolve(z[:, 1], kernel, "valid"))
        d.append(np.full(rows, k))
    return np.concatenate(s), np.concatenate(r), np.concatenate(d)


def test_ic_interval_covers_the_truth_and_respects_overlap():
    rho = 0.3
    truth = 6 / math.pi * math.asin(rho / 2)  # Spearman of a bivariate normal
    rng = np.random.default_rng(4)
    covered, covered_iid, width, width_iid = 0, 0, [], []
    reps = 25
    for i in range(reps):
        s, r, d = _overlapping_days(rng, n_days=20, rho=rho)
        _, (lo, hi), _ = ic_block_bootstrap(s, r, d, n_boot=200, seed=i)
        covered += lo <= truth <= hi
        width.append(hi - lo)
        _, (lo2, hi2), _ = ic_block_bootstrap(s, r, np.arange(s.size), n_boot=200, seed=i)
        covered_iid += lo2 <= truth <= hi2
        width_iid.append(hi2 - lo2)
    assert covered / reps >= 0.8
    # resampling rows as if independent ignores the overlap: far too narrow, under-covers
    assert np.mean(width) > 2 * np.mean(width_iid)
    assert covered_iid < covered


def test_ic_interval_is_wider_with_fewer_days():
    rng = np.random.default_rng(5)
    few, many = [], []
    for _ in range(8):  # one draw of 5 days can be homogeneous by chance: average a few
        s, r, d = _overlapping_days(rng, n_days=40)
        _, ci5, _ = ic_block_bootstrap(s[d < 5], r[d < 5], d[d < 5], n_boot=300)
        _, ci40, _ = ic_block_bootstrap(s, r, d, n_boot=300)
        few.append(ci5[1] - ci5[0])
        many.append(ci40[1] - ci40[0])
    # sqrt(40 / 5) = 2.8 in theory; the 5-block bootstrap is itself noisy and a bit narrow
    assert np.mean(few) > 1.8 * np.mean(many)
    ic, ci, boot = ic_block_bootstrap(s[d == 0], r[d == 0], d[d == 0])
    assert ic is not None and ci is None and boot.size == 0  # one day: no interval
    # seeded: the same call gives the same interval
    assert (
        ic_block_bootstrap(s, r, d, n_boot=200, seed=7)[1]
        == (ic_block_bootstrap(s, r, d, n_boot=200, seed=7)[1])
    )


def test_report_by_fold_splits_rows_and_pools():
    rng = np.random.default_rng(6)
    n = 600
    y = rng.choice(C3, size=n)
    p = rng.dirichlet([1, 1, 1], size=n)
    r = rng.normal(size=n)
    fold = np.repeat([0, 1, 2], 200)
    day = np.repeat(np.arange(6), 100)
    out = report_by_fold(y, p, C3, fold, fwd_return=r, day=day, n_boot=100)
    assert out["pooled"]["n"] == n and out["pooled"]["n_days"] == 6
    assert [f["fold"] for f in out["folds"]] == [0, 1, 2]
    assert [f["n"] for f in out["folds"]] == [200, 200, 200]
    one = classification_report_oos(
        y[200:400], p[200:400], C3, fwd_return=r[200:400], day=day[200:400], n_boot=100
    )
    assert out["folds"][1]["log_loss"] == pytest.approx(one["log_loss"])
    assert out["folds"][1]["ic"] == pytest.approx(one["ic"])
    assert out["folds"][1]["ic_ci95"] == pytest.approx(one["ic_ci95"])
    json.dumps(out, allow_nan=False)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="not in classes"):
        classification_report_oos(["UP", "SIDEWAYS"], np.full((2, 3), 1 / 3), C3)
    with pytest.raises(ValueError, match="NaN"):
        classification_report_oos(["UP"], np.array([[np.nan, 0.5, 0.5]]), C3)
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        classification_report_oos(["UP"], np.array([[0.5, 0.5]]), C3)
    empty = classification_report_oos([], np.zeros((0, 3)), C3)
    assert empty["n"] == 0 and empty["log_loss"] is None
