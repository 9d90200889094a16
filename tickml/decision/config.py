"""The decision function's configuration: :class:`DecisionConfig` (every rule of the risk gate,
documented field by field) and the local day's no-trade intervals it implies."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tickml.market import OnMarket


class TimeWindow(BaseModel):
    """A local time-of-day window [start, end); end <= start wraps past midnight."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: dt.time = Field(description="local start time (inclusive)")
    end: dt.time = Field(description="local end time (exclusive)")


class DecisionConfig(OnMarket):
    """Every rule of the risk gate. The backtest and the live worker read only this."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_confidence: float = Field(
        default=0.4,
        ge=0.0,
        le=1.0,
        description="minimum short-model probability of the called class (UP for LONG, DOWN "
        "for SHORT); the direction is the sign of score = P(UP) - P(DOWN)",
    )
    min_score: float = Field(
        default=0.1,
        ge=0.0,
        le=1.0,
        description="minimum |score| (P(UP) - P(DOWN) of the short model); a zero score never "
        "trades",
    )
    min_direction: float = Field(
        default=0.1,
        ge=0.0,
        description="with a direction model: minimum |direction| (its prediction of the "
        "volatility-normalized forward return, in volatilities) to trade; a zero prediction "
        "never trades. 0.1 is set a priori (a tenth of the horizon's volatility), not tuned",
    )
    max_trap_prob: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="with a direction model: block a trade when the short model's probability "
        "of the trap in its direction (TRAP_UP for a long, TRAP_DOWN for a short) is >= this "
        "(gate 'trap'; None: off, the short model is not consulted)",
    )
    require_agreement: bool = Field(
        default=True,
        description="the long model must agree: sign(P_long(UP) - P_long(DOWN)) equals the "
        "short direction (the long model is a veto only)",
    )
    long_min_confidence: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="with require_agreement: minimum long-model probability of the direction",
    )
    cooldown: dt.timedelta = Field(
        default=dt.timedelta(minutes=15),
        description="per symbol: no new trade until this long after its last trade",
    )
    max_trades_per_day: int | None = Field(
        default=10, ge=0, description="per symbol and local day (None: no limit)"
    )
    max_trades_per_day_universe: int | None = Field(
        default=None,
        ge=0,
        description="whole universe per local day (None: no limit); when fewer slots remain "
        "than candidates, the largest |score| win",
    )
    no_trade_after_open: dt.timedelta = Field(
        default=dt.timedelta(minutes=5),
        description="no trades in the first this-long of the session (timestamps <= open + "
        "this); the first rows' features see only a few minutes of the day",
    )
    no_trade_before_close: dt.timedelta = Field(
        default=dt.timedelta(minutes=15),
        description="no trades in the last this-long of the session (timestamps > close - "
        "this): a position would not live its horizon before the close",
    )
    no_trade_windows: tuple[TimeWindow, ...] = Field(
        default=(),
        description="further local time windows without trading (e.g. around a scheduled "
        "announcement)",
    )
    vol_halt_k: float | None = Field(
        default=6.0,
        gt=0,
        description="flash move: |last_return| > k x recent_vol halts the symbol (None: off)",
    )
    vol_halt_duration: dt.timedelta = Field(
        default=dt.timedelta(minutes=10), description="how long a flash move halts new trades"
    )
    circuit_breaker_share: float | None = Field(
        default=0.9,
        gt=0.5,
        le=1.0,
        description="no trades at a timestamp where more than this share of the scored "
        "symbols have scores of one sign (None: off)",
    )
    circuit_breaker_min_symbols: int = Field(
        default=20,
        ge=1,
        description="the circuit breaker needs at least this many scored symbols (a handful of "
        "symbols agree by chance)",
    )
    max_feature_age: dt.timedelta = Field(
        default=dt.timedelta(minutes=2),
        description="features older than this (timestamp - feature event_timestamp) are "
        "stale: never scored, never traded",
    )
    fallback: bool = Field(
        default=True,
        description="when the model is unavailable for a symbol, trade 'the last move "
        "persists' (sign of last_return) through the risk gates; off: gate 'no_model'",
    )

    @model_validator(mode="after")
    def _check(self) -> DecisionConfig:
        for name in ("cooldown", "no_trade_after_open", "no_trade_before_close"):
            if getattr(self, name) < dt.timedelta(0):
                raise ValueError(f"{name} must be >= 0")
        if self.vol_halt_duration < dt.timedelta(0):
            raise ValueError("vol_halt_duration must be >= 0")
        return self


def td_ns(value: dt.timedelta) -> int:
    return int(pd.Timedelta(value).value)


@dataclass
class DayCache:
    """The current local day's bounds and its no-trade intervals (UTC ns), per config."""

    config: DecisionConfig
    start: int  # exclusive (local midnight)
    end: int  # inclusive (next local midnight)
    blocked: list[tuple[int, int]]  # [lo, hi) intervals (lo, hi] for session-relative ones


def day_cache(config: DecisionConfig, ts_ns: int) -> DayCache:
    market = config.market
    day = market.local_day(ts_ns)
    start, end, o, c = market.day_bounds(day)
    blocked: list[tuple[int, int]] = []
    if market.has_session:
        # rows are stamped at interval closes: the session's rows are (open, close]
        blocked.append((start, o + td_ns(config.no_trade_after_open)))  # (start, open+x]
        blocked.append((c - td_ns(config.no_trade_before_close), end))  # (close-x, end]
    for w in config.no_trade_windows:
        lo = market.local_ns(day, w.start)
        wraps = w.end <= w.start
        hi = market.local_ns(day, w.end, plus_days=1 if wraps else 0)
        # [lo, hi) as (lo - 1, hi - 1]
        blocked.append((lo - 1, hi - 1))
        if wraps:  # the part of yesterday's window that runs into today
            prev_lo = market.local_ns(day, w.start, plus_days=-1)
            blocked.append((prev_lo - 1, market.local_ns(day, w.end) - 1))
    return DayCache(config, start, end, blocked)
