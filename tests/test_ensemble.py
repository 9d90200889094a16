"""Regime ensemble: weights recovered per regime, NNLS, thin-regime fallback, NaN rows, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from tickml.evaluation.metrics import spearman_ic
from tickml.models.ensemble import (
    EnsembleConfig,
    RegimeEnsemble,
    component_ics,
    ensemble_score,
    fit_regime_ensemble,
    regime_of,
    weights_table,
)

pytestmark = pytest.mark.unit


def _two_regimes(n: int, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Calm rows (vol < 1) follow `a`, volatile rows (vol >= 1) follow `b`; `c` is noise."""
    rng = np.random.default_rng(seed)
    scores = {
        "a": rng.normal(0.0, 2.0, n),
        "b": rng.normal(0.0, 0.5, n),
        "c": rng.normal(0.0, 1.0, n),
    }
    vol = np.where(rng.random(n) < 0.5, rng.uniform(0.2, 0.9, n), rng.uniform(1.1, 3.0, n))
    calm = vol < 1.0
    signal = np.where(calm, 0.6 * scores["a"] / 2.0, 0.4 * scores["b"] / 0.5)
    return scores, signal + rng.normal(0.0, 0.3, n), vol


def test_recovers_known_weights_per_regime() -> None:
    scores, target, vol = _two_regimes(20_000, seed=1)
    ens = fit_regime_ensemble(scores, target, vol, EnsembleConfig(n_regimes=2))
    assert ens.components == ("a", "b", "c")
    assert ens.thresholds[0] == pytest.approx(1.0, abs=0.15)
    assert ens.scales == pytest.approx((2.0, 0.5, 1.0), rel=0.03)
    np.testing.assert_allclose(ens.weights[0], [0.6, 0.0, 0.0], atol=0.02)
    np.testing.assert_allclose(ens.weights[1], [0.0, 0.4, 0.0], atol=0.02)
    assert ens.n_rows == (
        int((vol < ens.thresholds[0]).sum()),
        int((vol >= ens.thresholds[0]).sum()),
    )
    # the pooled fit mixes both regimes: each signal weighs about half
    np.testing.assert_allclose(ens.pooled_weights, [0.3, 0.2, 0.0], atol=0.04)
    fresh, y_fresh, v_fresh = _two_regimes(5_000, seed=2)
    ic = spearman_ic(ensemble_score(ens, fresh, v_fresh), y_fresh)
    parts = component_ics(fresh, y_fresh)
    assert ic is not None and ic > 0.8
    assert all(p is not None and p < ic - 0.2 for p in parts.values())


def test_weights_nonnegative_and_ridge_signed() -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    scores = {"good": rng.normal(size=n), "bad": rng.normal(size=n)}
    target = 0.5 * scores["good"] - 0.5 * scores["bad"] + rng.normal(0.0, 0.5, n)
    vol = rng.uniform(size=n)
    ens = fit_regime_ensemble(scores, target, vol, EnsembleConfig(n_regimes=2))
    assert (ens.weights >= 0).all() and (ens.pooled_weights >= 0).all()
    assert ens.pooled_weights[1] == 0.0 and ens.pooled_weights[0] == pytest.approx(0.5, abs=0.03)
    ridge = fit_regime_ensemble(scores, target, vol, EnsembleConfig(n_regimes=2, nonnegative=False))
    np.testing.assert_allclose(ridge.pooled_weights, [0.5, -0.5], atol=0.03)
    assert (ridge.weights[:, 1] < -0.4).all()


def test_thin_regime_uses_pooled_weights() -> None:
    scores, target, vol = _two_regimes(3_000, seed=4)
    # vol takes two values (60% calm): the tertile cut points are (0.5, 2.0), so regime 0
    # (vol < 0.5) is empty, regime 1 holds the 1,800 calm rows and regime 2 the 1,200 others
    order = np.argsort(vol, kind="stable")
    vol[order[:1_800]], vol[order[1_800:]] = 0.5, 2.0
    ens = fit_regime_ensemble(scores, target, vol, EnsembleConfig(n_regimes=3))
    assert ens.thresholds == (0.5, 2.0) and ens.n_rows == (0, 1_800, 1_200)
    np.testing.assert_array_equal(ens.weights[0], ens.pooled_weights)
    assert not np.array_equal(ens.weights[1], ens.pooled_weights)
    assert not np.array_equal(ens.weights[2], ens.pooled_weights)
    cfg = EnsembleConfig(n_regimes=3, min_rows_per_regime=1_500)
    part = fit_regime_ensemble(scores, target, vol, cfg)
    np.testing.assert_array_equal(part.weights[1], ens.weights[1])
    np.testing.assert_array_equal(part.weights[2], part.pooled_weights)
    table = weights_table(part)
    assert [(t["regime"], t["n_rows"], t["uses_pooled"]) for t in table] == [
        (0, 0, True),
        (1, 1_800, False),
        (2, 1_200, True),
        ("pooled", 3_000, True),
    ]
    assert (table[1]["vol_from"], table[1]["vol_to"]) == (0.5, 2.0)
    assert table[0]["vol_from"] is None and table[2]["vol_to"] is None
    assert [table[1][c] for c in part.components] == part.weights[1].tolist()
    assert json.loads(json.dumps(table)) == table


def test_nan_components_count_as_zero_and_nan_targets_are_not_fitted() -> None:
    scores, target, vol = _two_regimes(6_000, seed=5)
    holed = {k: v.copy() for k, v in scores.items()}
    holed["c"][::7] = np.nan
    base = fit_regime_ensemble(holed, target, vol, EnsembleConfig(n_regimes=2))
    assert all(np.isfinite(base.scales)) and np.isfinite(base.weights).all()
    # NaN-target rows are not fitting rows: anything in them changes nothing
    extra = 2_000
    rng = np.random.default_rng(6)
    padded = {k: np.concatenate([v, rng.normal(0, 50, extra)]) for k, v in holed.items()}
    y_pad = np.concatenate([target, np.full(extra, np.nan)])
    v_pad = np.concatenate([vol, rng.uniform(10.0, 20.0, extra)])
    assert fit_regime_ensemble(padded, y_pad, v_pad, EnsembleConfig(n_regimes=2)).to_dict() == (
        base.to_dict()
    )
    # scoring: a NaN component contributes 0; NaN vol takes the pooled weights
    probe = {
        "a": np.array([1.0, 1.0, np.nan]),
        "b": np.array([0.0, 0.0, 0.0]),
        "c": np.array([np.nan, 2.0, 5.0]),
    }
    v_probe = np.array([0.5, np.nan, 2.0])
    got = ensemble_score(base, probe, v_probe)
    w0, wp, s = base.weights[0], base.pooled_weights, base.scales
    expected = [w0[0] / s[0], wp[0] / s[0] + wp[2] * 2.0 / s[2], base.weights[1][2] * 5.0 / s[2]]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_array_equal(regime_of(base, v_probe), [0, -1, 1])


def test_constant_component_gets_no_weight() -> None:
    scores, target, vol = _two_regimes(4_000, seed=7)
    scores["flat"] = np.full(len(target), 3.0)
    scores["empty"] = np.full(len(target), np.nan)
    ens = fit_regime_ensemble(scores, target, vol, EnsembleConfig(n_regimes=2))
    assert ens.scales[3:] == (1.0, 1.0)
    assert (ens.weights[:, 3:] == 0).all() and (ens.pooled_weights[3:] == 0).all()


def test_json_round_trip_is_exact() -> None:
    scores, target, vol = _two_regimes(3_000, seed=8)
    ens = fit_regime_ensemble(scores, target, vol)
    back = RegimeEnsemble.from_dict(json.loads(json.dumps(ens.to_dict(), allow_nan=False)))
    assert back.to_dict() == ens.to_dict()
    assert back.components == ens.components and back.thresholds == ens.thresholds
    assert back.scales == ens.scales and back.n_rows == ens.n_rows
    np.testing.assert_array_equal(back.weights, ens.weights)
    np.testing.assert_array_equal(back.pooled_weights, ens.pooled_weights)
    vol_nan = vol.copy()
    vol_nan[::11] = np.nan
    np.testing.assert_array_equal(
        ensemble_score(back, scores, vol_nan), ensemble_score(ens, scores, vol_nan)
    )
    with pytest.raises(ValueError, match="format"):
        RegimeEnsemble.from_dict({**ens.to_dict(), "format": "other"})


def test_no_signal_gives_small_weights_and_no_ic() -> None:
    rng = np.random.default_rng(9)
    n = 8_000
    scores = {name: rng.normal(size=n) for name in ("direction", "short", "microprice")}
    ens = fit_regime_ensemble(scores, rng.normal(size=n), rng.lognormal(size=n))
    assert np.abs(ens.weights).max() < 0.06 and np.abs(ens.pooled_weights).max() < 0.04
    fresh = {name: rng.normal(size=n) for name in scores}
    ic = spearman_ic(ensemble_score(ens, fresh, rng.lognormal(size=n)), rng.normal(size=n))
    assert ic is not None and abs(ic) < 0.05


def test_thresholds_and_scales_come_from_fitting_rows_only() -> None:
    scores, target, vol = _two_regimes(4_000, seed=10)
    target = target.copy()
    target[:1_000] = np.nan  # these rows are not fitted
    ens = fit_regime_ensemble(scores, target, vol, EnsembleConfig(n_regimes=3))
    fitting = np.isfinite(target)
    expected = np.quantile(vol[fitting], [1 / 3, 2 / 3])
    assert ens.thresholds == tuple(float(t) for t in expected)
    assert ens.scales[0] == float(np.std(scores["a"][fitting]))
    shifted = {k: v.copy() for k, v in scores.items()}
    for v in shifted.values():
        v[:1_000] *= 100.0
    vol_shifted = vol.copy()
    vol_shifted[:1_000] = 1e6
    again = fit_regime_ensemble(shifted, target, vol_shifted, EnsembleConfig(n_regimes=3))
    assert again.to_dict() == ens.to_dict()


def test_inputs_are_checked() -> None:
    scores, target, vol = _two_regimes(500, seed=11)
    with pytest.raises(ValueError, match="length"):
        fit_regime_ensemble({"a": scores["a"][:-1]}, target, vol)
    with pytest.raises(ValueError, match="no fitting rows"):
        fit_regime_ensemble(scores, np.full(len(vol), np.nan), vol)
    ens = fit_regime_ensemble(scores, target, vol)
    with pytest.raises(KeyError, match="missing"):
        ensemble_score(ens, {"a": scores["a"]}, vol)
    with pytest.raises(ValidationError):
        EnsembleConfig(n_regimes=0)
    with pytest.raises(ValidationError):
        EnsembleConfig(unknown=1)  # type: ignore[call-arg]
    assert EnsembleConfig(n_regimes=1).n_regimes == 1
    one = fit_regime_ensemble(scores, target, vol, EnsembleConfig(n_regimes=1))
    assert one.thresholds == () and one.n_rows == (len(vol),)
    np.testing.assert_array_equal(one.weights[0], one.pooled_weights)
