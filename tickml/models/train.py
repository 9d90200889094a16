"""Training of the LightGBM direction models: the 5-class short model and the 3-class long model.

One function, :func:`train_model`, trains either (the classes decide which), with

* **early stopping** on a validation slice that the caller cuts *inside* the training window
  (:func:`tickml.evaluation.splits.walk_forward_splits` gives each fold one, purged from the
  training rows); the booster is truncated to its best iteration, so the model in memory is
  exactly the one a registry saves and a live worker loads;
* **class weights** (``balanced``: each class weighs ``n / (k_present * n_class)`` in the
  training rows; the validation rows get the same per-class weights, so the early-stopping
  metric is the training objective);
* **prior correction** (on by default with balanced weights): balanced weights make the model
  estimate probabilities under a uniform class prior, which costs log loss and calibration on
  the real class mix. The correction adds ``log(share of the class in training)`` (Laplace
  smoothed) to each class's raw score before the softmax, which maps the balanced-prior
  probabilities back to the training prior exactly (``p(c|x) ∝ p_w(c|x) / w_c``). The trees
  are still grown on the balanced problem (the rare classes still get splits). The offsets are
  part of the model (:attr:`TrainedModel.logit_offset`, saved in the registry manifest):
  probabilities are ``softmax(raw_score + logit_offset)`` in every runtime;
* an optional bounded **Optuna** search (``optuna_trials > 0``) over a fixed space, scored by the
  weighted multi-logloss of the *same validation slice*: the caller's test fold never enters;
* **determinism**: ``deterministic=True``, ``force_col_wise``, every LightGBM seed derived from
  ``seed``, a fixed thread count: the same inputs give bit-identical models.

Rows whose label is missing (None / NaN) are dropped from training and validation; features may
be NaN (LightGBM sends missing values down the learned default branch).

Model size is a live-latency constraint (see ARCHITECTURE.md: 600 trees of 63 leaves cost
~160 ms for 5,000 rows): the defaults are small (15 leaves, at most 300 rounds) and
:meth:`TrainedModel.size` reports trees and leaves beside the metrics.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)


class TrainConfig(BaseModel):
    """LightGBM knobs of both direction models (defaults sized for live latency)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_leaves: int = Field(
        default=15,
        ge=2,
        le=255,
        description="leaves per tree; model size (trees x leaves) is a live-latency constraint",
    )
    max_depth: int = Field(
        default=-1, ge=-1, description="maximum tree depth (-1: limited by num_leaves only)"
    )
    n_estimators: int = Field(
        default=300,
        ge=1,
        description="cap on boosting rounds (each round adds one tree per class); early "
        "stopping usually ends sooner",
    )
    learning_rate: float = Field(default=0.05, gt=0.0, le=1.0, description="shrinkage per round")
    min_child_samples: int = Field(
        default=100,
        ge=1,
        description="minimum rows in a leaf (LightGBM min_data_in_leaf): large values resist "
        "fitting noise in weak-signal data",
    )
    min_child_weight: float = Field(
        default=1e-3, ge=0.0, description="minimum hessian sum in a leaf (min_sum_hessian_in_leaf)"
    )
    feature_fraction: float = Field(
        default=0.8, gt=0.0, le=1.0, description="share of features sampled for each tree"
    )
    bagging_fraction: float = Field(
        default=0.8,
        gt=0.0,
        le=1.0,
        description="share of rows sampled for each bagging round (1.0: no bagging)",
    )
    bagging_freq: int = Field(
        default=1, ge=0, description="resample the bagged rows every this many rounds (0: off)"
    )
    lambda_l1: float = Field(default=0.0, ge=0.0, description="L1 regularisation of leaf values")
    lambda_l2: float = Field(default=1.0, ge=0.0, description="L2 regularisation of leaf values")
    max_bin: int = Field(
        default=255, ge=3, le=1023, description="histogram bins per feature (LightGBM max_bin)"
    )
    early_stopping_rounds: int = Field(
        default=30,
        ge=1,
        description="stop when the validation slice's multi-logloss has not improved for this "
        "many rounds (needs a validation slice; without one all n_estimators rounds run)",
    )
    class_weight: Literal["balanced", "none"] = Field(
        default="balanced",
        description="balanced: weight each class n / (k * n_class) in training (and in the "
        "validation metric); none: unweighted",
    )
    prior_correction: bool = Field(
        default=True,
        description="with balanced weights, add log(training share of each class) to the raw "
        "scores so probabilities are calibrated to the real class mix (stored with the model)",
    )
    seed: int = Field(
        default=0, description="seed of every random choice (bagging, features, Optuna's sampler)"
    )
    num_threads: int = Field(
        default=2, ge=1, description="LightGBM threads (part of the determinism contract)"
    )
    deterministic: bool = Field(
        default=True, description="LightGBM deterministic mode: same inputs, same model"
    )
    optuna_trials: int = Field(
        default=0,
        ge=0,
        description="> 0: a bounded Optuna (TPE) search of this many trials over num_leaves "
        "(<= optuna_max_leaves), learning_rate, min_child_samples, feature_fraction, "
        "bagging_fraction and lambda_l2, scored on the training window's own validation slice "
        "only; 0: the values above",
    )
    optuna_max_leaves: int = Field(
        default=31, ge=4, le=255, description="upper bound of num_leaves in the Optuna search"
    )
    optuna_timeout_s: float | None = Field(
        default=None, gt=0, description="wall-clock bound of one Optuna search (None: trials only)"
    )


@dataclass(eq=False)
class TrainedModel:
    """A trained direction model: the booster plus everything needed to use it correctly."""

    booster: lgb.Booster
    classes: tuple[str, ...]
    features: tuple[str, ...]
    best_iteration: int
    params: dict[str, Any]
    #: per-class offsets added to the raw scores before the softmax (None: plain LightGBM)
    logit_offset: np.ndarray | None = None
    #: training facts: rows, class counts, validation score, Optuna summary
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def is_regression(self) -> bool:
        """A regression model (the direction model): no classes, one raw output per row."""
        return len(self.classes) == 0

    @property
    def n_outputs(self) -> int:
        """Raw scores per row: one per class, 1 for a regression model."""
        return max(1, len(self.classes))

    def size(self) -> dict[str, int]:
        """Rounds, trees and total leaves (what inference latency scales with)."""
        dump = self.booster.dump_model(num_iteration=-1)
        leaves = sum(int(t.get("num_leaves", 1)) for t in dump["tree_info"])
        return {
            "rounds": int(self.booster.current_iteration()),
            "trees": int(self.booster.num_trees()),
            "leaves": int(leaves),
            "features": len(self.features),
        }


def _as_matrix(x: Any, features: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """A float64 matrix and its column names (DataFrames are taken by name when given)."""
    if isinstance(x, pd.DataFrame):
        cols = list(features) if features is not None else [str(c) for c in x.columns]
        missing = [c for c in cols if c not in x.columns]
        if missing:
            raise ValueError(f"feature columns missing: {missing[:10]}")
        return x[cols].to_numpy(dtype=np.float64, na_value=np.nan), cols
    m = np.asarray(x, dtype=np.float64)
    if m.ndim != 2:
        raise ValueError(f"features must be 2-D, got shape {m.shape}")
    cols = list(features) if features is not None else [f"f{i}" for i in range(m.shape[1])]
    if len(cols) != m.shape[1]:
        raise ValueError(f"{len(cols)} feature names for {m.shape[1]} columns")
    return m, cols


def _labels(y: Any, classes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Class codes (-1 for a missing label) and the mask of labelled rows."""
    s = pd.Series(np.asarray(y, dtype=object))
    present = s.notna().to_numpy()
    codes = np.full(len(s), -1, dtype=np.int64)
    if present.any():
        idx = pd.Index(list(classes)).get_indexer(pd.Index(s[present].astype(str)))
        if (idx < 0).any():
            bad = sorted(set(s[present][idx < 0].astype(str)))[:5]
            raise ValueError(f"labels not in classes {list(classes)}: {bad}")
        codes[present] = idx
    return codes, present


def _class_weights(codes: np.ndarray, k: int, mode: str) -> np.ndarray:
    """Per-class weight (0 for classes absent from training)."""
    counts = np.bincount(codes, minlength=k).astype(np.float64)
    if mode == "none":
        return np.ones(k)
    present = counts > 0
    w = np.zeros(k)
    w[present] = codes.size / (present.sum() * counts[present])
    return w


def lgb_params(cfg: TrainConfig, n_classes: int) -> dict[str, Any]:
    """The LightGBM parameter dict of a config (every seed derived from ``cfg.seed``)."""
    return {
        "objective": "multiclass",
        "num_class": n_classes,
        "metric": "multi_logloss",
        "boosting_type": "gbdt",
        "num_leaves": cfg.num_leaves,
        "max_depth": cfg.max_depth,
        "learning_rate": cfg.learning_rate,
        "min_data_in_leaf": cfg.min_child_samples,
        "min_sum_hessian_in_leaf": cfg.min_child_weight,
        "feature_fraction": cfg.feature_fraction,
        "bagging_fraction": cfg.bagging_fraction,
        "bagging_freq": cfg.bagging_freq if cfg.bagging_fraction < 1.0 else 0,
        "lambda_l1": cfg.lambda_l1,
        "lambda_l2": cfg.lambda_l2,
        "max_bin": cfg.max_bin,
        "num_threads": cfg.num_threads,
        "deterministic": cfg.deterministic,
        "force_col_wise": True,
        "seed": cfg.seed,
        "bagging_seed": cfg.seed + 1,
        "feature_fraction_seed": cfg.seed + 2,
        "data_random_seed": cfg.seed + 3,
        "extra_seed": cfg.seed + 4,
        "verbosity": -1,
    }


def _fit(
    params: dict[str, Any],
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    w_tr: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    w_val: np.ndarray | None,
    features: list[str],
    n_rounds: int,
    early_stopping: int,
) -> tuple[lgb.Booster, int, float | None]:
    """Train one booster; returns it truncated to the best iteration, that iteration and the
    best validation score."""
    dtrain = lgb.Dataset(
        x_tr,
        label=y_tr,
        weight=w_tr,
        feature_name=features,
        free_raw_data=True,
        params={"max_bin": params["max_bin"], "verbosity": -1},
    )
    callbacks: list[Any] = []
    valid_sets: list[lgb.Dataset] = []
    if x_val is not None and y_val is not None and y_val.size:
        dval = lgb.Dataset(x_val, label=y_val, weight=w_val, reference=dtrain)
        valid_sets = [dval]
        callbacks.append(lgb.early_stopping(early_stopping, first_metric_only=True, verbose=False))
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=n_rounds,
        valid_sets=valid_sets or None,
        valid_names=["val"] if valid_sets else None,
        callbacks=callbacks,
    )
    best = int(booster.best_iteration) if valid_sets and booster.best_iteration > 0 else None
    score = None
    if best is not None:
        score = float(booster.best_score["val"][params["metric"]])
    best = best or int(booster.current_iteration())
    if best < booster.current_iteration():
        booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    return booster, best, score


def train_model(
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    classes: Sequence[str],
    config: TrainConfig | None = None,
    features: Sequence[str] | None = None,
) -> TrainedModel:
    """Train a multiclass LightGBM model with early stopping on ``(x_val, y_val)``.

    ``x_*``: DataFrames (columns ``features``, default all) or 2-D arrays; ``y_*``: class labels
    (values of ``classes``; None/NaN rows are dropped). ``x_val`` may be None or empty: then
    all ``n_estimators`` rounds are trained. Class codes follow ``classes`` exactly, so
    :func:`predict_proba` columns are in that order.
    """
    cfg = config or TrainConfig()
    cls = tuple(str(c) for c in classes)
    if len(set(cls)) != len(cls) or len(cls) < 2:
        raise ValueError(f"need at least two distinct classes, got {cls}")
    k = len(cls)
    xt, names = _as_matrix(x_train, features)
    yt, keep_t = _labels(y_train, cls)
    if yt.size != xt.shape[0]:
        raise ValueError(f"{xt.shape[0]} training rows but {yt.size} labels")
    xt, yt = xt[keep_t], yt[keep_t]
    if yt.size == 0:
        raise ValueError("no labelled training rows")
    if np.unique(yt).size < 2:
        raise ValueError("training rows hold a single class: nothing to learn")
    cw = _class_weights(yt, k, cfg.class_weight)
    wt = cw[yt]
    xv = yv = wv = None
    if x_val is not None:
        xv_, _ = _as_matrix(x_val, names if isinstance(x_val, pd.DataFrame) else None)
        if xv_.shape[1] != xt.shape[1]:
            raise ValueError(f"validation has {xv_.shape[1]} features, training {xt.shape[1]}")
        yv_, keep_v = _labels(y_val, cls)
        if yv_.size != xv_.shape[0]:
            raise ValueError(f"{xv_.shape[0]} validation rows but {yv_.size} labels")
        if keep_v.any():
            xv, yv = xv_[keep_v], yv_[keep_v]
            # a class absent from training keeps weight 0 in validation too
            wv = cw[yv]
            if not (wv > 0).any():
                xv = yv = wv = None
    params = lgb_params(cfg, k)
    info: dict[str, Any] = {
        "n_train": int(yt.size),
        "n_val": 0 if yv is None else int(yv.size),
        "class_counts_train": {
            c: int(n) for c, n in zip(cls, np.bincount(yt, minlength=k), strict=True)
        },
        "class_weights": {c: float(w) for c, w in zip(cls, cw, strict=True)},
    }
    if cfg.optuna_trials > 0:
        if xv is None or yv is None or wv is None:
            raise ValueError("optuna_trials > 0 needs a validation slice (val_share > 0)")
        params, study_info = _optuna_search(cfg, params, xt, yt, wt, xv, yv, wv, names)
        info["optuna"] = study_info
    booster, best, score = _fit(
        params, xt, yt, wt, xv, yv, wv, names, cfg.n_estimators, cfg.early_stopping_rounds
    )
    info["val_multi_logloss_weighted"] = score
    info["early_stopped"] = bool(xv is not None and best < cfg.n_estimators)
    offset = None
    if cfg.class_weight == "balanced" and cfg.prior_correction:
        counts = np.bincount(yt, minlength=k).astype(np.float64)
        offset = np.log((counts + 1.0) / (counts.sum() + k))
    return TrainedModel(
        booster=booster,
        classes=cls,
        features=tuple(names),
        best_iteration=best,
        params={k_: v for k_, v in params.items() if k_ != "verbosity"},
        logit_offset=offset,
        info=info,
    )


def train_regressor(
    x_train: Any,
    y_train: Any,
    x_val: Any,
    y_val: Any,
    config: TrainConfig | None = None,
    features: Sequence[str] | None = None,
    objective: Literal["huber", "regression"] = "huber",
    *,
    target_name: str | None = None,
    target_units: str | None = None,
) -> TrainedModel:
    """Train a LightGBM regression model (the direction model) with early stopping on
    ``(x_val, y_val)``: same knobs, seeds and determinism as :func:`train_model`, no class
    weights and no logit offset; the result has ``classes == ()`` and
    :func:`predict_value` gives its prediction. Rows with a non-finite target are dropped.
    ``huber`` (default) bounds the pull of the heavy-tailed return targets (``alpha`` 1.0 in
    the target's units: meant for volatility-normalized returns). ``target_name`` /
    ``target_units``: what the target is (e.g. the label column and "volatilities"), recorded
    in ``info`` (so in the registry manifest's ``train_info``) when given."""
    cfg = config or TrainConfig()
    xt, names = _as_matrix(x_train, features)
    yt = np.asarray(y_train, dtype=np.float64)
    if yt.size != xt.shape[0]:
        raise ValueError(f"{xt.shape[0]} training rows but {yt.size} targets")
    keep = np.isfinite(yt)
    xt, yt = xt[keep], yt[keep]
    if yt.size == 0:
        raise ValueError("no training rows with a finite target")
    xv = yv = None
    if x_val is not None:
        xv_, _ = _as_matrix(x_val, names if isinstance(x_val, pd.DataFrame) else None)
        if xv_.shape[1] != xt.shape[1]:
            raise ValueError(f"validation has {xv_.shape[1]} features, training {xt.shape[1]}")
        yv_ = np.asarray(y_val, dtype=np.float64)
        if yv_.size != xv_.shape[0]:
            raise ValueError(f"{xv_.shape[0]} validation rows but {yv_.size} targets")
        kv = np.isfinite(yv_)
        if kv.any():
            xv, yv = xv_[kv], yv_[kv]
    params = lgb_params(cfg, 1)
    del params["num_class"]
    params["objective"] = objective
    params["metric"] = "huber" if objective == "huber" else "l2"
    if objective == "huber":
        params["alpha"] = 1.0
    wt = np.ones(yt.size)
    wv = None if yv is None else np.ones(yv.size)
    booster, best, score = _fit(
        params, xt, yt, wt, xv, yv, wv, names, cfg.n_estimators, cfg.early_stopping_rounds
    )
    info: dict[str, Any] = {
        "n_train": int(yt.size),
        "n_val": 0 if yv is None else int(yv.size),
        "target_mean_train": float(yt.mean()),
        "target_std_train": float(yt.std()),
        f"val_{params['metric']}": score,
        "early_stopped": bool(xv is not None and best < cfg.n_estimators),
    }
    if target_name is not None:
        info["target_name"] = str(target_name)
    if target_units is not None:
        info["target_units"] = str(target_units)
    return TrainedModel(
        booster=booster,
        classes=(),
        features=tuple(names),
        best_iteration=best,
        params={k_: v for k_, v in params.items() if k_ != "verbosity"},
        logit_offset=None,
        info=info,
    )


def predict_value(model: TrainedModel, x: Any) -> np.ndarray:
    """(n,) predictions of a regression model (raw score = prediction for l2 and huber).

    ``x`` as in :func:`predict_proba`."""
    if not model.is_regression:
        raise ValueError("predict_value needs a regression model (classes == ())")
    if isinstance(x, pd.DataFrame):
        m, _ = _as_matrix(x, model.features)
    else:
        m = np.asarray(x, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != len(model.features):
            raise ValueError(f"expected (n, {len(model.features)}) features, got {m.shape}")
    if m.shape[0] == 0:
        return np.zeros(0)
    return np.asarray(model.booster.predict(m, raw_score=True), dtype=np.float64).reshape(-1)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def predict_proba(model: TrainedModel, x: Any) -> np.ndarray:
    """(n, k) class probabilities in ``model.classes`` order.

    ``x``: a DataFrame holding the model's features (taken by name, in model order) or an
    array whose columns are already in model order. A regression model (the direction model,
    ``classes == ()``) has no probabilities: a ValueError (use :func:`predict_value`).
    """
    if model.is_regression:
        raise ValueError(
            "predict_proba needs a classifier; this is a regression model (classes == ()): "
            "use predict_value"
        )
    if isinstance(x, pd.DataFrame):
        m, _ = _as_matrix(x, model.features)
    else:
        m = np.asarray(x, dtype=np.float64)
        if m.ndim != 2 or m.shape[1] != len(model.features):
            raise ValueError(f"expected (n, {len(model.features)}) features, got {m.shape}")
    if m.shape[0] == 0:
        return np.zeros((0, model.n_classes))
    raw = np.asarray(model.booster.predict(m, raw_score=True), dtype=np.float64)
    return proba_from_raw(model, raw.reshape(m.shape[0], model.n_classes))


def proba_from_raw(model: TrainedModel, raw: np.ndarray) -> np.ndarray:
    """Probabilities from LightGBM raw scores (n, k): the logit offset, then the softmax (every
    runtime, LightGBM or compiled, ends here)."""
    if model.logit_offset is not None:
        raw = raw + model.logit_offset
    return _softmax(raw)


def _optuna_search(
    cfg: TrainConfig,
    base: dict[str, Any],
    xt: np.ndarray,
    yt: np.ndarray,
    wt: np.ndarray,
    xv: np.ndarray,
    yv: np.ndarray,
    wv: np.ndarray,
    names: list[str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bounded TPE search scored on the validation slice; returns the best params."""
    import optuna

    def objective(trial: optuna.Trial) -> float:
        p = dict(base)
        p["num_leaves"] = trial.suggest_int("num_leaves", 4, cfg.optuna_max_leaves, log=True)
        p["learning_rate"] = trial.suggest_float("learning_rate", 0.01, 0.2, log=True)
        p["min_data_in_leaf"] = trial.suggest_int("min_child_samples", 20, 1000, log=True)
        p["feature_fraction"] = trial.suggest_float("feature_fraction", 0.3, 1.0)
        p["bagging_fraction"] = trial.suggest_float("bagging_fraction", 0.5, 1.0)
        p["bagging_freq"] = 1 if p["bagging_fraction"] < 1.0 else 0
        p["lambda_l2"] = trial.suggest_float("lambda_l2", 1e-3, 100.0, log=True)
        _, best, score = _fit(
            p, xt, yt, wt, xv, yv, wv, names, cfg.n_estimators, cfg.early_stopping_rounds
        )
        trial.set_user_attr("best_iteration", best)
        return math.inf if score is None else score

    old = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(
            direction="minimize", sampler=optuna.samplers.TPESampler(seed=cfg.seed)
        )
        study.optimize(objective, n_trials=cfg.optuna_trials, timeout=cfg.optuna_timeout_s)
    finally:
        optuna.logging.set_verbosity(old)
    best = study.best_trial
    params = dict(base)
    bp = best.params
    params.update(
        num_leaves=bp["num_leaves"],
        learning_rate=bp["learning_rate"],
        min_data_in_leaf=bp["min_child_samples"],
        feature_fraction=bp["feature_fraction"],
        bagging_fraction=bp["bagging_fraction"],
        bagging_freq=1 if bp["bagging_fraction"] < 1.0 else 0,
        lambda_l2=bp["lambda_l2"],
    )
    value = float(best.value) if best.value is not None else math.inf
    log.info("optuna: %d trials, best val logloss %.5f", len(study.trials), value)
    return params, {
        "n_trials": len(study.trials),
        "best_value": value,
        "best_params": dict(bp),
        "best_iteration": best.user_attrs.get("best_iteration"),
    }
