"""The promotion rule: may a registered version become the champion?

The rule judges the **decision model**: the model whose score drives trading decisions, named
by the manifest's ``oos["decision_model"]`` (default ``"short"``, the 5-class short-horizon
classifier; a direction model or an ensemble once the experiment names it). Its pooled
out-of-sample metrics are read from ``oos[<decision model>]``.

* every candidate must clear an absolute bar:

  - at least :data:`MIN_OOS_DAYS` out-of-sample days with a defined IC (``n_ic_days``; older
    manifests: ``n_days``): the interval is over days, and fewer days say too little;
  - the lower end of the IC's 95% interval is > 0. ``ic`` is the mean per-day IC (the
    expected IC of a day) and ``ic_ci95`` its Student-t interval over the days
    (:mod:`tickml.evaluation.ic_interval`; simulated coverage 95% with 5 and with 10 days,
    where the day-block bootstrap used before covered about 85% with 5 days);
  - a classifier (the model has a log loss) must have a log loss below the momentum
    baseline's on the same rows (a model that does not beat "the last move persists"
    frequencies is not a model);
  - a model without a log loss (a regression of the forward return) must instead have an IC
    above the best plain-rule baseline's (:data:`PLAIN_RULE_BASELINES`: micro-price deviation
    and book imbalance, last value, no training) when those baselines are recorded in
    ``oos["baselines"]``; without them that comparison is skipped (and said so);
* with a champion, the challenger must also have a strictly higher IC than the champion's
  decision model, and a strictly lower log loss when both decision models are the same
  classifier; horizons and the classes of every model both manifests list must match
  (otherwise the numbers are not comparable and a person decides).

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
#: the model whose score drives decisions when ``oos`` does not name one
DEFAULT_DECISION_MODEL = "short"
#: plain rules (no training) whose IC a model without a log loss must beat
PLAIN_RULE_BASELINES: tuple[str, ...] = ("microprice_short", "imbalance_short")


def decision_model(manifest: Mapping[str, Any] | None) -> str:
    """The name of the model whose score drives decisions: ``oos["decision_model"]``, else
    :data:`DEFAULT_DECISION_MODEL`."""
    name = _metric(manifest, "oos", "decision_model")
    return str(name) if name else DEFAULT_DECISION_MODEL


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


def _absolute_bar(challenger: Mapping[str, Any], dm: str, reasons: list[str]) -> bool | None:
    """The absolute bar of the module docstring; None when the model has no IC at all."""
    o = _metric(challenger, "oos", dm)
    o = o if isinstance(o, Mapping) else {}
    ic, ci, ll = o.get("ic"), o.get("ic_ci95"), o.get("log_loss")
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
    if ll is not None:
        mom_ll = _metric(challenger, "oos", "baselines", "momentum_short", "log_loss")
        if mom_ll is None:
            ok = False
            reasons.append("no momentum baseline log loss to compare with")
        elif not ll < mom_ll:
            ok = False
            reasons.append(f"log loss {ll:.4f} does not beat the momentum baseline's {mom_ll:.4f}")
        else:
            reasons.append(f"log loss {ll:.4f} beats the momentum baseline's {mom_ll:.4f}")
        return ok
    best = _best_plain_rule(challenger)
    if best is None:
        reasons.append(f"{dm} has no log loss and no plain-rule baseline IC is recorded")
    elif not ic > best[1]:
        ok = False
        reasons.append(f"IC {ic:.4f} does not beat the plain rule {best[0]}'s {best[1]:.4f}")
    else:
        reasons.append(f"IC {ic:.4f} beats the plain rule {best[0]}'s {best[1]:.4f}")
    return ok


def promotion_decision(
    challenger: Mapping[str, Any], champion: Mapping[str, Any] | None
) -> tuple[bool, list[str]]:
    """(promote?, reasons) under the rule of the module docstring (decision model, pooled
    out-of-sample metrics)."""
    dm = decision_model(challenger)
    reasons: list[str] = [f"decision model: {dm}"]
    bar = _absolute_bar(challenger, dm, reasons)
    if bar is None:
        return False, reasons
    ok = bar
    if champion is None:
        reasons.append("no champion: first model, judged on the absolute bar only")
        return ok, reasons
    name = champion.get("version", "champion")
    if challenger.get("horizons") != champion.get("horizons"):
        ok = False
        reasons.append(
            f"horizons differ from {name} ({challenger.get('horizons')} vs "
            f"{champion.get('horizons')}): not comparable, decide manually"
        )
    listed = [_metric(x, "models") for x in (challenger, champion)]
    both = [set(m) for m in listed if isinstance(m, Mapping)]
    names = sorted(both[0] & both[1]) if len(both) == 2 else []
    for m in names:
        a = _metric(challenger, "models", m, "classes")
        b = _metric(champion, "models", m, "classes")
        if a != b:
            ok = False
            reasons.append(f"{m} classes differ from {name} ({a} vs {b}): not comparable")
    c_dm = decision_model(champion)
    ic = _metric(challenger, "oos", dm, "ic")
    ll = _metric(challenger, "oos", dm, "log_loss")
    c_ic = _metric(champion, "oos", c_dm, "ic")
    c_ll = _metric(champion, "oos", c_dm, "log_loss")
    if c_ic is None:
        reasons.append(f"{name} has no IC: the challenger only needs the absolute bar")
        return ok, reasons
    if ic > c_ic:
        reasons.append(f"IC {ic:.4f} > {name}'s {c_ic:.4f} ({c_dm})")
    else:
        ok = False
        reasons.append(f"IC {ic:.4f} does not beat {name}'s {c_ic:.4f} ({c_dm})")
    if ll is None or c_ll is None or dm != c_dm:
        reasons.append(
            f"log loss not compared with {name} (decision models {dm} vs {c_dm}; a log loss "
            "exists only for the same classifier on both sides)"
        )
    elif ll < c_ll:
        reasons.append(f"log loss {ll:.4f} < {name}'s {c_ll:.4f}")
    else:
        ok = False
        reasons.append(f"log loss {ll:.4f} does not beat {name}'s {c_ll:.4f}")
    return ok, reasons
