"""The promotion gate judges the decision model named by the version's models (the direction
model when there is one, else short), as a classifier or a regression by its classes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tickml.models.promotion import OLDER_IC, decision_model_of, promotion_decision

pytestmark = pytest.mark.unit

CLASSES = {"short": ["UP", "DOWN", "FLAT"], "long": ["UP", "DOWN", "FLAT"]}


def manifest(
    direction: bool = False, *, version: str = "v9", rules: dict[str, float] | None = None
) -> dict[str, Any]:
    """A classifier "short" that clears the bar and, with ``direction``, a regression
    "direction" model (classes []) that clears it too (IC 0.08, interval above 0, 6 days),
    with plain-rule baselines at 0.06 / 0.05."""
    rules = {"microprice_short": 0.06, "imbalance_short": 0.05} if rules is None else rules
    oos: dict[str, Any] = {
        "short": {"ic": 0.05, "ic_ci95": [0.01, 0.09], "log_loss": 1.30, "n_ic_days": 10},
        "baselines": {
            "momentum_short": {"log_loss": 1.35, "ic": -0.01},
            **{name: {"ic": ic, "log_loss": None} for name, ic in rules.items()},
        },
    }
    models: dict[str, Any] = {k: {"classes": list(v)} for k, v in CLASSES.items()}
    horizons = {"short": "5m", "long": "15m"}
    if direction:
        oos["direction"] = {"ic": 0.08, "ic_ci95": [0.02, 0.14], "log_loss": None, "n_ic_days": 6}
        oos["decision_model"] = "direction"
        models["direction"] = {"classes": []}
        horizons["direction"] = "5m"
    return {"version": version, "horizons": horizons, "models": models, "oos": oos}


def test_the_decision_model_is_direction_when_the_version_has_one() -> None:
    assert decision_model_of(manifest()) == "short" and decision_model_of(None) == "short"
    assert decision_model_of(manifest(True)) == "direction"
    m = manifest()
    ok, why = promotion_decision(m, None)
    assert ok and why[0] == "decision model: short"
    assert any("beats the momentum baseline's 1.3500" in r for r in why)


def test_a_version_with_a_direction_model_is_judged_on_it() -> None:
    m = manifest(True)
    ok, why = promotion_decision(m, None)
    assert ok, why
    assert why[0] == "decision model: direction"
    assert any("beats the plain rule microprice_short's 0.0600" in r for r in why)
    assert not any("momentum" in r for r in why)  # a regression: no momentum comparison
    # breaking the direction model refuses the version, even when oos does not name it
    # (the old gate judged short then: a broken decision model went through)
    for named in (True, False):
        m = manifest(True)
        m["oos"]["direction"]["ic_ci95"] = [-0.01, 0.17]
        if not named:
            del m["oos"]["decision_model"]
        ok, why = promotion_decision(m, None)
        assert not ok and any("does not exclude 0" in r for r in why), why
    # its own day count (n_ic_days) decides
    m = manifest(True)
    m["oos"]["direction"]["n_ic_days"] = 4
    ok, why = promotion_decision(m, None)
    assert not ok and any("fewer than 5" in r for r in why)


def test_oos_naming_another_decision_model_is_refused() -> None:
    m = manifest(True)
    m["oos"]["decision_model"] = "short"  # the metrics would be the wrong model's
    ok, why = promotion_decision(m, None)
    assert not ok and any("oos names the decision model 'short'" in r for r in why)
    m = manifest()
    m["oos"]["decision_model"] = "direction"  # names a model the version does not have
    ok, why = promotion_decision(m, None)
    assert not ok and any("make it 'short'" in r for r in why)


def test_classifier_or_regression_comes_from_the_classes() -> None:
    # a classifier without a log loss: refused (not judged as a regression)
    m = manifest()
    m["oos"]["short"]["log_loss"] = None
    ok, why = promotion_decision(m, None)
    assert not ok and any("no out-of-sample log loss" in r for r in why)
    assert not any("plain rule" in r for r in why)
    # a regression with a (spurious) log loss is still judged against the plain rules
    m = manifest(True, rules={"microprice_short": 0.09})
    m["oos"]["direction"]["log_loss"] = 0.1
    ok, why = promotion_decision(m, None)
    assert not ok and any(
        "does not beat the plain rule microprice_short's 0.0900" in r for r in why
    )
    # a decision model without a classes list: which is it? refused
    m = manifest(True)
    del m["models"]["direction"]["classes"]
    ok, why = promotion_decision(m, None)
    assert not ok and any("no classes" in r for r in why)


def test_a_regression_must_beat_the_best_plain_rule() -> None:
    m = manifest(True, rules={"microprice_short": 0.09, "imbalance_short": 0.05})
    ok, why = promotion_decision(m, None)
    assert not ok and any(
        "does not beat the plain rule microprice_short's 0.0900" in r for r in why
    )
    m = manifest(True, rules={"microprice_short": 0.02, "imbalance_short": 0.081})
    ok, why = promotion_decision(m, None)
    assert not ok and any("imbalance_short's 0.0810" in r for r in why)
    # one recorded is enough
    assert promotion_decision(manifest(True, rules={"imbalance_short": 0.01}), None)[0]
    # no plain-rule baselines recorded: refused, and said so
    ok, why = promotion_decision(manifest(True, rules={}), None)
    assert not ok and any("no plain-rule baseline IC" in r for r in why)


def test_against_a_champion_with_another_decision_model() -> None:
    champ = manifest(version="v1")  # decided by "short": IC 0.05, log loss 1.30
    ok, why = promotion_decision(manifest(True), champ)
    assert ok, why
    assert any("IC 0.0800 > v1's 0.0500 (short)" in r for r in why)
    assert any("log loss not compared" in r for r in why)
    worse = manifest(True)
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


def test_only_models_both_manifests_list_are_compared() -> None:
    champ = manifest(version="v1")
    other = manifest(True)
    # a model only the challenger has (its horizon and classes) is no obstacle
    ok, why = promotion_decision(other, champ)
    assert ok, why
    # ... even when the manifests' horizons differ by that model alone
    assert other["horizons"] != champ["horizons"]
    # a model both list with other classes or another horizon: not comparable
    champ["models"]["direction"] = {"classes": ["UP", "DOWN"]}
    ok, why = promotion_decision(other, champ)
    assert not ok and any("direction classes differ" in r for r in why)
    del champ["models"]["direction"]
    champ["horizons"]["long"] = "30m"
    ok, why = promotion_decision(other, champ)
    assert not ok and any("long horizons differ" in r for r in why)


def test_a_champion_with_the_older_ic_definition() -> None:
    """A champion saved before the per-day IC (no n_ic_days: its ``ic`` was pooled)."""
    champ = manifest(version="v1")
    champ["oos"]["short"] = {"ic": 0.03, "ic_ci95": [0.01, 0.05], "log_loss": 1.36, "n_days": 8}
    ok, why = promotion_decision(manifest(), champ)  # no pooled IC to compare: a person decides
    assert not ok and any(OLDER_IC in r for r in why)
    champ["oos"]["short"]["ic_pooled"] = 0.03
    ch = manifest()
    ch["oos"]["short"]["ic_pooled"] = 0.02  # per-day IC 0.05 > 0.03, but pooled 0.02 < 0.03
    ok, why = promotion_decision(ch, champ)
    assert not ok and any("pooled IC 0.0200 does not beat v1's 0.0300" in r for r in why)
    ch["oos"]["short"]["ic_pooled"] = 0.04
    ok, why = promotion_decision(ch, champ)
    assert ok and any("pooled IC 0.0400 > v1's 0.0300" in r for r in why)
