"""The experiment's steps after the folds: the out-of-sample reports and fold ICs, the models' and
the baselines' backtests, and the production models on the latest data (called by
:func:`tickml.models.experiment.run_experiment`, in that order), with the row selections they
share with the runner."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tickml.backtest import BacktestResult, run_backtest
from tickml.decision import LONG_CLASSES, SHORT_CLASSES
from tickml.evaluation.metrics import direction_score, report_by_fold
from tickml.evaluation.splits import Fold
from tickml.labels import consensus_filter
from tickml.market import utc_ns
from tickml.models.direction import DIRECTION, fit_direction
from tickml.models.experiment_config import (
    BACKTEST_OPTIONAL,
    HORIZONS,
    ExperimentConfig,
    horizon_name,
)
from tickml.models.scores import add_fold_ics, score_entries
from tickml.models.train import TrainedModel, train_model


def training_rows(ds: pd.DataFrame, rows: np.ndarray, cfg: ExperimentConfig) -> np.ndarray:
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


def labelled(ds: pd.DataFrame, rows: np.ndarray, label_col: str) -> np.ndarray:
    return rows[ds[label_col].iloc[rows].notna().to_numpy()]


def latest_slice(ds: pd.DataFrame, rows: np.ndarray, share: float) -> tuple[np.ndarray, ...]:
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


def prob_cols(prefix: str, classes: Sequence[str]) -> list[str]:
    return [f"{prefix}_{c}" for c in classes]


def strip_report(report: dict[str, Any]) -> dict[str, Any]:
    """A per-fold report without the bulky reliability tables (ECEs kept)."""
    out = {k: v for k, v in report.items() if k != "calibration"}
    cal = report.get("calibration") or {}
    out["ece"] = cal.get("ece")
    out["brier"] = cal.get("brier")
    return out


def oos_reports(
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
            proba = sub[prob_cols(f"{prefix}_{name}", cls)].to_numpy(np.float64)
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
                "per_fold": [strip_report(r) for r in rep["folds"]],
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


def backtests(
    ds: pd.DataFrame, pred: pd.DataFrame, cfg: ExperimentConfig, baselines: list[dict[str, Any]]
) -> tuple[BacktestResult | None, BacktestResult | None]:
    """(the models' backtest, the sized one) over the walk-forward predictions; with
    ``baseline_backtests`` each baseline entry gets its backtest's metrics."""
    bt_cfg = cfg.backtest_config()
    if not len(pred):
        return None, None
    bt_frame = backtest_frame(ds, pred, "p")
    backtest = run_backtest(bt_frame, cfg.decision, bt_cfg)
    sized_cfg = cfg.sized_backtest_config()
    backtest_sized = None if sized_cfg is None else run_backtest(bt_frame, cfg.decision, sized_cfg)
    if cfg.baseline_backtests:
        for entry in baselines:
            if not entry["classes"]:  # a rule: no probabilities to decide on
                continue
            prefix = f"p_{entry['kind']}"
            res = run_backtest(backtest_frame(ds, pred, prefix), cfg.decision, bt_cfg)
            entry["backtest"] = dict(res.metrics)
    return backtest, backtest_sized


def production_models(
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
    everything = training_rows(ds, np.arange(len(ds), dtype=np.int64), cfg)
    window: dict[str, Any] = {"start": None, "end": None, "n_rows": 0}
    if not cfg.production_models:
        return production, window
    p_tr, p_va = latest_slice(ds, everything, cfg.walk_forward.val_share)
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


def backtest_frame(ds: pd.DataFrame, pred: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """Probabilities of one model family (prefix "p", "p_logistic", "p_momentum") renamed to the
    backtest's input columns, with the market columns; averaged over folds per row."""
    cols_s = prob_cols(f"{prefix}_short", SHORT_CLASSES)
    cols_l = prob_cols(f"{prefix}_long", LONG_CLASSES)
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
    out[prob_cols("p_short", SHORT_CLASSES)] = frame[cols_s].to_numpy()
    out[prob_cols("p_long", LONG_CLASSES)] = frame[cols_l].to_numpy()
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
    return direction_score(pred[prob_cols(prefix, cls)].to_numpy(np.float64), cls)
