"""The backtest's configuration: the execution model plus the input columns."""

from __future__ import annotations

from pydantic import Field

from tickml.decision import LONG_CLASSES, SHORT_CLASSES
from tickml.execution import ExecutionConfig


class BacktestConfig(ExecutionConfig):
    """The execution model (every :class:`ExecutionConfig` field) plus the input columns."""

    periods_per_year: int = Field(
        default=252, ge=1, description="trading days per year, to annualise the daily Sharpe"
    )
    short_prob_cols: tuple[str, ...] = Field(
        default=tuple(f"p_short_{c}" for c in SHORT_CLASSES),
        description="columns of the short model's probabilities, in SHORT_CLASSES order",
    )
    long_prob_cols: tuple[str, ...] = Field(
        default=tuple(f"p_long_{c}" for c in LONG_CLASSES),
        description="columns of the long model's probabilities, in LONG_CLASSES order",
    )
    mid_col: str = Field(default="mid", description="mid price at the row's timestamp")
    spread_col: str = Field(
        default="spread", description="quoted spread (ask - bid) at the row's timestamp, price"
    )
    last_return_col: str = Field(
        default="last_return",
        description="mid return over the last interval (vol halt, fallback, risk window); "
        "optional column",
    )
    recent_vol_col: str = Field(
        default="recent_vol",
        description="recent interval-return volatility (tickml.volatility); optional column",
    )
    feature_age_col: str = Field(
        default="feature_age",
        description="seconds from the features' timestamp to the row's; optional (absent: 0)",
    )
    direction_col: str = Field(
        default="direction",
        description="the direction model's prediction; optional column: when present it is "
        "decide()'s direction (the score, its sign the trade's side, the short model then only "
        "detects traps); NaN rows have no model (fallback / no_model)",
    )
    direction_model_col: str = Field(
        default="direction_model",
        description="optional boolean column: whether the row's model version has a direction "
        "model. A timestamp whose rows say False is decided with direction=None (the short "
        "model calls the trade, as the live scorer decides a version without one), not with a "
        "NaN direction (no model: fallback); absent: every row of a direction column has one. "
        "The rows of one timestamp must agree (one version per boundary)",
    )
    bid_size_col: str = Field(default="bid_size", description="displayed bid size; optional")
    ask_size_col: str = Field(default="ask_size", description="displayed ask size; optional")

    def execution(self) -> ExecutionConfig:
        """The execution model alone (what the live ledger runs)."""
        return ExecutionConfig(**{k: getattr(self, k) for k in ExecutionConfig.model_fields})
