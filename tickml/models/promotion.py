"""The promotion rule: may a registered version become the champion?

The rule judges the **decision model**: the model whose score drives trading decisions. One
rule names it, :func:`decision_model_of` (the manifest) and
:attr:`tickml.models.registry.RegisteredModels.decision_model` (a loaded version): the
direction model (``"direction"``, a regression) when the version has one, else ``"short"``
(the 5-class short-horizon classifier). ``oos["decision_model"]``, written by
:meth:`~tickml.models.registry.ModelRegistry.save` from that rule, must agree with it (a
manifest that says otherwise is refused: its numbers may be the wrong model's). The model's
pooled out-of-sample metrics are read from ``oos[<decision model>]``; whether it is a
classifier or a regression is read from its ``classes`` in ``manifest["models"]`` (an empty
list: a regression), never guessed from which metrics are present.

* every candidate must clear an absolute bar:

  - at least :data:`MIN_OOS_DAYS` out-of-sample days with a defined IC (``n_ic_days``; older
    manifests: ``n_days``): the interval is over days, and fewer days say too little;
  - the lower end of the IC's 95% interval is > 0. ``ic`` is the mean per-day IC (the
    expected IC of a day) and ``ic_ci95`` its Student-t interval over the days
    (:mod:`tickml.evaluation.ic_interval`; simulated coverage 95% with 5 and with 10 days,
    where the day-block bootstrap used before covered about 85% with 5 days; optimistic when
    one fold model tests several days, see that module);
  - a classifier must have a log loss, below the momentum baseline's on the same rows (a model
    that does not beat "the last move persists" frequencies is not a model); a classifier
    without a recorded log loss is refused;
  - a regression (the direction model, a regression of the forward return) must instead have
    an IC above the better of the plain-rule baselines' (:data:`PLAIN_RULE_BASELINES`:
    micro-price deviation and book imbalance, last value, no training) recorded in
    ``oos["baselines"]``; when neither is recorded it is refused (nothing shows that the
    trained model beats a rule that needs no training);
* with a champion, the challenger must also have a strictly higher IC than the champion's
  decision model, and a strictly lower log loss when both decision models are the same
  classifier; the horizons and the classes of every model both manifests list must match
  (otherwise the numbers are not comparable and a person decides). A champion whose decision
  model metrics lack ``n_ic_days`` was saved before the per-day IC (its ``ic`` was the pooled
  IC): then the pooled ICs (``ic_pooled``) of both sides are compared when both have one, else
  the comparison is refused and a person decides.

Caveat: champion and challenger metrics come from their own evaluation windows; the rule
compares what each run measured, not a head-to-head on the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _metric(manifest: Mapping[str, Any] | None, *keys: str) -> Any:
    cur: Any = manifest
    for k in keys:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(k)
    return cur


#: fewest out-of-sample days whose IC interval the promotion rule trusts
MIN_OOS_DAYS = 5
#: the model whose score drives decisions when the version has no direction model
DEFAULT_DECISION_MODEL = "short"
#: the direction model: the decision model whenever a version has one
DIRECTION_MODEL = "direction"
#: plain rules (no training) whose IC a regression decision model must beat
PLAIN_RULE_BASELINES: tuple[str, ...] = ("microprice_short", "imbalance_short")
#: the reason given when the champion's IC cannot be compared with the challenger's
OLDER_IC = "champion metrics are from an older IC definition; a person decides"


def decision_model_for(model_names: Any) -> str:
    """The one rule: ``"direction"`` when the model names include the direction model, else
    ``"short"`` (:data:`DEFAULT_DECISION_MODEL`)."""
    return DIRECTION_MODEL if DIRECTION_MODEL in model_names else DEFAULT_DECISION_MODEL


def decision_model_of(manifest: Mapping[str, Any] | None) -> str:
    """The decision model of a manifest (:func:`decision_model_for` its ``models``)."""
    models = _metric(manifest, "models")
    return decision_model_for(models if isinstance(models, Mapping) else ())


def _ic_days(o: Mapping[str, Any]) -> Any:
    """Days behind the IC interval: ``n_ic_days`` (days with a defined IC), else ``n_days``
    (manifests written before the per-day interval)."""
    n = o.get("n_ic_days")
    return o.get("n_days") if n is None else n


def _best_plain_rule(challenger: Mapping[str, Any]) -> tuple[str, float] | None:
    found = []
    for name in PLAIN_RULE_BASELINES:
        ic = _metric(challenger, "oos", "baselines", name, "ic")
        if ic is not None:
            found.append((name, float(ic)))
    return max(found, key=lambda x: x[1]) if found else None


def _kind(manifest: Mapping[str, Any], dm: str) -> str | None:
    """``"classifier"`` / ``"regression"`` from the model's ``classes`` (empty: regression);
    None when the manifest does not list the model with a classes list."""
    classes = _metric(manifest, "models", dm, "classes")
    if not isinstance(classes, list | tuple):
        return None
    return "classifier" if classes else "regression"


def _beats_momentum(challenger: Mapping[str, Any], ll: Any, reasons: list[str]) -> bool:
    mom_ll = _metric(challenger, "oos", "baselines", "momentum_short", "log_loss")
    if ll is None:
        reasons.append("the classifier has no out-of-sample log loss: refused")
        return False
    if mom_ll is None:
        reasons.append("no momentum baseline log loss to compare with")
        return False
    if not ll < mom_ll:
        reasons.append(f"log loss {ll:.4f} does not beat the momentum baseline's {mom_ll:.4f}")
        return False
    reasons.append(f"log loss {ll:.4f} beats the momentum baseline's {mom_ll:.4f}")
    return True


def _beats_plain_rules(challenger: Mapping[str, Any], ic: float, reasons: list[str]) -> bool:
    best = _best_plain_rule(challenger)
    if best is None:
        reasons.append(
            "no plain-rule baseline IC is recorded (" + ", ".join(PLAIN_RULE_BASELINES) + "): "
            "nothing shows the regression beats a rule without training; refused"
        )
        return False
    if not ic > best[1]:
        reasons.append(f"IC {ic:.4f} does not beat the plain rule {best[0]}'s {best[1]:.4f}")
        return False
    reasons.append(f"IC {ic:.4f} beats the plain rule {best[0]}'s {best[1]:.4f}")
    return True


def _absolute_bar(challenger: Mapping[str, Any], dm: str, reasons: list[str]) -> bool | None:
    """The absolute bar of the module docstring; None when the model has no IC at all."""
    o = _metric(challenger, "oos", dm)
    o = o if isinstance(o, Mapping) else {}
    ic, ci = o.get("ic"), o.get("ic_ci95")
    if ic is None:
        reasons.append(f"challenger has no out-of-sample IC for its decision model {dm!r}")
        return None
    ok = True
    n_days = _ic_days(o)
    if n_days is None or n_days < MIN_OOS_DAYS:
        ok = False
        reasons.append(
            f"{n_days} out-of-sample days: fewer than {MIN_OOS_DAYS}, the IC interval is not "
            "evidence"
        )
    if ci is None:
        ok = False
        reasons.append(f"IC {ic:.4f} has no 95% interval (fewer than two out-of-sample days)")
    elif not ci[0] > 0:
        ok = False
        reasons.append(f"IC {ic:.4f}: 95% interval [{ci[0]:.4f}, {ci[1]:.4f}] does not exclude 0")
    else:
        reasons.append(f"IC {ic:.4f}: 95% interval [{ci[0]:.4f}, {ci[1]:.4f}] excludes 0")
    kind = _kind(challenger, dm)
    if kind is None:
        reasons.append(f"the manifest lists no classes for {dm!r}: classifier or regression?")
        return False
    if kind == "classifier":
        return _beats_momentum(challenger, o.get("log_loss"), reasons) and ok
    return _beats_plain_rules(challenger, float(ic), reasons) and ok


def _comparable(
    challenger: Mapping[str, Any], champion: Mapping[str, Any], name: str, reasons: list[str]
) -> bool:
    """Horizons and classes of every model both manifests list are the same."""
    listed = [_metric(x, "models") for x in (challenger, champion)]
    both = [set(m) for m in listed if isinstance(m, Mapping)]
    names = sorted(both[0] & both[1]) if len(both) == 2 else []
    ok = True
    for m in names:
        for field in ("horizons", "classes"):
            if field == "horizons":
                a, b = _metric(challenger, "horizons", m), _metric(champion, "horizons", m)
            else:
                a = _metric(challenger, "models", m, "classes")
                b = _metric(champion, "models", m, "classes")
            if a != b:
                ok = False
                reasons.append(
                    f"{m} {field} differ from {name} ({a} vs {b}): not comparable, decide manually"
                )
    return ok


def _ic_pair(
    challenger: Mapping[str, Any], champion: Mapping[str, Any], dm: str, c_dm: str
) -> tuple[str, Any, Any]:
    """(which IC, challenger's, champion's): ``ic`` (mean per-day IC) when the champion's
    metrics have ``n_ic_days``, else ``ic_pooled`` on both sides (None where absent)."""
    if _metric(champion, "oos", c_dm, "n_ic_days") is not None:
        return "IC", _metric(challenger, "oos", dm, "ic"), _metric(champion, "oos", c_dm, "ic")
    return (
        "pooled IC",
        _metric(challenger, "oos", dm, "ic_pooled"),
        _metric(champion, "oos", c_dm, "ic_pooled"),
    )


def _against_champion(
    challenger: Mapping[str, Any], champion: Mapping[str, Any], dm: str, reasons: list[str]
) -> bool:
    name = champion.get("version", "champion")
    ok = _comparable(challenger, champion, name, reasons)
    c_dm = decision_model_of(champion)
    if _metric(champion, "oos", c_dm, "ic") is None:
        reasons.append(f"{name} has no IC: the challenger only needs the absolute bar")
        return ok
    what, ic, c_ic = _ic_pair(challenger, champion, dm, c_dm)
    if ic is None or c_ic is None:
        reasons.append(f"{name}: {OLDER_IC}")
        return False
    if ic > c_ic:
        reasons.append(f"{what} {ic:.4f} > {name}'s {c_ic:.4f} ({c_dm})")
    else:
        ok = False
        reasons.append(f"{what} {ic:.4f} does not beat {name}'s {c_ic:.4f} ({c_dm})")
    ll = _metric(challenger, "oos", dm, "log_loss")
    c_ll = _metric(champion, "oos", c_dm, "log_loss")
    same = dm == c_dm and _kind(challenger, dm) == _kind(champion, c_dm) == "classifier"
    if ll is None or c_ll is None or not same:
        reasons.append(
            f"log loss not compared with {name} (decision models {dm} vs {c_dm}; a log loss "
            "is compared only for the same classifier on both sides)"
        )
    elif ll < c_ll:
        reasons.append(f"log loss {ll:.4f} < {name}'s {c_ll:.4f}")
    else:
        ok = False
        reasons.append(f"log loss {ll:.4f} does not beat {name}'s {c_ll:.4f}")
    return ok


def promotion_decision(
    challenger: Mapping[str, Any], champion: Mapping[str, Any] | None
) -> tuple[bool, list[str]]:
    """(promote?, reasons) under the rule of the module docstring (decision model, pooled
    out-of-sample metrics)."""
    dm = decision_model_of(challenger)
    reasons: list[str] = [f"decision model: {dm}"]
    named = _metric(challenger, "oos", "decision_model")
    if named is not None and named != dm:
        reasons.append(
            f"oos names the decision model {named!r} but the version's models make it {dm!r} "
            "(the metrics may be the wrong model's): refused"
        )
        return False, reasons
    bar = _absolute_bar(challenger, dm, reasons)
    if bar is None:
        return False, reasons
    if champion is None:
        reasons.append("no champion: first model, judged on the absolute bar only")
        return bar, reasons
    return _against_champion(challenger, champion, dm, reasons) and bar, reasons
