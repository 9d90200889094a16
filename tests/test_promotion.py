"""The promotion gate judges the decision model named in ``oos`` (classifier or regression)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tickml.models.promotion import decision_model, promotion_decision

pytestmark = pytest.mark.unit

CLASSES = {"short": ["UP", "DOWN", "FLAT"], "long": ["UP", "DOWN", "FLAT"]}


def manifest(
    dm: str | None = None, *, version: str = "v9", rules: dict[str, float] | None = None
) -> dict[str, Any]:
    """A classifier "short" that clears the bar and a regression "direction" that clears it
    too (IC 0.08, interval above 0, 6 days), with plain-rule baselines at 0.06 / 0.05."""
    rules = {"microprice_short": 0.06, "imbalance_short": 0.05} if rules is None else rules
    oos: dict[str, Any] = {
        "short": {"ic": 0.05, "ic_ci95": [0.01, 0.09], "log_loss": 1.30, "n_days": 10},
        "direction": {"ic": 0.08, "ic_ci95": [0.02, 0.14], "log_loss": None, "n_ic_days": 6},
        "baselines": {
            "momentum_short": {"log_loss": 1.35, "ic": -0.01},
            **{name: {"ic": ic, "log_loss": None} for name, ic in rules.items()},
        },
    }
    if dm is not None:
        oos["decision_model"] = dm
    return {
        "version": version,
        "horizons": {"short": "5m", "long": "15m"},
        "models": {k: {"classes": v} for k, v in CLASSES.items()},
        "oos": oos,
    }


def test_the_default_decision_model_is_short() -> None:
    m = manifest()
    assert decision_model(m) == "short" and decision_model(None) == "short"
    ok, why = promotion_decision(m, None)
    assert ok and why[0] == "decision model: short"
    assert any("beats the momentum baseline's 1.3500" in r for r in why)
    # the short model is judged: breaking the direction model changes nothing
    m["oos"]["direction"]["ic_ci95"] = [-0.1, 0.2]
    assert promotion_decision(m, None)[0]


def test_a_named_decision_model_is_the_one_judged() -> None:
    m = manifest("direction")
    ok, why = promotion_decision(m, None)
    assert ok, why
    assert any("beats the plain rule microprice_short's 0.0600" in r for r in why)
    assert not any("momentum" in r for r in why)  # no log loss: no momentum comparison
    # its own interval decides, not the short model's
    m["oos"]["direction"]["ic_ci95"] = [-0.01, 0.17]
    ok, why = promotion_decision(m, None)
    assert not ok and any("does not exclude 0" in r for r in why)
    # its own day count (n_ic_days) decides
    m = manifest("direction")
    m["oos"]["direction"]["n_ic_days"] = 4
    ok, why = promotion_decision(m, None)
    assert not ok and any("fewer than 5" in r for r in why)
    # a model named but absent: refused
    ok, why = promotion_decision(manifest("ensemble"), None)
    assert not ok and any("'ensemble'" in r for r in why)


def test_a_regression_must_beat_the_best_plain_rule() -> None:
    m = manifest("direction", rules={"microprice_short": 0.09, "imbalance_short": 0.05})
    ok, why = promotion_decision(m, None)
    assert not ok and any(
        "does not beat the plain rule microprice_short's 0.0900" in r for r in why
    )
    m = manifest("direction", rules={"microprice_short": 0.02, "imbalance_short": 0.081})
    ok, why = promotion_decision(m, None)
    assert not ok and any("imbalance_short's 0.0810" in r for r in why)
    # no plain-rule baselines recorded: the comparison is skipped, and said so
    ok, why = promotion_decision(manifest("direction", rules={}), None)
    assert ok and any("no plain-rule baseline IC" in r for r in why)


def test_against_a_champion_with_another_decision_model() -> None:
    champ = manifest(version="v1")  # decided by "short": IC 0.05, log loss 1.30
    ok, why = promotion_decision(manifest("direction"), champ)
    assert ok, why
    assert any("IC 0.0800 > v1's 0.0500 (short)" in r for r in why)
    assert any("log loss not compared" in r for r in why)
    worse = manifest("direction")
    worse["oos"]["direction"]["ic"] = 0.05  # a tie with the champion's short IC
    worse["oos"]["direction"]["ic_ci95"] = [0.01, 0.09]
    worse["oos"]["baselines"]["microprice_short"]["ic"] = 0.01
    ok, why = promotion_decision(worse, champ)
    assert not ok and any("does not beat v1's 0.0500" in r for r in why)
    # same classifier on both sides: the log loss is compared as well
    better_ll = copy.deepcopy(champ)
    better_ll["oos"]["short"]["ic"], better_ll["oos"]["short"]["log_loss"] = 0.04, 1.29
    ok, why = promotion_decision(manifest(), better_ll)
    assert not ok and any("log loss 1.3000 does not beat v1's 1.2900" in r for r in why)
    # a model listed by both manifests with other classes: not comparable
    other = manifest("direction")
    other["models"]["direction"] = {"classes": None}
    champ["models"]["direction"] = {"classes": ["UP", "DOWN"]}
    ok, why = promotion_decision(other, champ)
    assert not ok and any("direction classes differ" in r for r in why)
    # a model only the challenger has (a new regression model, classes []) is no obstacle
    del champ["models"]["direction"]
    other["models"]["direction"] = {"classes": []}
    assert promotion_decision(other, champ)[0]
