"""The decision function (risk gate): model outputs of a cross-section of symbols at one
timestamp -> LONG / SHORT / NONE per symbol, and the gate that decided it.

This is THE function both the backtest (:mod:`tickml.backtest`) and the live scoring worker
call, once per sampling timestamp, with a :class:`DecisionState` that carries per-symbol state
(cooldowns, trade counts, halts) from one call to the next. Everything is vectorised over the
cross-section (no per-symbol Python loop); the state is JSON-serialisable (no pickle).

Inputs per call (arrays aligned with ``symbols``):

* ``p_short``: short-horizon model probabilities, (n, 5) in :data:`SHORT_CLASSES` order
  (UP, DOWN, FLAT, TRAP_UP, TRAP_DOWN); ``None`` when the model is unavailable;
* ``p_long``: long-horizon model probabilities, (n, 3) in :data:`LONG_CLASSES` order;
* ``direction``: optional, the direction model's prediction (n,) (a regression of the
  volatility-normalized forward return over the short horizon; units: volatilities);
* ``last_return``: the mid return over the last sampling interval;
* ``recent_vol``: recent volatility of interval returns (same units);
* ``feature_age``: seconds between ``timestamp`` and the features' event timestamp.

Outputs per symbol (:class:`Decisions`): ``score`` (NaN when the row was not scored): the
direction model's prediction when ``direction`` is given, else ``P_short(UP) - P_short(DOWN)``;
``long_score = P_long(UP) - P_long(DOWN)``, the decision (+1 LONG, -1 SHORT, 0 NONE) and the
gate.

**The role of each model**:

* **without a direction model** (``direction`` None; a champion of two classifiers): the short
  5-class model calls the trade: its direction is the sign of ``score``, its confidence
  ``P_short(direction)`` and ``|score|`` (gate ``min_confidence``);
* **with a direction model** (``direction`` given): the direction model calls the trade:
  ``score`` IS its prediction, the direction its sign, and ``|direction| < min_direction``
  (or 0) is ``min_confidence``; the short 5-class model becomes the **trap detector**: with
  ``max_trap_prob`` set, a long whose ``P_short(TRAP_UP)`` (a short: ``P_short(TRAP_DOWN)``)
  is >= ``max_trap_prob`` is blocked (gate ``trap``: the move likely runs its way, then
  reverses); the short probabilities' own direction and confidence are not used. A row whose
  direction is NaN has no model (as a row with non-finite short probabilities has without
  one): ``no_model`` / ``fallback``; a row with a finite direction whose short probabilities
  are non-finite while the trap gate is on is ``no_model`` (never the fallback: a short-model
  outage must not turn into momentum trading);
* **the long 3-class model** is the **horizon confirmation**, in both cases only a veto: it
  never creates a trade and never changes the score: with ``require_agreement`` the long score
  must have the same (strict) sign as ``score`` and ``P_long(direction) >=
  long_min_confidence``. Without it the long model is ignored.

Gates, in the order they are applied (the first that applies names the outcome):

=================  =============================================================================
``stale``          feature age > ``max_feature_age`` (or unknown): never scored, never traded
``no_model``       the model is unavailable for the row (non-finite short probabilities, or
                   long ones under ``require_agreement``) and the fallback is off; or, with
                   a direction model and the trap gate on (``max_trap_prob``), the direction is
                   finite but the short probabilities are not (the trap detector is out): never
                   the fallback
``fallback``       model unavailable, "last move persists" decided: LONG if the last return
                   > 0, SHORT if < 0 (subject to the risk gates below); NONE when it is 0/NaN
``min_confidence`` ``P_short(direction) < min_confidence`` or ``|score| < min_score`` (or 0);
                   with a direction model: ``|direction| < min_direction`` (or 0)
``trap``           with a direction model and ``max_trap_prob``: the short model's probability
                   of the trap in the trade's direction is >= ``max_trap_prob``
``disagree``       ``require_agreement`` and the long model does not back the direction
``circuit_breaker`` the share of scored symbols with one score sign exceeds
                   ``circuit_breaker_share`` (with at least ``circuit_breaker_min_symbols``
                   scored): nothing trades at this timestamp
``no_trade_window`` the timestamp is in a no-trade window (first/last minutes of the session,
                   outside the session, or a configured local-time window)
``vol_halt``       a flash move (``|last_return| > vol_halt_k * recent_vol``) halted the symbol:
                   no new trade for ``vol_halt_duration`` from that timestamp (this one included)
``cooldown``       the symbol traded less than ``cooldown`` ago
``max_trades``     the symbol has ``max_trades_per_day`` trades today (local day), or the
                   universe-wide cap is reached (the highest ``|score|`` win the remaining slots)
``traded``         a model signal passed every gate
=================  =============================================================================

The signal gates (stale ... disagree) come before the risk gates, so gate counts tell "the
model wanted to trade but a risk rule blocked it" apart from "no signal". A "trade" here is an
emitted signal: it starts the cooldown and counts towards the daily limits whatever the
executor does with it (the backtest opens, extends or reverses a position). The circuit breaker
sees the symbols of the call, unless the caller passes the universe's counts
(``breaker_counts``: live scorers that each own a part of the universe add up their parts'
:func:`breaker_counts`, so the breaker is the same as one call over the whole universe).

Modules: :mod:`tickml.decision.config` (:class:`DecisionConfig`), :mod:`tickml.decision.state`
(class orders, :data:`GATES`, :class:`DecisionState`, :class:`Decisions`),
:mod:`tickml.decision.gate` (:func:`decide`, :func:`breaker_counts`); import them from here.
"""

from tickml.decision.config import DecisionConfig, TimeWindow
from tickml.decision.gate import breaker_counts, decide, inputs_read
from tickml.decision.state import (
    CIRCUIT_BREAKER,
    COOLDOWN,
    DISAGREE,
    FALLBACK,
    GATES,
    LONG,
    LONG_CLASSES,
    MAX_TRADES,
    MIN_CONFIDENCE,
    NEVER,
    NO_MODEL,
    NO_TRADE_WINDOW,
    NONE,
    SHORT,
    SHORT_CLASSES,
    STALE,
    TRADED,
    TRAP,
    VOL_HALT,
    Decisions,
    DecisionState,
)

__all__ = [
    "CIRCUIT_BREAKER",
    "COOLDOWN",
    "DISAGREE",
    "FALLBACK",
    "GATES",
    "LONG",
    "LONG_CLASSES",
    "MAX_TRADES",
    "MIN_CONFIDENCE",
    "NEVER",
    "NONE",
    "NO_MODEL",
    "NO_TRADE_WINDOW",
    "SHORT",
    "SHORT_CLASSES",
    "STALE",
    "TRADED",
    "TRAP",
    "VOL_HALT",
    "DecisionConfig",
    "DecisionState",
    "Decisions",
    "TimeWindow",
    "breaker_counts",
    "decide",
    "inputs_read",
]
