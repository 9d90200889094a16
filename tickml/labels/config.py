"""Configuration of the labels and the class names."""

from __future__ import annotations

import datetime as dt
from typing import Literal

import pandas as pd
from pydantic import ConfigDict, Field, field_validator

from tickml.market import OnMarket

UP, DOWN, FLAT, TRAP_UP, TRAP_DOWN = "UP", "DOWN", "FLAT", "TRAP_UP", "TRAP_DOWN"
#: Classes of the short-horizon label, in the order models use as class indices.
CLASSES_5: tuple[str, ...] = (UP, DOWN, FLAT, TRAP_UP, TRAP_DOWN)
#: Classes of the long-horizon label.
CLASSES_3: tuple[str, ...] = (UP, DOWN, FLAT)

#: Values of the ``touch`` column: the barrier that decided a label, or why there is no label.
TOUCH_VALUES: dict[str, str] = {
    "up": "the upper barrier was touched first",
    "down": "the lower barrier was touched first",
    "vertical": "no barrier touched: decided at the vertical barrier (horizon or session close)",
    "no_price": "no label: no price of the symbol known at or before the event that day",
    "no_vol": "no label (vol mode): fewer than vol_min_samples returns, or zero volatility",
    "outside_session": "no label: event before the open or at/after the close (session_only), "
    "or at/after the symbol's last tick of the day (not session_only)",
    "dropped_at_close": "no label: the horizon crosses the close and at_close='drop'",
}


def to_timedelta(value: str | pd.Timedelta | dt.timedelta) -> pd.Timedelta:
    """A positive duration from '15min', '30s', a Timedelta or a timedelta."""
    td = pd.Timedelta(value)
    if pd.isna(td) or td <= pd.Timedelta(0):
        raise ValueError(f"duration must be positive, got {value!r}")
    return td


class LabelConfig(OnMarket):
    """Triple-barrier labelling knobs (defaults: 15 / 30 minute horizons, volatility barriers)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    short_horizon: str = Field(
        default="15min", description="horizon of the 5-class short label (pandas Timedelta string)"
    )
    long_horizon: str = Field(
        default="30min", description="horizon of the 3-class long label (pandas Timedelta string)"
    )
    barrier_mode: Literal["points", "vol"] = Field(
        default="vol",
        description="'points': barriers at profit_take / stop_loss x point_value price units "
        "from the reference price; 'vol': at profit_take / stop_loss x the volatility of the "
        "log price over the horizon, estimated from data known at the event",
    )
    profit_take: float = Field(
        default=1.0,
        gt=0,
        description="upper barrier distance: points, or multiples of sigma_horizon",
    )
    stop_loss: float = Field(
        default=1.0,
        gt=0,
        description="lower barrier distance: points, or multiples of sigma_horizon",
    )
    point_value: float = Field(
        default=0.01, gt=0, description="price units of one point (points mode), e.g. 0.01 = 1 cent"
    )
    min_barrier_points: float = Field(
        default=1.0,
        ge=0,
        description="floor of each barrier's distance, in points (vol mode): the mid moves in "
        "half ticks, so a barrier inside one tick only asks whether the quote flickered",
    )
    vol_sample: str = Field(
        default="1min",
        description="vol mode: the price is sampled on this grid (anchored at the session open, "
        "or local midnight without a session) and log returns between samples are used",
    )
    vol_halflife: str = Field(
        default="30min", description="vol mode: half-life of the EWMA of squared sampled returns"
    )
    vol_min_samples: int = Field(
        default=5,
        ge=1,
        description="vol mode: sampled returns needed before an event can be labelled",
    )
    trap_share: float = Field(
        default=0.6,
        gt=0,
        lt=1,
        description="a move that reaches this share of one barrier's price distance and then "
        "hits the other barrier or closes beyond the reference price is a trap (5-class)",
    )
    path_quality: bool = Field(
        default=True,
        description="UP/DOWN only when the barrier was touched with an adverse excursion below "
        "max_adverse_share of the opposite barrier's distance; otherwise FLAT",
    )
    max_adverse_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="path-quality limit, share of the opposite barrier distance",
    )
    min_return: float | None = Field(
        default=None,
        ge=0,
        description="without path_quality: a vertical-barrier close with log return > 0 and "
        ">= min_return is UP (<= -min_return and < 0: DOWN); None: a vertical close is FLAT",
    )
    session_only: bool = Field(
        default=True,
        description="label only events in [open, close) and never let a path cross the close; "
        "False: the day (local midnight to midnight) and the symbol's last tick bound the path",
    )
    at_close: Literal["truncate", "drop"] = Field(
        default="truncate",
        description="events whose horizon crosses the close (or the last tick without a "
        "session): 'truncate' labels the truncated path (vertical barrier at the close) and "
        "sets truncated=True; 'drop' leaves them unlabelled (touch='dropped_at_close')",
    )

    @field_validator("short_horizon", "long_horizon", "vol_sample", "vol_halflife")
    @classmethod
    def _duration(cls, v: str) -> str:
        to_timedelta(v)
        return v

