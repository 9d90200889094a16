"""The decision function with a direction model: the direction calls the trade (its sign, its
size against ``min_direction``), the short model detects traps (gate ``trap``), the long model
confirms; a NaN direction means no model for that row; the circuit breaker counts the
direction's signs (one call or the sum of parts)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tickml.decision import GATES, DecisionConfig, DecisionState, breaker_counts, decide

pytestmark = pytest.mark.unit

NY = "America/New_York"
AT = pd.Timestamp("2013-10-08 10:30", tz=NY).tz_convert("UTC")
#: the short model: P(UP) - P(DOWN) = -0.5 (it would call SHORT), little trap risk
DOWN5 = [0.1, 0.6, 0.2, 0.05, 0.05]
TRAP_UP5 = [0.2, 0.1, 0.1, 0.55, 0.05]  # a long's trap is likely
TRAP_DOWN5 = [0.1, 0.2, 0.1, 0.05, 0.55]  # a short's trap is likely
UP3 = [0.5, 0.2, 0.3]
DOWN3 = [0.2, 0.5, 0.3]


def gates(cfg, syms, ps, pl, direction, ret=None):  # noqa: ANN001, ANN201
    d = decide(
        cfg, DecisionState(), AT, syms, ps, pl, last_return=ret, direction=np.asarray(direction)
    )
    return dict(zip(syms, d.gate_names.tolist(), strict=True)), d


def test_gate_order_and_config():
    assert GATES.index("trap") == GATES.index("min_confidence") + 1 < GATES.index("disagree")
    assert DecisionConfig().min_direction == 0.1 and DecisionConfig().max_trap_prob is None


def test_direction_calls_the_trade_short_model_only_detects_traps():
    cfg = DecisionConfig(max_trap_prob=0.5)
    syms = ["LONG", "SHORT", "SMALL", "ZERO", "TRAPPED_LONG", "TRAPPED_SHORT", "SHORT_TRAP_UP",
            "DISAGREE", "NODIR"]  # fmt: skip
    ps = [DOWN5, DOWN5, DOWN5, DOWN5, TRAP_UP5, TRAP_DOWN5, TRAP_UP5, DOWN5, DOWN5]
    pl = [UP3, DOWN3, UP3, UP3, UP3, DOWN3, DOWN3, DOWN3, UP3]
    direction = [0.3, -0.25, 0.05, 0.0, 0.3, -0.3, -0.3, 0.4, np.nan]
    ret = [0.0] * 8 + [0.002]
    got, d = gates(cfg, syms, ps, pl, direction, ret)
    assert got == {
        "LONG": "traded",  # the short model says DOWN: it does not call the trade any more
        "SHORT": "traded",
        "SMALL": "min_confidence",  # |direction| < min_direction
        "ZERO": "min_confidence",
        "TRAPPED_LONG": "trap",  # P(TRAP_UP) 0.55 >= 0.5 for a long
        "TRAPPED_SHORT": "trap",  # P(TRAP_DOWN) 0.55 for a short
        "SHORT_TRAP_UP": "traded",  # TRAP_UP does not block a short
        "DISAGREE": "disagree",  # the long model does not confirm the direction
        "NODIR": "fallback",  # no direction for the row: the model is unavailable
    }
    assert d.decision.tolist() == [1, -1, 0, 0, 0, 0, -1, 0, 1]
    # the score IS the direction (NaN where there is none)
    np.testing.assert_array_equal(d.score[:8], direction[:8])
    assert np.isnan(d.score[8])
    # min_confidence comes before trap: a small direction with a trap is min_confidence
    got, _ = gates(cfg, ["A"], [TRAP_UP5], [UP3], [0.05])
    assert got == {"A": "min_confidence"}
    # the trap gate off (default): the short model is not consulted, even when missing
    got, _ = gates(DecisionConfig(), ["A", "B"], [TRAP_UP5, [np.nan] * 5], [UP3, UP3], [0.3, 0.3])
    assert got == {"A": "traded", "B": "traded"}
    # the trap gate on: non-finite short probabilities mean no model for that row
    got, _ = gates(cfg.model_copy(update={"fallback": False}), ["A"], [[np.nan] * 5], [UP3], [0.3])
    assert got == {"A": "no_model"}


def test_a_short_model_outage_under_the_trap_gate_is_no_model_not_the_fallback():
    """With the trap gate on, a finite direction whose short probabilities are non-finite (the
    trap detector is out) is ``no_model``: the momentum fallback must not trade it. A NaN
    direction (the direction model is out) still falls back."""
    cfg = DecisionConfig(max_trap_prob=0.5)  # fallback on (the default)
    nan5 = [np.nan] * 5
    ret = [0.002, 0.002, 0.002, 0.002]
    got, d = gates(cfg, ["OUT", "INF", "NODIR", "OK"], [nan5, [np.inf] + DOWN5[1:], DOWN5,
                   DOWN5], [UP3] * 4, [0.3, 0.3, np.nan, 0.3], ret)  # fmt: skip
    assert got == {"OUT": "no_model", "INF": "no_model", "NODIR": "fallback", "OK": "traded"}
    assert d.decision.tolist() == [0, 0, 1, 1]
    # the trap gate off: the short model is not consulted, its outage changes nothing
    got, _ = gates(DecisionConfig(), ["OUT"], [nan5], [UP3], [0.3], [0.002])
    assert got == {"OUT": "traded"}


def test_min_direction_and_without_agreement():
    cfg = DecisionConfig(min_direction=0.5, require_agreement=False)
    got, _ = gates(cfg, ["A", "B", "C"], [DOWN5] * 3, None, [0.49, -0.5, 0.7])
    assert got == {"A": "min_confidence", "B": "traded", "C": "traded"}


def test_none_direction_is_the_short_model_decision():
    """``direction=None`` is exactly the two-classifier decision."""
    rng = np.random.default_rng(3)
    n = 300
    ps = rng.dirichlet(np.ones(5), size=n)
    pl = rng.dirichlet(np.ones(3), size=n)
    syms = [f"S{i}" for i in range(n)]
    cfg = DecisionConfig(max_trap_prob=0.2, min_confidence=0.3)
    a = decide(cfg, DecisionState(), AT, syms, ps, pl)
    b = decide(cfg, DecisionState(), AT, syms, ps, pl, direction=None)
    np.testing.assert_array_equal(a.gate, b.gate)
    np.testing.assert_array_equal(a.score, ps[:, 0] - ps[:, 1])
    assert "trap" not in set(a.gate_names)  # the trap gate needs a direction model


def test_circuit_breaker_counts_direction_signs():
    cfg = DecisionConfig(circuit_breaker_min_symbols=3, require_agreement=False)
    syms = ["A", "B", "C", "D"]
    ps = [DOWN5] * 4  # the short model would count 4 downs
    direction = np.array([0.3, 0.4, 0.5, np.nan])
    d = decide(cfg, DecisionState(), AT, syms, ps, None, direction=direction)
    assert d.circuit_breaker_tripped and set(d.gate_names) == {"circuit_breaker", "fallback"}
    assert breaker_counts(cfg, ps, None, direction=direction) == (3, 3, 0)
    parts = [breaker_counts(cfg, ps[:2], None, direction=direction[:2]),
             breaker_counts(cfg, ps[2:], None, direction=direction[2:])]  # fmt: skip
    assert tuple(map(sum, zip(*parts, strict=True))) == (3, 3, 0)
    assert breaker_counts(cfg, ps, None) == (4, 0, 4)  # without a direction: the short model


def _signal_reference(cfg: DecisionConfig, ps, pl, direction, ret) -> tuple[str, int]:  # noqa: ANN001
    """The documented signal gates with a direction model, one row at a time."""
    avail = np.isfinite(direction) and np.isfinite(pl).all()
    if cfg.max_trap_prob is not None:
        if np.isfinite(direction) and not np.isfinite(ps).all():
            return "no_model", 0  # the trap detector is out: never the fallback
        avail = avail and np.isfinite(ps).all()
    if not avail:
        d = int(np.sign(ret)) if np.isfinite(ret) else 0
        return ("traded_fb" if d else "fallback"), d
    d = int(np.sign(direction))
    if d == 0 or abs(direction) < cfg.min_direction:
        return "min_confidence", 0
    if cfg.max_trap_prob is not None and ps[3 if d > 0 else 4] >= cfg.max_trap_prob:
        return "trap", 0
    if np.sign(pl[0] - pl[1]) != d:
        return "disagree", 0
    return "traded", d


def test_vectorised_direction_gates_match_a_per_row_reference():
    rng = np.random.default_rng(5)
    n = 2000
    ps = rng.dirichlet([1, 1, 1, 1, 1], size=n)
    pl = rng.dirichlet([1, 1, 1], size=n)
    direction = rng.normal(0, 0.3, n)
    direction[rng.random(n) < 0.05] = np.nan
    direction[rng.random(n) < 0.02] = 0.0
    ps[rng.random(n) < 0.05] = np.nan
    pl[rng.random(n) < 0.03] = np.nan
    ret = rng.normal(0, 0.001, n)
    ret[rng.random(n) < 0.1] = np.nan
    syms = [f"S{i}" for i in range(n)]
    for trap in (None, 0.3):
        cfg = DecisionConfig(max_trap_prob=trap, circuit_breaker_share=None, vol_halt_k=None)
        d = decide(cfg, DecisionState(), AT, syms, ps, pl, ret, direction=direction)
        want = [_signal_reference(cfg, ps[i], pl[i], direction[i], ret[i]) for i in range(n)]
        got = list(zip(d.gate_names.tolist(), d.decision.tolist(), strict=True))
        assert got == [("fallback", w[1]) if w[0] == "traded_fb" else w for w in want]
        assert {"traded", "fallback", "min_confidence", "disagree"} <= {g for g, _ in got}
        assert ("trap" in {g for g, _ in got}) == (trap is not None)


@pytest.mark.parametrize("by_direction", [True, False])
@pytest.mark.parametrize("trap", [None, 0.3])
@pytest.mark.parametrize("agree", [True, False])
def test_inputs_read_names_every_input_that_can_change_a_decision(by_direction, trap, agree):
    """The live scorer evaluates only :func:`inputs_read`'s models before it publishes: an input
    outside that set, given as random probabilities, NaN or not at all, never changes a
    decision, a gate, a score or the breaker counts; an input inside it does change some."""
    from tickml.decision import inputs_read

    rng = np.random.default_rng(7)
    n = 400
    syms = [f"S{i:03d}" for i in range(n)]
    cfg = DecisionConfig(max_trap_prob=trap, require_agreement=agree, circuit_breaker_share=0.95)
    reads = inputs_read(cfg, by_direction)
    assert ("direction" in reads) == by_direction

    def probs(k: int) -> np.ndarray:
        p = rng.dirichlet(np.ones(k), size=n)
        p[rng.random(n) < 0.05] = np.nan  # some rows without a model
        return p

    real = {"p_short": probs(5), "p_long": probs(3),
            "direction": rng.normal(0, 0.3, n) if by_direction else None}  # fmt: skip
    ret = rng.normal(0, 1, n)
    age = np.where(rng.random(n) < 0.05, 500.0, 10.0)

    def run(inputs: dict) -> tuple:
        d = decide(cfg, DecisionState(), AT, syms, inputs["p_short"], inputs["p_long"],
                   last_return=ret, recent_vol=np.ones(n), feature_age=age,
                   direction=inputs["direction"])  # fmt: skip
        bc = breaker_counts(cfg, inputs["p_short"], inputs["p_long"], age, inputs["direction"])
        return d.decision.tolist(), d.gate_names.tolist(), d.score.tobytes(), bc

    want = run(real)
    for name in ("p_short", "p_long"):
        for other in (None, np.full_like(real[name], np.nan), probs(real[name].shape[1])):
            got = run({**real, name: other})
            if name in reads:  # missing or another draw: some decision changes
                assert got != want, f"{name} is read, yet replacing it changed nothing"
            else:
                assert got == want, f"{name} is not read, yet changed the decisions"
    if by_direction:
        assert run({**real, "direction": -real["direction"]}) != want
