"""The experiment's contract: the dataset's columns, the horizons, the configuration
(:class:`ExperimentConfig`) and what a run produces (:class:`ExperimentResult`); shared by
the runner (:mod:`tickml.models.experiment`) and its reports
(:mod:`tickml.models.experiment_reports`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tickml.backtest import BacktestConfig, BacktestResult
from tickml.decision import LONG_CLASSES, SHORT_CLASSES, DecisionConfig
from tickml.evaluation.splits import (
    Fold,
    WalkForwardConfig,
)
from tickml.execution import ExecutionConfig, sized_preset
from tickml.labels import CLASSES_3, CLASSES_5
from tickml.models.direction import (
    DirectionConfig,
)
from tickml.models.ensemble import EnsembleConfig
from tickml.models.selection import (
    FoldImportance,
    SelectionConfig,
    SelectionResult,
)
from tickml.models.train import TrainConfig, TrainedModel

#: Columns every dataset needs besides the features.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "symbol",
    "event_timestamp",
    "label_end",
    "label_short",
    "label_long",
    "fwd_return_short",
    "fwd_return_long",
    "mid",
    "spread",
)
#: Optional columns passed on to the backtest when present.
BACKTEST_OPTIONAL: tuple[str, ...] = ("last_return", "recent_vol", "feature_age")

if tuple(CLASSES_5) != tuple(SHORT_CLASSES) or tuple(CLASSES_3) != tuple(LONG_CLASSES):
    raise ImportError("label classes and decision classes disagree")

#: model name -> (label column, return column, classes)
HORIZONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "short": ("label_short", "fwd_return_short", tuple(CLASSES_5)),
    "long": ("label_long", "fwd_return_long", tuple(CLASSES_3)),
}

Progress = Callable[[str, int, int], None]


class ExperimentConfig(BaseModel):
    """Every knob of the evaluation: folds, training, selection, decision gates and costs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    short_horizon: str = Field(
        default="15min",
        description="horizon of the short labels (must match the labels config): names the "
        "short model and is the backtest's holding period",
    )
    long_horizon: str = Field(
        default="30min", description="horizon of the long labels (must match the labels config)"
    )
    walk_forward: WalkForwardConfig = Field(
        default_factory=WalkForwardConfig,
        description="walk-forward folds: mode, folds, training days, embargo, validation share",
    )
    train: TrainConfig = Field(
        default_factory=TrainConfig, description="LightGBM training of both models"
    )
    selection: SelectionConfig = Field(
        default_factory=SelectionConfig, description="SHAP selection: top-K, rows explained"
    )
    decision: DecisionConfig = Field(
        default_factory=DecisionConfig,
        description="the live decision function's gates (used by the backtest)",
    )
    backtest: BacktestConfig | None = Field(
        default=None,
        description="execution and costs (None: defaults with the short horizon as holding period)",
    )
    sized: ExecutionConfig | None = Field(
        default_factory=sized_preset,
        description="the sized book (volatility sizing, caps, risk limit; tickml.execution) "
        "backtested beside the unit-size one and run by the live shadow ledger; its horizon "
        "follows short_horizon (None: unit size only)",
    )
    consensus: Literal["off", "keep", "opposite", "drop"] = Field(
        default="off",
        description="training-set filter on the train/validation rows only (never the test "
        "rows): off, or keep rows whose horizons agree with traps kept / agreeing with the "
        "opposite direction / dropped",
    )
    train_on_truncated: bool = Field(
        default=True,
        description="train on labels cut short by the session close (truncated_* columns)",
    )
    momentum_column: str = Field(
        default="ret_b1",
        description="last interval's return for the momentum baseline (falls back to last_return)",
    )
    direction: DirectionConfig = Field(
        default_factory=DirectionConfig,
        description="the direction model (the decision score): a regression of the "
        "volatility-normalized short-horizon return (tickml.models.direction)",
    )
    ensemble: EnsembleConfig | None = Field(
        default_factory=EnsembleConfig,
        description="the regime ensemble of the direction model, both classifiers and the "
        "plain rules, fitted per fold on its validation slice (tickml.models.stacking); "
        "reported, not served (None: off)",
    )
    rule_baselines: bool = Field(
        default=True,
        description="score the plain rules (micro-price deviation, book imbalance; "
        "tickml.evaluation.rules) on the same folds",
    )
    logistic_baseline: bool = Field(
        default=True, description="fit the logistic-regression baseline on the same features"
    )
    baseline_backtests: bool = Field(
        default=True, description="also backtest the baselines' probabilities"
    )
    production_models: bool = Field(
        default=True, description="train the production models on all rows (for the registry)"
    )
    n_boot: int = Field(default=1000, ge=0, description="day-block bootstrap replicates of the IC")
    seed: int = Field(default=0, description="seed of the bootstrap")
    max_equity_points: int = Field(
        default=5000, ge=10, description="equity curve points kept in to_dict (evenly thinned)"
    )

    def backtest_config(self) -> BacktestConfig:
        if self.backtest is not None:
            return self.backtest
        return BacktestConfig(horizon=pd.Timedelta(self.short_horizon).to_pytimedelta())

    def sized_backtest_config(self) -> BacktestConfig | None:
        """The unit backtest's columns and costs with the sized book's execution rules."""
        if self.sized is None:
            return None
        horizon = pd.Timedelta(self.short_horizon).to_pytimedelta()
        return self.backtest_config().model_copy(
            update={**self.sized.model_dump(), "horizon": horizon}
        )

    def execution_config(self) -> ExecutionConfig:
        """What the live shadow ledger runs: the sized book (or the unit one without it)."""
        return (self.sized_backtest_config() or self.backtest_config()).execution()


def horizon_name(horizon: str) -> str:
    """'15min' -> '15m', '90s' -> '90s', '2h' -> '120m'."""
    td = pd.Timedelta(horizon)
    secs = int(td.total_seconds())
    return f"{secs // 60}m" if secs % 60 == 0 else f"{secs}s"


@dataclass(eq=False)
class ExperimentResult:
    """Everything :func:`run_experiment` produced. :meth:`to_dict` is evaluation.json."""

    config: ExperimentConfig
    feature_cols: list[str]
    folds: list[Fold]
    #: LightGBM models' entries (name, horizon, classes, oos, per_fold, ...)
    models: list[dict[str, Any]]
    baselines: list[dict[str, Any]]
    backtest: BacktestResult | None
    selection: SelectionResult
    fold_importances: list[FoldImportance]
    #: per fold: the features its models used
    fold_features: list[list[str]]
    ic_by_fold: list[dict[str, Any]]
    #: "short" / "long": trained on all rows with the pooled selection (empty if disabled)
    production: dict[str, TrainedModel]
    #: first/last event_timestamp and rows of the data the production models saw
    training_window: dict[str, Any]
    data_hash: str
    timings: dict[str, float]
    #: one row per (test row, fold): ids, labels, returns, every model's probabilities
    predictions: pd.DataFrame = field(repr=False)
    n_rows: int = 0
    #: the same rows through the sized book (:attr:`ExperimentConfig.sized`)
    backtest_sized: BacktestResult | None = None
    #: the model whose prediction is the decision score ("direction"; None: the short model)
    decision_model: str | None = None

    def model(self, name: str) -> dict[str, Any]:
        for m in self.models + self.baselines:
            if m["name"] == name:
                return m
        raise KeyError(name)

    def backtest_dict(self, sized: bool = False) -> dict[str, Any] | None:
        bt = self.backtest_sized if sized else self.backtest
        if bt is None:
            return None
        out = dict(bt.metrics)
        eq = bt.equity
        n = len(eq)
        step = max(1, int(np.ceil(n / self.config.max_equity_points)))
        idx = np.unique(np.r_[np.arange(0, n, step), n - 1]) if n else np.zeros(0, np.int64)
        ts = pd.DatetimeIndex(pd.to_datetime(eq["event_timestamp"], utc=True))[idx]
        vals = eq["equity"].to_numpy(dtype=np.float64)[idx]
        out["equity_curve"] = [[t.isoformat(), float(v)] for t, v in zip(ts, vals, strict=True)]
        out["daily"] = [
            {"day": d.isoformat(), "pnl": float(p), "n_trades": int(k)}
            for d, p, k in bt.daily[["day", "pnl", "n_trades"]].itertuples(index=False)
        ]
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (evaluation.json)."""
        folds = []
        for f, feats in zip(self.folds, self.fold_features, strict=True):
            s = f.summary()
            s["test_start"] = f.test_start.isoformat()
            s["test_end"] = f.test_end.isoformat()
            s["features"] = list(feats)
            folds.append(s)
        return {
            "horizons": {
                "short": horizon_name(self.config.short_horizon),
                "long": horizon_name(self.config.long_horizon),
            },
            "n_rows": self.n_rows,
            "n_features_in": len(self.feature_cols),
            "data_hash": self.data_hash,
            "training_window": self.training_window,
            "models": self.models,
            "baselines": self.baselines,
            "decision_model": self.decision_model,
            "backtest": self.backtest_dict(),
            "backtest_sized": self.backtest_dict(sized=True),
            "selection": self.selection.to_dict(),
            "folds": folds,
            "ic_by_fold": self.ic_by_fold,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "config": self.config.model_dump(mode="json"),
        }
