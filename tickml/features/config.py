"""Configuration of the feature engine: which families, which windows, how rows are sampled."""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import ConfigDict, Field, field_validator, model_validator

from tickml.market import OnMarket

Family = Literal[
    "price",
    "order_flow",
    "microstructure",
    "blocks",
    "session",
    "stationarity",
    "cross_asset",
    "regime",
    "normalized",
]
ALL_FAMILIES: tuple[Family, ...] = (
    "price",
    "order_flow",
    "microstructure",
    "blocks",
    "session",
    "stationarity",
    "cross_asset",
    "regime",
    "normalized",
)

#: fracdiff orders chosen by :func:`tickml.features.fracdiff_choice.choose_fracdiff_orders`
#: (``tickml fracdiff-d``) on the engine's own per-day series: each feature's values at the
#: 1-minute rows of the regular session, per symbol-day (the engine resets every day), the
#: smallest d on a 0.05 grid whose fracdiff passes ADF at 5% on every symbol-day. Measured on
#: equity-ticks-2013 (AIG, BAC, IBM, SPY), on the days that are never test days of the default
#: walk-forward (2013-10-07..08, 8 symbol-days; the whole week, 20 symbol-days, gives the same
#: orders). Bar closes (30-bar window): d = 0.60 passes 8/8 (20/20 on the week); 0.55 passes 7/8.
#: The former 0.75 passed 8/8 too, with less memory kept.
DEFAULT_FRACDIFF_D = 0.6
#: Ticks (180-tick window): no d < 1 passes every symbol-day (0.75: 3/8, 7/20 on the week; the
#: best d < 1 passes 4/8, 12/20). The truncated weights' sum, 0.0056 at d = 0.75 and 0.0004 at
#: 0.95, keeps a share of the log price level in the feature, which at the 1-minute rows
#: dominates on large-tick names (BAC: a cent is 6-7 bps, the mid rarely moves between rows).
#: At d = 1 the weights sum to 0: the feature is the last tick's log return, stationary on 8/8
#: (2 of them, BAC's, constant 0 at every row: its mid never moved on a row's last tick; on the
#: week 6 of 20: BAC every day, AIG once).
DEFAULT_FRACDIFF_TICK_D = 1.0


class FeatureConfig(OnMarket):
    """Everything that changes what the feature engine computes. Both modes read only this."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    families: tuple[Family, ...] = Field(
        ALL_FAMILIES, description="feature families switched on (the others are not output)"
    )
    features: tuple[str, ...] | None = Field(
        None,
        description="output only these features of the enabled families (None: all); "
        "features they are computed from are computed too, not output",
    )
    tick_windows: tuple[int, ...] = Field(
        (20, 60, 180), description="windows over the last N ticks (any event with a price)"
    )
    trade_windows: tuple[int, ...] = Field(
        (20, 60, 180), description="windows over the last N trades (order-flow family)"
    )
    time_windows_s: tuple[int, ...] = Field(
        (10, 60, 300), description="windows in seconds, on a one-second bucket grid"
    )
    n_blocks: int = Field(6, ge=2, description="number of tick blocks (blocks family)")
    block_size: int = Field(30, ge=2, description="ticks per block")
    interval: str = Field(
        "1min", description="sampling interval and bar length (pandas offset, divides a day)"
    )
    every_n_ticks: int | None = Field(
        None, ge=1, description="sample a row every N ticks instead of on the interval grid"
    )
    session_only: bool = Field(
        True, description="emit rows only at times inside the regular session (open, close]"
    )
    leader: str | None = Field("SPY", description="cross-asset leader symbol (None: off)")
    leader_lags: tuple[int, ...] = Field((1, 5, 15), description="leader return horizons, in bars")
    corr_bars: int = Field(30, ge=3, description="bars in the rolling leader correlation/beta")
    atr_bars: int = Field(14, ge=1, description="bars in the average true range")
    volume_z_bars: int = Field(30, ge=2, description="bars in the bar-volume z-score")
    fracdiff_d: float = Field(
        DEFAULT_FRACDIFF_D,
        ge=0.0,
        le=1.0,
        description="fractional differencing order of the bar fracdiff (choose it on training "
        "days: tickml fracdiff-d)",
    )
    fracdiff_width: int = Field(30, ge=1, description="fixed window of the bar fracdiff, bars")
    fracdiff_tick_d: float = Field(
        DEFAULT_FRACDIFF_TICK_D,
        ge=0.0,
        le=1.0,
        description="fractional differencing order of the tick fracdiff (choose it on training "
        "days: tickml fracdiff-d)",
    )
    fracdiff_tick_width: int = Field(
        180, ge=1, description="fixed window of the tick fracdiff, ticks"
    )
    large_trade_size: float | None = Field(
        None, gt=0, description="absolute large-trade size; None: adaptive (see multiple)"
    )
    large_trade_mult: float = Field(
        5.0, gt=0, description="large trade: size >= this x EWMA of trade size (adaptive)"
    )
    size_ewma_halflife: float = Field(500.0, gt=0, description="trade-size EWMA half-life, trades")
    vol_ewma_halflife: float = Field(
        2000.0, gt=0, description="half-life of the regime's baseline volatility EWMA, ticks"
    )
    profile_tick: float = Field(0.01, gt=0, description="price bin of the volume profile")
    profile_bins: int = Field(2001, ge=3, description="bins of the volume profile")
    value_area: float = Field(0.7, gt=0, lt=1, description="volume share of the value area")

    @field_validator("tick_windows", "trade_windows", "time_windows_s", "leader_lags")
    @classmethod
    def _positive_sorted(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(int(x) < 1 for x in v):
            raise ValueError("windows must be a non-empty tuple of positive integers")
        return tuple(sorted({int(x) for x in v}))

    @field_validator("families")
    @classmethod
    def _unique(cls, v: tuple[Family, ...]) -> tuple[Family, ...]:
        return tuple(f for f in ALL_FAMILIES if f in v)

    @model_validator(mode="after")
    def _check(self) -> FeatureConfig:
        ns = self.interval_ns
        if ns < 1_000_000_000 or ns % 1_000_000_000 or 86_400_000_000_000 % ns:
            raise ValueError("interval must be whole seconds and divide a day")
        if min(self.tick_windows) < 2 or min(self.trade_windows) < 2:
            raise ValueError("tick and trade windows need at least 2 ticks")
        return self

    @property
    def interval_ns(self) -> int:
        return int(pd.Timedelta(self.interval).value)

    @property
    def has_session(self) -> bool:
        return self.market.has_session

    def enabled(self, family: str) -> bool:
        return family in self.families

    def value_digest(self) -> str:
        """sha256 (16 hex) of every setting that can change a feature's value under an
        unchanged name (windows, bars, fracdiff orders, leader, market, ...): everything but
        the switches ``families`` and ``features``, which only add or remove names. A model
        registry version records it; the live scorer refuses a champion trained under another
        digest (its features would be served different values)."""
        import hashlib
        import json

        cfg = self.model_dump(mode="json", exclude={"families", "features"})
        text = json.dumps(cfg, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]
