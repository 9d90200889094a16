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

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tickml.evaluation.baselines import LogisticBaseline, MomentumBaseline
from tickml.evaluation.metrics import direction_score
from tickml.evaluation.rules import rule_scores
from tickml.evaluation.splits import (
    assert_no_leakage,
    walk_forward_splits,
)
from tickml.market import local_days, utc_ns
from tickml.models.direction import (
    DIRECTION,
    fit_direction,
    fold_entry,
    normalized_return,
    predict_direction,
    volatility,
)
from tickml.models.experiment_config import (
    BACKTEST_OPTIONAL,
    HORIZONS,
    REQUIRED_COLUMNS,
    ExperimentConfig,
    ExperimentResult,
    Progress,
    horizon_name,
)
from tickml.models.experiment_reports import (
    backtests,
    labelled,
    oos_reports,
    prob_cols,
    production_models,
    score_of,
    training_rows,
)
from tickml.models.registry import dataset_hash
from tickml.models.selection import (
    FoldImportance,
    aggregate_importance,
    fold_importance,
)
from tickml.models.stacking import ENSEMBLE, fold_ensemble
from tickml.models.train import predict_proba, train_model
from tickml.volatility import recent_vol

log = logging.getLogger(__name__)

__all__ = [  # the experiment's API (its contract and reports live in the two modules above)
    "BACKTEST_OPTIONAL",
    "HORIZONS",
    "REQUIRED_COLUMNS",
    "ExperimentConfig",
    "ExperimentResult",
    "Progress",
    "add_market_columns",
    "horizon_name",
    "prepare_dataset",
    "run_experiment",
    "score_of",
]

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


# -- the runner ----------------------------------------------------------------------------------

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
        tr = training_rows(ds, f.train, cfg)
        va = training_rows(ds, f.val, cfg)
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
            part[prob_cols(f"p_{name}", cls)] = p
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
            lrn = labelled(ds, learn, lab)
            y_lrn = ds[lab].to_numpy(dtype=object)[lrn]
            if cfg.logistic_baseline:
                lb = LogisticBaseline(cls).fit(x_all.iloc[lrn][sel].to_numpy(np.float64), y_lrn)
                part[prob_cols(f"p_logistic_{name}", cls)] = lb.predict_proba(
                    x_test[sel].to_numpy(np.float64)
                )
            mb = MomentumBaseline(cls).fit(mom[lrn], y_lrn)
            part[prob_cols(f"p_momentum_{name}", cls)] = mb.predict_proba(mom[test])
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
    models, baselines, ic_rows = oos_reports(
        pred, cfg, folds, fold_models, infer, list(rules), ensemble_folds if use_ensemble else None
    )
    timings["metrics"] = time.perf_counter() - t
    tick("metrics")

    t = time.perf_counter()
    backtest, backtest_sized = backtests(ds, pred, cfg, baselines)
    timings["backtest"] = time.perf_counter() - t
    tick("backtest")

    selection = aggregate_importance(fold_imps, cfg.selection.top_k)
    t = time.perf_counter()
    production, window = production_models(ds, cfg, x_all, y_dir, selection.features, days)
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
