"""The decision function itself: :func:`decide` (one cross-section, one timestamp; the rules are
the package doc's) and :func:`breaker_counts` (a part of the universe's circuit-breaker counts)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tickml.decision.config import DecisionConfig, day_cache, td_ns
from tickml.decision.state import (
    CIRCUIT_BREAKER,
    COOLDOWN,
    DISAGREE,
    FALLBACK,
    LONG_CLASSES,
    MAX_TRADES,
    MIN_CONFIDENCE,
    NO_MODEL,
    NO_TRADE_WINDOW,
    SHORT_CLASSES,
    STALE,
    TRADED,
    TRAP,
    VOL_HALT,
    Decisions,
    DecisionState,
)
from tickml.market import ts_ns

_CANDIDATE = -1  # internal: a model signal not yet through the risk gates
_CANDIDATE_FB = -2  # internal: a fallback signal not yet through the risk gates


def _column(values: Any, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    a = np.asarray(values, dtype=np.float64)
    if a.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
    return a


def _proba(values: Any, n: int, k: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    a = np.asarray(values, dtype=np.float64)
    if a.shape != (n, k):
        raise ValueError(f"{name} must have shape ({n}, {k}), got {a.shape}")
    return a


def decide(
    config: DecisionConfig,
    state: DecisionState,
    timestamp: Any,
    symbols: Sequence[str] | np.ndarray,
    p_short: Any = None,
    p_long: Any = None,
    last_return: Any = None,
    recent_vol: Any = None,
    feature_age: Any = None,
    breaker_counts: tuple[int, int, int] | None = None,
    direction: Any = None,
) -> Decisions:
    """Decide for every symbol at ``timestamp`` and update ``state`` (see the module doc).

    ``feature_age`` is in seconds (None: all fresh). Timestamps must not go backwards for one
    state. A missing ``p_short`` (None) means the model is unavailable for every symbol.
    ``breaker_counts``: the circuit breaker's (scored, up, down) over the whole universe when
    this call sees only a part of it (the sum of :func:`breaker_counts` of every part; None: the
    call's own symbols are the universe). ``direction``: the direction model's prediction (n,)
    (None: no direction model, the short model calls the trade; see the module doc).
    """
    ts = ts_ns(timestamp)
    if state.last_ts_ns is not None and ts < state.last_ts_ns:
        raise ValueError(
            f"timestamp {pd.Timestamp(ts, tz='UTC')} is before the state's last call "
            f"{pd.Timestamp(state.last_ts_ns, tz='UTC')}"
        )
    n = len(symbols)
    idx = state.resolve(symbols)
    ps = _proba(p_short, n, len(SHORT_CLASSES), "p_short")
    pl = _proba(p_long, n, len(LONG_CLASSES), "p_long")
    ret = _column(last_return, n, "last_return")
    vol = _column(recent_vol, n, "recent_vol")
    age = _column(feature_age, n, "feature_age")
    dirn = _column(direction, n, "direction")

    # a new local day resets the daily counts
    day = state._day
    if day is None or day.config is not config or not (day.start < ts <= day.end):
        day = day_cache(config, ts)
        state._day = day
        if state.day_start_ns != day.start:
            state.trades_today[:] = 0
            state.trades_today_total = 0
            state.day_start_ns, state.day_end_ns = day.start, day.end

    # signal gates ---------------------------------------------------------------------------
    if age is None:
        stale = np.zeros(n, dtype=bool)
    else:
        stale = ~(age <= pd.Timedelta(config.max_feature_age).total_seconds())
    nan = np.full(n, np.nan)
    long_score = nan if pl is None else pl[:, 0] - pl[:, 1]
    trap: np.ndarray | None
    outage = None  # rows the trap gate cannot check: the short model is out (no_model)
    if dirn is None:
        score, available, confident, trap = _short_signal(config, ps, n)
    else:
        score, available, confident, trap = _direction_signal(config, ps, dirn)
        if config.max_trap_prob is not None:
            outage = np.isfinite(dirn) & ~available
    if config.require_agreement:
        available &= np.isfinite(long_score)
    direction = np.sign(score)
    if config.require_agreement and pl is not None:
        pl_dir = np.where(direction > 0, pl[:, 0], pl[:, 1])
        agree = (np.sign(long_score) == direction) & (pl_dir >= config.long_min_confidence)
    else:
        agree = np.ones(n, dtype=bool)
    if ret is None:
        fb_dir = np.zeros(n)
    else:
        fb_dir = np.where(np.isfinite(ret), np.sign(ret), 0.0)

    # lowest priority first; each later assignment overrides (np.select is 3x slower here)
    gate = np.full(n, _CANDIDATE_FB, dtype=np.int8)
    gate[fb_dir == 0] = FALLBACK
    if not config.fallback:
        gate[:] = NO_MODEL
    if outage is not None:
        gate[outage] = NO_MODEL  # a short-model outage must not become fallback trading
    gate[available] = _CANDIDATE
    gate[available & ~agree] = DISAGREE
    if trap is not None:
        gate[available & trap] = TRAP
    gate[available & ~confident] = MIN_CONFIDENCE
    gate[stale] = STALE
    want = np.where(available, direction, fb_dir).astype(np.int8)
    score = np.where(stale | ~np.isfinite(score), np.nan, score)

    # vol halt: a flash move halts the symbol from now on, whatever the signal
    if config.vol_halt_k is not None and ret is not None and vol is not None:
        with np.errstate(invalid="ignore"):
            flash = (np.abs(ret) > config.vol_halt_k * vol) & (vol > 0) & ~stale
        if flash.any():
            state.halt_until_ns[idx[flash]] = ts + td_ns(config.vol_halt_duration)

    # risk gates, on candidates only -------------------------------------------------------
    tripped = False
    if config.circuit_breaker_share is not None:
        n_scored, up, down = breaker_counts or _breaker_counts(score, available & ~stale)
        if n_scored >= config.circuit_breaker_min_symbols:
            tripped = max(up, down) > config.circuit_breaker_share * n_scored
    cand = gate < 0
    if cand.any():
        in_window = any(lo < ts <= hi for lo, hi in day.blocked)
        if tripped:
            gate[cand] = CIRCUIT_BREAKER
        elif in_window:
            gate[cand] = NO_TRADE_WINDOW
        else:
            halted = state.halt_until_ns[idx] > ts
            cooling = state.last_trade_ns[idx] > ts - td_ns(config.cooldown)
            if config.max_trades_per_day is not None:
                maxed = state.trades_today[idx] >= config.max_trades_per_day
            else:
                maxed = np.zeros(n, dtype=bool)
            gate[cand & maxed] = MAX_TRADES
            gate[cand & cooling] = COOLDOWN
            gate[cand & halted] = VOL_HALT
            passing = np.flatnonzero(gate < 0)
            cap = config.max_trades_per_day_universe
            if cap is not None and passing.size > cap - state.trades_today_total:
                slots = max(0, cap - state.trades_today_total)
                priority = np.nan_to_num(np.abs(score[passing]), nan=-1.0)
                order = np.argsort(-priority, kind="stable")
                gate[passing[order[slots:]]] = MAX_TRADES
                passing = np.sort(passing[order[:slots]])
            if passing.size:
                gate[passing] = np.where(gate[passing] == _CANDIDATE, TRADED, FALLBACK)
                sel = idx[passing]
                state.last_trade_ns[sel] = ts
                state.trades_today[sel] += 1
                state.trades_today_total += int(passing.size)
    decision = np.where((gate == TRADED) | (gate == FALLBACK), want, 0).astype(np.int8)
    state.last_ts_ns = ts
    return Decisions(
        timestamp_ns=ts,
        symbols=symbols,
        score=score,
        long_score=long_score,
        decision=decision,
        gate=gate,
        circuit_breaker_tripped=tripped,
    )


def _short_signal(
    config: DecisionConfig, ps: np.ndarray | None, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, None]:
    """The short model calls the trade: (score, available, confident, no trap gate)."""
    if ps is None:
        score = p_dir = np.full(n, np.nan)
    else:
        score = ps[:, 0] - ps[:, 1]
        p_dir = np.where(score > 0, ps[:, 0], ps[:, 1])
    confident = (p_dir >= config.min_confidence) & (np.abs(score) >= config.min_score)
    confident &= score != 0
    return score, np.isfinite(score), confident, None


def _direction_signal(
    config: DecisionConfig, ps: np.ndarray | None, dirn: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The direction model calls the trade, the short model detects traps: (score, available,
    confident, trap)."""
    available = np.isfinite(dirn)
    confident = (np.abs(dirn) >= config.min_direction) & (dirn != 0)
    if config.max_trap_prob is None:
        return dirn, available, confident, None
    if ps is None:
        return dirn, np.zeros(dirn.size, dtype=bool), confident, None
    p_trap = np.where(dirn > 0, ps[:, 3], ps[:, 4])  # TRAP_UP for a long, TRAP_DOWN a short
    available &= np.isfinite(ps).all(axis=1)
    return dirn, available, confident, p_trap >= config.max_trap_prob


def inputs_read(config: DecisionConfig, direction: bool) -> frozenset[str]:
    """The model inputs :func:`decide` (and :func:`breaker_counts`) read under ``config``:
    names among ``"p_short"``, ``"p_long"``, ``"direction"``; ``direction``: a direction model
    is given. An input not in the set never changes a decision (a caller may pass it later, or
    not at all: the live scorer evaluates the other models after it published)."""
    need = set()
    if direction:
        need.add("direction")
        if config.max_trap_prob is not None:
            need.add("p_short")  # the trap detector
    else:
        need.add("p_short")
    if config.require_agreement:
        need.add("p_long")
    return frozenset(need)


def _breaker_counts(score: np.ndarray, scored: np.ndarray) -> tuple[int, int, int]:
    return int(scored.sum()), int((score[scored] > 0).sum()), int((score[scored] < 0).sum())


def breaker_counts(
    config: DecisionConfig,
    p_short: Any,
    p_long: Any = None,
    feature_age: Any = None,
    direction: Any = None,
) -> tuple[int, int, int]:
    """(scored, up, down) of one part of the universe, as :func:`decide` counts them for the
    circuit breaker: rows with a model score (and a long score under ``require_agreement``) and
    fresh features, by the sign of the score (``P_short(UP) - P_short(DOWN)``, or ``direction``
    when given, as :func:`decide` takes it). Parts' counts add up."""
    if p_short is None and direction is None:
        return 0, 0, 0
    ps = None if p_short is None else np.asarray(p_short, dtype=np.float64)
    if direction is None:
        assert ps is not None
        n = len(ps)
        score = ps[:, 0] - ps[:, 1] if n else np.zeros(0)
        available = np.isfinite(score)
    else:
        dirn = np.asarray(direction, dtype=np.float64)
        n = dirn.size
        score, available, _, _ = _direction_signal(config, ps, dirn)
    if config.require_agreement:
        pl = None if p_long is None else np.asarray(p_long, dtype=np.float64)
        available &= np.zeros(n, bool) if pl is None else np.isfinite(pl[:, 0] - pl[:, 1])
    age = _column(feature_age, n, "feature_age")
    if age is not None:
        available &= age <= pd.Timedelta(config.max_feature_age).total_seconds()
    return _breaker_counts(score, available)
