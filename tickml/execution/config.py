"""Every rule of the execution model: holding, exits, sizing, exposure, risk and costs."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ExecutionConfig(BaseModel):
    """What the position book does with decisions (see :mod:`tickml.execution`). The defaults
    are the unit-size book without stops, caps or risk limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    horizon: dt.timedelta = Field(
        default=dt.timedelta(minutes=15),
        description="holding period: the short model's horizon (time exit)",
    )
    fee_bps: float = Field(
        default=0.5, ge=0.0, description="fee per side, basis points of the traded value"
    )
    slippage_bps: float = Field(
        default=0.0,
        ge=0.0,
        description="slippage per side, basis points of the traded value per unit of size / "
        "displayed depth (size over the bid size for a sale, the ask size for a purchase; "
        "unknown depth counts as size = depth); 0 = off",
    )
    notional: float = Field(
        default=1.0,
        gt=0.0,
        description="value of a unit position; P&L, caps and risk are in these units",
    )
    sizing: Literal["unit", "volatility"] = Field(
        default="unit",
        description="unit: every position is `notional`; volatility: risk_per_trade / the "
        "volatility known at entry (x signal strength with strength_scaled)",
    )
    risk_per_trade: float = Field(
        default=0.001,
        gt=0.0,
        description="volatility sizing: the P&L of a one-sigma interval move of a position "
        "(value = risk_per_trade / (recent_vol x returns_unit))",
    )
    returns_unit: float = Field(
        default=1e-4,
        gt=0.0,
        description="value of one unit of recent_vol / last_return as a fraction (1e-4: the "
        "pipeline's returns are in basis points)",
    )
    strength_scaled: bool = Field(
        default=False,
        description="volatility sizing: multiply by the signal strength |score| (fallback rows, "
        "which have no score, count as 1)",
    )
    max_strength: float = Field(
        default=1.0,
        gt=0.0,
        description="strength_scaled: the strength multiplier is min(|score|, this). A short-"
        "model score is at most 1; a direction model's is in volatilities and unbounded, so "
        "without a cap one large prediction would size a position many times the others",
    )
    max_position_value: float | None = Field(
        default=None, gt=0.0, description="cap on one position's value at entry (None: none)"
    )
    max_gross: float | None = Field(
        default=None,
        gt=0.0,
        description="cap on the book's gross exposure, sum |value| at the marks (None: none)",
    )
    max_net: float | None = Field(
        default=None,
        ge=0.0,
        description="cap on the book's net exposure, |sum of signed values| (None: none)",
    )
    var_limit: float | None = Field(
        default=None,
        gt=0.0,
        description="portfolio risk limit: the book's value at risk (normal, var_confidence, "
        "over var_horizon_bars) from the rolling covariance of the symbols' returns (None: off)",
    )
    var_confidence: float = Field(default=0.99, gt=0.5, lt=1.0, description="VaR confidence")
    var_horizon_bars: int = Field(
        default=390,
        ge=1,
        description="VaR horizon in intervals (square-root-of-time scaling; 390 one-minute "
        "bars = one US equity session)",
    )
    var_window: int = Field(
        default=60,
        ge=2,
        description="intervals of returns in the rolling covariance (the window restarts each "
        "local day, as the recent volatility: a day is reproducible from its own rows)",
    )
    var_min_obs: int = Field(
        default=10,
        ge=2,
        description="with fewer intervals in the window the risk is unknown: new positions "
        "are refused while var_limit is set (the first intervals of every day)",
    )
    risk_action: Literal["scale", "refuse"] = Field(
        default="scale",
        description="when a cap or the risk limit would be breached: scale the new positions "
        "down to fit, or refuse them",
    )
    min_position_value: float = Field(
        default=0.0,
        ge=0.0,
        description="a position scaled below this value is refused (0: any positive size)",
    )
    stop_loss: float | None = Field(
        default=None,
        gt=0.0,
        description="stop-loss distance from the entry mid, in exit_unit (None: none)",
    )
    take_profit: float | None = Field(
        default=None,
        gt=0.0,
        description="take-profit distance from the entry mid, in exit_unit (None: none)",
    )
    exit_unit: Literal["points", "volatility"] = Field(
        default="points",
        description="points: price units (a 20-point stop); volatility: multiples of the "
        "volatility known at entry, as a price distance (k x recent_vol x returns_unit x mid)",
    )

    @model_validator(mode="after")
    def _check(self) -> ExecutionConfig:
        if self.horizon <= dt.timedelta(0):
            raise ValueError("horizon must be > 0")
        return self

    @property
    def uses_volatility(self) -> bool:
        """Whether the book needs the volatility known at entry."""
        return self.sizing == "volatility" or (
            self.exit_unit == "volatility"
            and (self.stop_loss is not None or self.take_profit is not None)
        )


def sized_preset(horizon: dt.timedelta = dt.timedelta(minutes=15)) -> ExecutionConfig:
    """The volatility-sized book the evaluation report shows beside the unit-size one: 3 bp of a
    unit's notional per one-sigma interval move (about one unit for a symbol moving 3 bp a
    minute), at most 3 units per position, 10 units gross, 5 net, and a one-session 99% VaR of
    0.1 unit; a position the limits scale below 0.1 unit is refused (no dust positions near a
    cap); no stops (time exits at the horizon)."""
    return ExecutionConfig(
        horizon=horizon,
        sizing="volatility",
        risk_per_trade=0.0003,
        max_position_value=3.0,
        max_gross=10.0,
        max_net=5.0,
        var_limit=0.1,
        min_position_value=0.1,
    )
