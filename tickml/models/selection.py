"""SHAP feature selection: importance per fold from training rows only, stability across folds.

Per fold (:func:`fold_importance`): a first model is trained on *all* features from the fold's
training rows (early stopping on its validation slice; the training config's values, never an
Optuna search: the first pass only ranks features), and ``shap.TreeExplainer`` explains a
seeded sample of those training rows (default 2,000). A feature's importance in one model is
the sum over classes of its mean |SHAP value| (log-odds units). With both direction models
(short 5-class, long 3-class) each model's importances are normalised to sum to 1 and the two
are added, so both horizons weigh the same whatever their number of classes; the per-model
values are kept in the table.

Across folds (:func:`aggregate_importance`): mean and standard deviation of each feature's
importance, ``top_k_share`` (the share of folds where it is in that fold's own top-K),
``mean_fold_rank`` (its rank in each fold's own importance order, 1 = most important, ties by
name, averaged over folds), the compact ``stability`` list of :meth:`SelectionResult.to_dict`
(every feature selected in at least one fold, by decreasing share then mean rank),
``fold_spearman_mean`` (the mean pairwise Spearman correlation of the folds' importance vectors:
1 = every fold ranks the features the same way), and the top-K by mean importance (ties broken
by name; features with zero importance everywhere are never selected unless nothing has
importance at all).

Nothing here sees a test fold: :func:`fold_importance` takes ``fold.train`` / ``fold.val``
rows only (the experiment runner uses each fold's own top-K for that fold's models, and the
pooled top-K only for the production models, which train on everything anyway).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats

from tickml.evaluation.splits import Fold
from tickml.models.train import TrainConfig, TrainedModel, train_model

log = logging.getLogger(__name__)


class SelectionConfig(BaseModel):
    """SHAP selection knobs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    top_k: int = Field(
        default=70, ge=1, description="features kept (the FeatureService of training and live)"
    )
    shap_sample: int = Field(
        default=2000,
        ge=50,
        description="training rows explained per fold and model (a seeded sample; all rows "
        "when fewer)",
    )
    seed: int = Field(default=0, description="seed of the SHAP row sample")


def shap_importance(model: TrainedModel, x: Any, sample: int = 2000, seed: int = 0) -> pd.Series:
    """Sum over classes of the mean |SHAP| of each feature on a seeded sample of ``x``'s rows.

    ``x``: a DataFrame with the model's features (or an array in model order). Returns a Series
    indexed by feature, in model order.
    """
    import shap

    if isinstance(x, pd.DataFrame):
        m = x[list(model.features)].to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        m = np.asarray(x, dtype=np.float64)
    n = m.shape[0]
    if n == 0:
        raise ValueError("no rows to explain")
    if n > sample:
        rows = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))
        m = m[rows]
    explainer = shap.TreeExplainer(model.booster)
    values = np.asarray(explainer.shap_values(m, check_additivity=False), dtype=np.float64)
    p = len(model.features)
    # shap >= 0.45: (rows, features, classes); older: a list of (rows, features) per class
    if values.ndim == 3 and values.shape[1] == p:
        imp = np.abs(values).mean(axis=0).sum(axis=1)
    elif values.ndim == 3 and values.shape[2] == p:
        imp = np.abs(values).mean(axis=1).sum(axis=0)
    elif values.ndim == 2 and values.shape[1] == p:
        imp = np.abs(values).mean(axis=0)
    else:
        raise RuntimeError(f"unexpected SHAP output shape {values.shape} for {p} features")
    return pd.Series(imp, index=list(model.features), name="importance")


@dataclass(eq=False)
class FoldImportance:
    """One fold's first-pass importances (training rows only)."""

    fold: int
    #: combined importance (per-model normalised, summed), indexed by feature
    importance: pd.Series
    #: per model name ("short", "long"): raw sum-over-classes mean |SHAP|
    per_model: dict[str, pd.Series]
    #: per model name: the first-pass model's best iteration and training rows
    models_info: dict[str, dict[str, Any]]

    def top(self, k: int) -> list[str]:
        return top_features(self.importance, k)


def rank_features(importance: pd.Series) -> list[str]:
    """Features by decreasing importance, ties by name (deterministic)."""
    frame = pd.DataFrame({"f": importance.index.astype(str), "v": importance.to_numpy()})
    frame = frame.sort_values(["v", "f"], ascending=[False, True], kind="stable")
    return frame["f"].tolist()


def top_features(importance: pd.Series, k: int) -> list[str]:
    """The ``k`` most important features; zero-importance ones only if nothing scored."""
    order = rank_features(importance)
    nonzero = [f for f in order if importance[f] > 0]
    return (nonzero or order)[:k]


def combine_importances(per_model: dict[str, pd.Series]) -> pd.Series:
    """Each model's importances normalised to sum 1 (0 if all zero), then summed."""
    total: pd.Series | None = None
    for s in per_model.values():
        tot = float(s.sum())
        norm = s / tot if tot > 0 else s * 0.0
        total = norm if total is None else total.add(norm, fill_value=0.0)
    if total is None:
        raise ValueError("no importances to combine")
    return total.rename("importance")


def fold_importance(
    frame: pd.DataFrame,
    fold: Fold,
    features: Sequence[str],
    labels: dict[str, tuple[str, Sequence[str]]],
    train_config: TrainConfig | None = None,
    config: SelectionConfig | None = None,
    train_rows: np.ndarray | None = None,
    val_rows: np.ndarray | None = None,
) -> FoldImportance:
    """First-pass models on all ``features`` and their SHAP importances, for one fold.

    ``labels`` maps a model name to (label column, classes), e.g. ``{"short": ("label_short",
    CLASSES_5), "long": ("label_long", CLASSES_3)}``. Only ``fold.train`` rows (explained and
    trained on) and ``fold.val`` rows (early stopping) are read, or the subsets given by
    ``train_rows`` / ``val_rows`` (positions, e.g. after a training-set filter); the test rows
    never are.
    """
    # the first pass only ranks features: no hyper-parameter search here
    tcfg = (train_config or TrainConfig()).model_copy(update={"optuna_trials": 0})
    scfg = config or SelectionConfig()
    tr = fold.train if train_rows is None else np.asarray(train_rows)
    va = fold.val if val_rows is None else np.asarray(val_rows)
    if np.intersect1d(tr, fold.test).size or np.intersect1d(va, fold.test).size:
        raise ValueError("selection rows overlap the fold's test rows")
    cols = list(features)
    x_tr = frame.iloc[tr][cols]
    x_va = frame.iloc[va][cols]
    per_model: dict[str, pd.Series] = {}
    info: dict[str, dict[str, Any]] = {}
    for name, (label_col, classes) in labels.items():
        y_tr = frame.iloc[tr][label_col].to_numpy(dtype=object)
        y_va = frame.iloc[va][label_col].to_numpy(dtype=object)
        model = train_model(x_tr, y_tr, x_va, y_va, classes, tcfg, cols)
        labelled = pd.notna(y_tr)
        per_model[name] = shap_importance(
            model, x_tr[labelled], scfg.shap_sample, scfg.seed + fold.fold
        )
        info[name] = {
            "best_iteration": model.best_iteration,
            "n_train": model.info["n_train"],
            "optuna": "optuna" in model.info,
        }
    return FoldImportance(fold.fold, combine_importances(per_model), per_model, info)


@dataclass(eq=False)
class SelectionResult:
    """Importances across folds and the selected features."""

    #: one row per feature, by rank: feature, rank, selected, mean_importance, std_importance,
    #: top_k_share, mean_fold_rank, and per-model means (mean_importance_short, ...)
    table: pd.DataFrame
    #: the top-K features, by decreasing mean importance
    features: list[str]
    top_k: int
    n_folds: int
    #: mean pairwise Spearman correlation of the folds' importance vectors (None: one fold)
    fold_spearman_mean: float | None

    def stability(self) -> list[dict[str, Any]]:
        """Per feature selected in at least one fold: the share of folds that selected it (in
        the fold's own top-K), its mean rank over folds and whether the pooled top-K has it;
        by decreasing share, then mean rank."""
        tab = self.table[self.table["top_k_share"] > 0]
        tab = tab.sort_values(
            ["top_k_share", "mean_fold_rank", "feature"], ascending=[False, True, True]
        )
        return [
            {
                "feature": str(r.feature),
                "top_k_share": _plain(r.top_k_share),
                "mean_fold_rank": _plain(r.mean_fold_rank),
                "selected": bool(r.selected),
            }
            for r in tab.itertuples(index=False)
        ]

    def to_dict(self, max_rows: int | None = None) -> dict[str, Any]:
        tab = self.table if max_rows is None else self.table.head(max_rows)
        rows = [{k: _plain(v) for k, v in rec.items()} for rec in tab.to_dict(orient="records")]
        return {
            "features": list(self.features),
            "top_k": self.top_k,
            "n_folds": self.n_folds,
            "fold_spearman_mean": self.fold_spearman_mean,
            "table": rows,
            "stability": self.stability(),
        }


def _plain(v: Any) -> Any:
    """A JSON-safe scalar (NaN -> None, numpy -> Python)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if np.isfinite(v) else None
    return v


def aggregate_importance(folds: Sequence[FoldImportance], top_k: int) -> SelectionResult:
    """Mean, std and stability of the folds' importances; the top-K by mean importance."""
    if not folds:
        raise ValueError("no folds to aggregate")
    mat = pd.concat([f.importance.rename(f.fold) for f in folds], axis=1).fillna(0.0)
    names = [str(c) for c in mat.index]
    mean = mat.mean(axis=1)
    std = mat.std(axis=1, ddof=1) if mat.shape[1] > 1 else mat.mean(axis=1) * np.nan
    in_top = pd.DataFrame(
        {f.fold: pd.Series(mat.index.isin(f.top(top_k)), index=mat.index) for f in folds}
    )
    fold_ranks = pd.DataFrame(
        {c: pd.Series(np.arange(1, len(mat) + 1), index=rank_features(mat[c])) for c in mat}
    ).reindex(mat.index)
    order = rank_features(mean)
    selected = top_features(mean, top_k)
    table = pd.DataFrame(
        {
            "feature": names,
            "mean_importance": mean.to_numpy(),
            "std_importance": std.to_numpy(),
            "top_k_share": in_top.mean(axis=1).to_numpy(),
            "mean_fold_rank": fold_ranks.mean(axis=1).to_numpy(),
        }
    )
    for model in folds[0].per_model:
        per = pd.concat([f.per_model[model] for f in folds], axis=1).fillna(0.0)
        table[f"mean_importance_{model}"] = per.reindex(mat.index).mean(axis=1).to_numpy()
    rank = {f: i + 1 for i, f in enumerate(order)}
    table["rank"] = table["feature"].map(rank)
    table["selected"] = table["feature"].isin(set(selected))
    table = table.sort_values("rank").reset_index(drop=True)
    lead = ["feature", "rank", "selected"]
    table = table[lead + [c for c in table.columns if c not in lead]]
    rho: float | None = None
    if mat.shape[1] > 1:
        vals = []
        for a, b in itertools.combinations(range(mat.shape[1]), 2):
            x, y = mat.iloc[:, a].to_numpy(), mat.iloc[:, b].to_numpy()
            if np.ptp(x) > 0 and np.ptp(y) > 0:
                vals.append(float(stats.spearmanr(x, y).statistic))
        rho = float(np.mean(vals)) if vals else None
    return SelectionResult(table, selected, top_k, len(folds), rho)
