"""The experiment: purged walk-forward evaluation of the dual LightGBM models with per-fold SHAP
selection, baselines on the same folds, a backtest through the shared decision function, and
the production models for the registry.

Input: one row per (symbol, event_timestamp) with

=====================  ===========================================================  ==========
column                 meaning                                                      needed by
=====================  ===========================================================  ==========
symbol                 instrument                                                    all
event_timestamp        when the features became knowable (datetime, UTC)            splits
label_end              when the later of both labels was decided                    purging
label_short            5-class label (CLASSES_5) or None                             short model
label_long             3-class label (CLASSES_3) or None                             long model
fwd_return_short       mid return over the short horizon (NaN: unknown)              IC, dir. acc.
fwd_return_long        mid return over the long horizon                              IC, dir. acc.
mid                    mid price at event_timestamp                                  backtest
spread                 quoted spread (ask - bid) at event_timestamp, price units     backtest costs
<feature columns>      as passed in ``feature_cols``                                 models
ret_b1                 (a feature) last interval's return: ``momentum_column``       momentum
last_return            optional: last interval return (vol halt, fallback)          backtest
recent_vol             optional: recent volatility of interval returns (same unit)  backtest
feature_age            optional: seconds from the features' timestamp to the row's  backtest
truncated_short/_long  optional: label cut by the close (``train_on_truncated``)    training
=====================  ===========================================================  ==========

:func:`prepare_dataset` builds it from feature rows and :func:`tickml.labels.make_labels` output
(mid = the labels' reference price, spread from ``spread_bps``, last_return = ``ret_b1``).

Per fold (:func:`tickml.evaluation.splits.walk_forward_splits`, every fold checked with
``assert_no_leakage``):

1. **selection** inside the training window: first-pass short and long models on all features
   (early stopping on the fold's validation slice), SHAP on a sample of the fold's *training*
   rows; the fold's own top-K is kept (:mod:`tickml.models.selection`);
2. **final dual models** on the fold's top-K (train rows, early stopping on the validation
   slice);
3. **out-of-sample probabilities** on the test rows for both models and both baselines
   (logistic regression on the same top-K, fitted on train + validation rows; "the last move
   persists" momentum rule on ``momentum_column``);
4. **the direction model** (:mod:`tickml.models.direction`, the decision score): a regression of
   the volatility-normalized short-horizon return on the same top-K, early stopping on the
   validation slice; its prediction on the test rows is the ``direction`` column.

The plain rules (:mod:`tickml.evaluation.rules`: micro-price deviation, book imbalance) need no
fitting; their scores on the same test rows are the ``score_<rule>`` columns. The direction
model and the rules are scored by :mod:`tickml.models.scores` on the short model's rows.

Why selection per fold and not once from all folds: in walk-forward mode a later fold's training
window contains earlier folds' test days, so a selection pooled over folds would let those test
rows pick the features that earlier folds' models use. Per-fold selection keeps every fold's
model and features a function of its own training window only. The pooled selection (mean |SHAP|
over folds, stability) is what the **production models** use: they train on all the data anyway.

Then: metrics per fold and pooled (:func:`tickml.evaluation.metrics.classification_report_oos`,
IC interval by day-block bootstrap; rows with a missing label are not scored); a backtest of the
pooled out-of-sample probabilities through :func:`tickml.backtest.run_backtest` (the live
decision function), and of each baseline's probabilities for comparison; and the production
models: all labelled rows, the latest ``val_share`` of them (cut at a timestamp, training rows
whose label interval overlaps it purged) as the early-stopping slice, on the pooled top-K.

In blocked mode with ``n_test_groups > 1`` a row is tested by several folds: metrics pool every
(row, fold) prediction, the backtest averages a row's probabilities over its folds.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from tickml.backtest import BacktestConfig, BacktestResult, run_backtest
from tickml.decision import LONG_CLASSES, SHORT_CLASSES, DecisionConfig
from tickml.evaluation.baselines import LogisticBaseline, MomentumBaseline
from tickml.evaluation.metrics import direction_score, report_by_fold
from tickml.evaluation.rules import rule_scores
from tickml.evaluation.splits import (
    Fold,
    WalkForwardConfig,
    assert_no_leakage,
    walk_forward_splits,
)
from tickml.execution import ExecutionConfig, sized_preset
from tickml.labels import CLASSES_3, CLASSES_5, consensus_filter
from tickml.market import local_days, utc_ns
from tickml.models.direction import (
    DIRECTION,
    DirectionConfig,
    fit_direction,
    fold_entry,
    normalized_return,
    predict_direction,
    volatility,
)
from tickml.models.ensemble import EnsembleConfig
from tickml.models.registry import dataset_hash
from tickml.models.scores import add_fold_ics, score_entries
from tickml.models.selection import (
    FoldImportance,
    SelectionConfig,
    SelectionResult,
    aggregate_importance,
    fold_importance,
)
from tickml.models.stacking import ENSEMBLE, fold_ensemble
from tickml.models.train import TrainConfig, TrainedModel, predict_proba, train_model
from tickml.volatility import recent_vol

log = logging.getLogger(__name__)

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


# -- dataset -----------------------------------------------------------------------------------


def prepare_dataset(
    features: pd.DataFrame,
    labels: pd.DataFrame,
    vol_rows: int = 30,
    tz: str = "America/New_York",
) -> pd.DataFrame:
    """Join feature rows and :func:`tickml.labels.make_labels` output on (symbol,
    event_timestamp) and add the market columns the experiment needs.

    ``mid`` = the labels' reference price at the event (``ref_price_short``); ``spread`` =
    ``spread_bps`` x mid / 1e4 (NaN without a book: such rows are not executable in the
    backtest); ``last_return`` = ``ret_b1`` (bps); ``recent_vol`` = standard deviation of the
    symbol's previous ``vol_rows`` ``ret_b1`` values that local day (``tz``; bps, only earlier
    rows).
    """
    lab_cols = [c for c in labels.columns if c not in ("symbol", "event_timestamp")]
    dup = [c for c in lab_cols if c in features.columns]
    if dup:
        raise ValueError(f"columns in both features and labels: {dup}")
    out = features.merge(labels, on=["symbol", "event_timestamp"], how="inner", validate="1:1")
    return add_market_columns(out, vol_rows, tz)


def add_market_columns(
    frame: pd.DataFrame, vol_rows: int = 30, tz: str = "America/New_York"
) -> pd.DataFrame:
    """``mid``, ``spread``, ``last_return``, ``recent_vol`` (see :func:`prepare_dataset`) on a
    frame holding ``ref_price_short``, ``spread_bps`` and ``ret_b1`` (missing inputs give NaN)."""
    out = frame.copy()
    nan = pd.Series(np.nan, index=out.index)
    if "mid" not in out.columns:
        out["mid"] = out["ref_price_short"] if "ref_price_short" in out.columns else nan
    if "spread" not in out.columns:
        bps = out["spread_bps"] if "spread_bps" in out.columns else nan
        out["spread"] = bps.astype(np.float64) * out["mid"].astype(np.float64) / 1e4
    if "last_return" not in out.columns:
        out["last_return"] = out["ret_b1"] if "ret_b1" in out.columns else nan
    if "recent_vol" not in out.columns:  # THE function the live scorer streams
        out["recent_vol"] = recent_vol(
            out["symbol"].to_numpy(),
            utc_ns(out["event_timestamp"]),
            out["last_return"].to_numpy(dtype=np.float64),
            tz=tz,
            rows=vol_rows,
        )
    return out


def _check(dataset: pd.DataFrame, feature_cols: Sequence[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in dataset.columns]
    missing += [c for c in feature_cols if c not in dataset.columns]
    if missing:
        raise ValueError(f"dataset lacks columns {missing[:20]}")
    if not feature_cols:
        raise ValueError("no feature columns")
    if len(set(feature_cols)) != len(feature_cols):
        raise ValueError("duplicate feature columns")
    clash = set(feature_cols) & set(REQUIRED_COLUMNS)
    if clash:
        raise ValueError(f"feature columns clash with required columns: {sorted(clash)}")
    if dataset.duplicated(["symbol", "event_timestamp"]).any():
        raise ValueError("duplicate (symbol, event_timestamp) rows")


def _check_horizons(ds: pd.DataFrame, cfg: ExperimentConfig) -> None:
    """A label that ends after event_timestamp + the configured horizon means the experiment
    was configured with the wrong horizon (it names the models and sets the holding period)."""
    for name, horizon in (("short", cfg.short_horizon), ("long", cfg.long_horizon)):
        col = f"label_end_{name}"
        if col not in ds.columns or not len(ds):
            continue
        span = (utc_ns(ds[col]) - utc_ns(ds["event_timestamp"])).max()
        if span > pd.Timedelta(horizon).value:
            raise ValueError(
                f"{col} reaches {pd.Timedelta(int(span))} after event_timestamp but "
                f"{name}_horizon is {horizon}: set the experiment's horizons to the labels'"
            )


def _training_rows(ds: pd.DataFrame, rows: np.ndarray, cfg: ExperimentConfig) -> np.ndarray:
    """Rows of a training/validation set that pass the training-set filters."""
    if rows.size == 0:
        return rows
    keep = np.ones(rows.size, dtype=bool)
    if not cfg.train_on_truncated:
        for col in ("truncated_short", "truncated_long"):
            if col in ds.columns:
                keep &= ~ds[col].iloc[rows].fillna(False).to_numpy(dtype=bool)
    if cfg.consensus != "off":
        keep &= consensus_filter(
            ds["label_short"].iloc[rows], ds["label_long"].iloc[rows], traps=cfg.consensus
        )
    return rows[keep]


def _labelled(ds: pd.DataFrame, rows: np.ndarray, label_col: str) -> np.ndarray:
    return rows[ds[label_col].iloc[rows].notna().to_numpy()]


def _latest_slice(ds: pd.DataFrame, rows: np.ndarray, share: float) -> tuple[np.ndarray, ...]:
    """(train, val) for the production models: the latest ``share`` of ``rows`` (cut at a
    timestamp) is the validation slice; training rows overlapping it are purged."""
    if share <= 0 or rows.size == 0:
        return rows, np.zeros(0, dtype=np.int64)
    ev = utc_ns(ds["event_timestamp"].iloc[rows])
    le = utc_ns(ds["label_end"].iloc[rows])
    order = np.sort(ev)
    n_val = int(np.ceil(share * rows.size))
    cut = order[rows.size - n_val]
    is_val = ev >= cut
    v_start, v_end = ev[is_val].min(), le[is_val].max()
    overlap = (ev <= v_end) & (le >= v_start) & ~is_val
    return rows[~is_val & ~overlap], rows[is_val]


# -- the runner ----------------------------------------------------------------------------------


def _prob_cols(prefix: str, classes: Sequence[str]) -> list[str]:
    return [f"{prefix}_{c}" for c in classes]


def _strip(report: dict[str, Any]) -> dict[str, Any]:
    """A per-fold report without the bulky reliability tables (ECEs kept)."""
    out = {k: v for k, v in report.items() if k != "calibration"}
    cal = report.get("calibration") or {}
    out["ece"] = cal.get("ece")
    out["brier"] = cal.get("brier")
    return out


def run_experiment(
    dataset: pd.DataFrame,
    feature_cols: Sequence[str],
    config: ExperimentConfig | None = None,
    progress: Progress | None = None,
) -> ExperimentResult:
    """Run the whole evaluation (see the module docstring). ``progress(stage, done, total)`` is
    called after each step."""
    cfg = config or ExperimentConfig()
    feats = list(feature_cols)
    _check(dataset, feats)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()

    ds = dataset.sort_values(["event_timestamp", "symbol"], kind="stable").reset_index(drop=True)
    _check_horizons(ds, cfg)
    mom_col = cfg.momentum_column if cfg.momentum_column in ds.columns else "last_return"
    if mom_col not in ds.columns:
        raise ValueError(f"no {cfg.momentum_column!r} or 'last_return' column for momentum")
    t = time.perf_counter()
    folds = walk_forward_splits(ds, cfg.walk_forward)
    for f in folds:
        assert_no_leakage(ds, f)
    ev_ns = utc_ns(ds["event_timestamp"])
    day_code, days = local_days(ev_ns, cfg.walk_forward.market.tz)
    timings["splits"] = time.perf_counter() - t
    total = len(folds) + 3
    step = 0

    def tick(stage: str) -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(stage, step, total)

    x_all = ds[feats]
    mom = ds[mom_col].to_numpy(dtype=np.float64)
    labels_sel: dict[str, tuple[str, Sequence[str]]] = {
        name: (lab, cls) for name, (lab, _, cls) in HORIZONS.items()
    }
    fold_imps: list[FoldImportance] = []
    fold_feats: list[list[str]] = []
    parts: list[pd.DataFrame] = []
    fold_models: dict[str, list[dict[str, Any]]] = {"short": [], "long": [], DIRECTION: []}
    use_direction = cfg.direction.enabled
    use_ensemble = cfg.ensemble is not None
    y_norm = vol = None
    if use_direction or use_ensemble:
        y_norm = normalized_return(ds, mom_col, cfg.direction.vol_rows)
        vol = volatility(ds, mom_col, cfg.direction.vol_rows)
    y_dir = y_norm if use_direction else None
    rules = rule_scores(ds) if cfg.rule_baselines else {}
    ensemble_folds: list[dict[str, Any]] = []
    t_sel = t_train = t_base = 0.0
    infer: dict[str, list[float]] = {"short": [0.0, 0.0], "long": [0.0, 0.0]}  # seconds, rows
    for f in folds:
        tr = _training_rows(ds, f.train, cfg)
        va = _training_rows(ds, f.val, cfg)
        t = time.perf_counter()
        imp = fold_importance(ds, f, feats, labels_sel, cfg.train, cfg.selection, tr, va)
        sel = imp.top(cfg.selection.top_k)
        t_sel += time.perf_counter() - t
        fold_imps.append(imp)
        fold_feats.append(sel)
        test = f.test
        part = pd.DataFrame(
            {
                "row": test,
                "fold": f.fold,
                "symbol": ds["symbol"].to_numpy()[test],
                "event_timestamp": ds["event_timestamp"].iloc[test].to_numpy(),
                "day": day_code[test],
            }
        )
        x_test = x_all.iloc[test]
        learn = np.sort(np.concatenate([tr, va]))
        val_sc = {r: v[va] for r, v in rules.items()}
        test_sc = {r: v[test] for r, v in rules.items()}
        for name, (lab, ret, cls) in HORIZONS.items():
            part[lab] = ds[lab].to_numpy(dtype=object)[test]
            part[ret] = ds[ret].to_numpy(dtype=np.float64)[test]
            t = time.perf_counter()
            model = train_model(
                x_all.iloc[tr],
                ds[lab].to_numpy(dtype=object)[tr],
                x_all.iloc[va],
                ds[lab].to_numpy(dtype=object)[va],
                cls,
                cfg.train,
                sel,
            )
            t_train += time.perf_counter() - t
            t = time.perf_counter()
            p = predict_proba(model, x_test)
            infer[name][0] += time.perf_counter() - t
            infer[name][1] += len(test)
            part[_prob_cols(f"p_{name}", cls)] = p
            if use_ensemble:
                val_sc[name] = direction_score(predict_proba(model, x_all.iloc[va]), cls)
                test_sc[name] = direction_score(p, cls)
            fold_models[name].append(
                {
                    "fold": f.fold,
                    "best_iteration": model.best_iteration,
                    "early_stopped": model.info["early_stopped"],
                    "n_train": model.info["n_train"],
                    "n_val": model.info["n_val"],
                    "size": model.size(),
                    **({"optuna": model.info["optuna"]} if "optuna" in model.info else {}),
                }
            )
            t = time.perf_counter()
            lrn = _labelled(ds, learn, lab)
            y_lrn = ds[lab].to_numpy(dtype=object)[lrn]
            if cfg.logistic_baseline:
                lb = LogisticBaseline(cls).fit(x_all.iloc[lrn][sel].to_numpy(np.float64), y_lrn)
                part[_prob_cols(f"p_logistic_{name}", cls)] = lb.predict_proba(
                    x_test[sel].to_numpy(np.float64)
                )
            mb = MomentumBaseline(cls).fit(mom[lrn], y_lrn)
            part[_prob_cols(f"p_momentum_{name}", cls)] = mb.predict_proba(mom[test])
            part[f"call_momentum_{name}"] = mb.predict(mom[test])
            part[f"score_momentum_{name}"] = mb.score(mom[test])
            t_base += time.perf_counter() - t
        if y_dir is not None:
            t = time.perf_counter()
            dmodel = fit_direction(x_all, y_dir, tr, va, sel, cfg.train, cfg.direction)
            t_train += time.perf_counter() - t
            part[DIRECTION] = predict_direction(dmodel, x_test)
            fold_models[DIRECTION].append(fold_entry(dmodel, f.fold))
            if use_ensemble:
                val_sc[DIRECTION] = predict_direction(dmodel, x_all.iloc[va])
                test_sc[DIRECTION] = part[DIRECTION].to_numpy()
        if cfg.ensemble is not None and y_norm is not None and vol is not None:
            fitted = fold_ensemble(
                f.fold, val_sc, y_norm[va], vol[va], test_sc, vol[test], cfg.ensemble
            )
            part[ENSEMBLE] = np.nan if fitted is None else fitted[0]
            if fitted is not None:
                ensemble_folds.append(fitted[1])
        parts.append(part)
        tick(f"fold {f.fold + 1}/{len(folds)}")
    timings["selection"] = t_sel
    timings["training"] = t_train
    timings["baselines"] = t_base
    pred = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    for rule, values in rules.items():
        pred[f"score_{rule}"] = values[pred["row"].to_numpy(dtype=np.int64)] if len(pred) else []

    t = time.perf_counter()
    models, baselines, ic_rows = _oos_reports(
        pred, cfg, folds, fold_models, infer, list(rules), ensemble_folds if use_ensemble else None
    )
    timings["metrics"] = time.perf_counter() - t
    tick("metrics")

    t = time.perf_counter()
    backtest, backtest_sized = _backtests(ds, pred, cfg, baselines)
    timings["backtest"] = time.perf_counter() - t
    tick("backtest")

    selection = aggregate_importance(fold_imps, cfg.selection.top_k)
    t = time.perf_counter()
    production, window = _production_models(ds, cfg, x_all, y_dir, selection.features, days)
    for entry in models:
        pm = production.get(entry["model"])
        if pm is not None:
            entry["production"] = {
                "best_iteration": pm.best_iteration,
                "size": pm.size(),
                "n_train": pm.info["n_train"],
                "n_val": pm.info["n_val"],
            }
    timings["production"] = time.perf_counter() - t
    tick("production")
    t = time.perf_counter()
    hash_cols = [*REQUIRED_COLUMNS, *feats]
    digest = dataset_hash(ds, hash_cols)
    timings["hash"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    return ExperimentResult(
        config=cfg,
        feature_cols=feats,
        folds=folds,
        models=models,
        baselines=baselines,
        backtest=backtest,
        selection=selection,
        fold_importances=fold_imps,
        fold_features=fold_feats,
        ic_by_fold=[ic_rows[f.fold] for f in folds],
        production=production,
        training_window=window,
        data_hash=digest,
        timings=timings,
        predictions=pred,
        n_rows=len(ds),
        backtest_sized=backtest_sized,
        decision_model=DIRECTION if use_direction else None,
    )


def _oos_reports(
    pred: pd.DataFrame,
    cfg: ExperimentConfig,
    folds: Sequence[Fold],
    fold_models: dict[str, list[dict[str, Any]]],
    infer: dict[str, list[float]],
    rules: list[str],
    ensemble_folds: list[dict[str, Any]] | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """Out-of-sample reports of the walk-forward predictions: (the models' entries, the
    baselines' entries, per fold the information coefficients)."""
    models: list[dict[str, Any]] = []
    baselines: list[dict[str, Any]] = []
    ic_rows: dict[int, dict[str, Any]] = {
        f.fold: {"fold": f.fold, "test_days": [d.isoformat() for d in f.test_days]} for f in folds
    }
    kinds = [("lightgbm", "p")]
    if cfg.logistic_baseline:
        kinds.append(("logistic", "p_logistic"))
    kinds.append(("momentum", "p_momentum"))
    for kind, prefix in kinds:
        for name, (lab, ret, cls) in HORIZONS.items():
            m = pred[lab].notna().to_numpy()
            sub = pred[m]
            proba = sub[_prob_cols(f"{prefix}_{name}", cls)].to_numpy(np.float64)
            extra: dict[str, Any] = {}
            if kind == "momentum":
                extra = {
                    "y_pred": sub[f"call_momentum_{name}"].to_numpy(dtype=object),
                    "score": sub[f"score_momentum_{name}"].to_numpy(np.float64),
                }
            rep = report_by_fold(
                sub[lab].to_numpy(dtype=object),
                proba,
                cls,
                sub["fold"].to_numpy(),
                fwd_return=sub[ret].to_numpy(np.float64),
                day=sub["day"].to_numpy(),
                n_boot=cfg.n_boot,
                seed=cfg.seed,
                **extra,
            )
            horizon = cfg.short_horizon if name == "short" else cfg.long_horizon
            entry: dict[str, Any] = {
                "name": f"{kind}_{name}" if kind != "lightgbm" else name,
                "kind": kind,
                "model": name,
                "horizon": horizon_name(horizon),
                "label": lab,
                "classes": list(cls),
                "oos": rep["pooled"],
                "per_fold": [_strip(r) for r in rep["folds"]],
            }
            for r in rep["folds"]:
                ic_rows[int(r["fold"])][f"ic_{entry['name']}"] = r["ic"]
                ic_rows[int(r["fold"])][f"n_{entry['name']}"] = r["n_ic"]
            if kind == "lightgbm":
                entry["fold_models"] = fold_models[name]
                secs, rows = infer[name]
                entry["inference"] = {
                    "note": "predict_proba over each fold's test rows in one batch (LightGBM, "
                    f"{cfg.train.num_threads} threads), wall time per row",
                    "rows": int(rows),
                    "us_per_row": secs / rows * 1e6 if rows else None,
                }
                models.append(entry)
            else:
                baselines.append(entry)
    if len(pred):
        s_models, s_baselines = score_entries(
            pred,
            direction_folds=fold_models[DIRECTION] if cfg.direction.enabled else None,
            ensemble_folds=ensemble_folds,
            rules=rules,
            horizon=horizon_name(cfg.short_horizon),
            n_boot=cfg.n_boot,
            seed=cfg.seed,
        )
        models += s_models
        baselines += s_baselines
        add_fold_ics(ic_rows, s_models + s_baselines)
    return models, baselines, ic_rows


def _backtests(
    ds: pd.DataFrame, pred: pd.DataFrame, cfg: ExperimentConfig, baselines: list[dict[str, Any]]
) -> tuple[BacktestResult | None, BacktestResult | None]:
    """(the models' backtest, the sized one) over the walk-forward predictions; with
    ``baseline_backtests`` each baseline entry gets its backtest's metrics."""
    bt_cfg = cfg.backtest_config()
    if not len(pred):
        return None, None
    bt_frame = _backtest_frame(ds, pred, "p")
    backtest = run_backtest(bt_frame, cfg.decision, bt_cfg)
    sized_cfg = cfg.sized_backtest_config()
    backtest_sized = None if sized_cfg is None else run_backtest(bt_frame, cfg.decision, sized_cfg)
    if cfg.baseline_backtests:
        for entry in baselines:
            if not entry["classes"]:  # a rule: no probabilities to decide on
                continue
            prefix = f"p_{entry['kind']}"
            res = run_backtest(_backtest_frame(ds, pred, prefix), cfg.decision, bt_cfg)
            entry["backtest"] = dict(res.metrics)
    return backtest, backtest_sized


def _production_models(
    ds: pd.DataFrame,
    cfg: ExperimentConfig,
    x_all: pd.DataFrame,
    y_dir: np.ndarray | None,
    features: Sequence[str],
    days: Sequence[dt.date],
) -> tuple[dict[str, TrainedModel], dict[str, Any]]:
    """(the models trained on the latest data with the pooled selection, their training
    window) when ``production_models``; else nothing."""
    production: dict[str, TrainedModel] = {}
    everything = _training_rows(ds, np.arange(len(ds), dtype=np.int64), cfg)
    window: dict[str, Any] = {"start": None, "end": None, "n_rows": 0}
    if not cfg.production_models:
        return production, window
    p_tr, p_va = _latest_slice(ds, everything, cfg.walk_forward.val_share)
    for name, (lab, _, cls) in HORIZONS.items():
        production[name] = train_model(
            x_all.iloc[p_tr],
            ds[lab].to_numpy(dtype=object)[p_tr],
            x_all.iloc[p_va],
            ds[lab].to_numpy(dtype=object)[p_va],
            cls,
            cfg.train,
            features,
        )
    if y_dir is not None:
        production[DIRECTION] = fit_direction(
            x_all, y_dir, p_tr, p_va, features, cfg.train, cfg.direction
        )
    used = np.concatenate([p_tr, p_va])
    if used.size:
        ts_used = pd.DatetimeIndex(ds["event_timestamp"].iloc[used])
        window = {
            "start": ts_used.min().isoformat(),
            "end": ts_used.max().isoformat(),
            "label_end_max": pd.DatetimeIndex(ds["label_end"].iloc[used]).max().isoformat(),
            "n_rows": int(used.size),
            "n_train": int(p_tr.size),
            "n_val": int(p_va.size),
            "days": [d.isoformat() for d in days],
        }
    return production, window


def _backtest_frame(ds: pd.DataFrame, pred: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Probabilities of one model family (prefix "p", "p_logistic", "p_momentum") renamed to the
    backtest's input columns, with the market columns; averaged over folds per row."""
    cols_s = _prob_cols(f"{prefix}_short", SHORT_CLASSES)
    cols_l = _prob_cols(f"{prefix}_long", LONG_CLASSES)
    extra = [DIRECTION] if prefix == "p" and DIRECTION in pred.columns else []
    frame = pred[["row", *cols_s, *cols_l, *extra]]
    if frame["row"].duplicated().any():
        frame = frame.groupby("row", sort=True).mean().reset_index()
    rows = frame["row"].to_numpy()
    out = pd.DataFrame(
        {
            "symbol": ds["symbol"].to_numpy()[rows],
            "event_timestamp": ds["event_timestamp"].iloc[rows].to_numpy(),
        }
    )
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    out[_prob_cols("p_short", SHORT_CLASSES)] = frame[cols_s].to_numpy()
    out[_prob_cols("p_long", LONG_CLASSES)] = frame[cols_l].to_numpy()
    if extra:  # the decision score (tickml.decision: ``direction``)
        out[DIRECTION] = frame[DIRECTION].to_numpy(dtype=np.float64)
    for col in ("mid", "spread", *BACKTEST_OPTIONAL):
        if col in ds.columns:
            out[col] = ds[col].to_numpy(dtype=np.float64)[rows]
    return out


def score_of(pred: pd.DataFrame, model: str = "short", kind: str = "lightgbm") -> np.ndarray:
    """P(UP) - P(DOWN) of one model's probabilities in :attr:`ExperimentResult.predictions`
    (``kind``: lightgbm, logistic or momentum)."""
    _, _, cls = HORIZONS[model]
    prefix = f"p_{model}" if kind == "lightgbm" else f"p_{kind}_{model}"
    return direction_score(pred[_prob_cols(prefix, cls)].to_numpy(np.float64), cls)
