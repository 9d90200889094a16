"""Data drift between a reference window of feature rows and a recent one.

Three views of the same question ("do recent rows still look like the rows the model learned
from?"), each cheap and each with its own threshold in :class:`DriftConfig`:

* PSI (population stability index) per feature, on quantile bins of the reference;
* an Evidently data-drift report (per-column statistical test or distance, the share of
  drifted columns) kept as HTML for people and summarised as JSON for machines;
* adversarial validation: out-of-fold ROC AUC of a small classifier telling reference rows
  from recent rows (0.5 = indistinguishable, 1.0 = trivially separable).

``drift_summary`` combines them (plus prediction statistics and, when known, the champion's
recent IC) into one JSON-able dict with a ``retrain`` flag and the ``reasons`` behind it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

KEY_COLUMNS: tuple[str, ...] = (
    "symbol",
    "event_timestamp",
    "last_tick_ts",
    "row_event_ns",
    "last_tick_ns",
)
PSI_EPS = 1e-4
SESSION_PATH_FEATURES: tuple[str, ...] = (
    "minutes_since_open", "minutes_to_close", "tod_sin", "tod_cos", "sess_ret_bps",
    "sess_range_bps", "sess_rangepos", "poc_dist_bps", "va_width_bps", "va_pos",
    "sess_log_volume", "vwap_dev_bps", "fracdiff_b30", "fracdiff_t180",
)


class DriftConfig(BaseModel):
    """Thresholds and sample sizes of the drift checks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    psi_threshold: float = Field(
        0.2, gt=0, description="a feature whose PSI exceeds this counts as drifted (PSI)"
    )
    psi_bins: int = Field(10, ge=2, le=100, description="quantile bins of the reference for PSI")
    drifted_share_threshold: float = Field(
        0.5,  # 0.3 flagged a stable simulated day (0.34): Evidently's per-column tests are tight
        gt=0,
        le=1,
        description="retrain when the share of drifted features (Evidently's per-column tests) "
        "exceeds this",
    )
    adversarial_auc_threshold: float = Field(
        0.7,
        gt=0.5,
        le=1,
        description="retrain when the out-of-fold AUC of the reference-vs-recent classifier "
        "exceeds this",
    )
    min_ic: float | None = Field(
        None,
        description="retrain when the champion's recent out-of-sample IC is below this "
        "(None = not checked)",
    )
    evidently_max_rows: int = Field(
        5000, ge=100, description="rows sampled per side for the Evidently report"
    )
    evidently_max_columns: int | None = Field(
        None,
        ge=1,
        description="columns in the Evidently report, evenly spaced over the features (None = "
        "all; Evidently costs ~0.1 s per column whatever the rows)",
    )
    adversarial_max_rows: int = Field(
        5000, ge=100, description="rows sampled per side for adversarial validation"
    )
    adversarial_folds: int = Field(3, ge=2, le=10, description="stratified folds (out-of-fold AUC)")
    adversarial_model: str = Field(
        "logistic", description="adversarial classifier: logistic (default) | lightgbm"
    )
    seed: int = Field(0, description="seed of the row samples and of the classifier")
    exclude_columns: tuple[str, ...] = Field(
        KEY_COLUMNS, description="columns that are keys or timestamps, never compared"
    )
    adversarial_exclude: tuple[str, ...] = Field(
        SESSION_PATH_FEATURES,
        description="features left out of adversarial validation: time of day and session-"
        "cumulative paths, which identify the day a row comes from whatever the regime",
    )
    top_k: int = Field(10, ge=1, description="top PSI features listed in the summary")


def feature_columns(
    reference: pd.DataFrame, current: pd.DataFrame, exclude: Sequence[str] = KEY_COLUMNS
) -> list[str]:
    """Numeric columns present in both frames, in the reference's order, minus ``exclude``."""
    skip = set(exclude)
    return [
        c
        for c in reference.columns
        if c not in skip
        and c in current.columns
        and pd.api.types.is_numeric_dtype(reference[c])
        and pd.api.types.is_numeric_dtype(current[c])
        and not pd.api.types.is_bool_dtype(reference[c])
    ]


def _finite(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def psi(reference: Any, current: Any, bins: int = 10, eps: float = PSI_EPS) -> float:
    """Population stability index of ``current`` against ``reference`` for one feature.

    Bins are the reference's quantiles (ties collapse, so a discrete feature gets one bin per
    distinct value); the outer bins are open-ended so no current value falls outside. Empty
    bins get ``eps``. NaN/inf are dropped on both sides; returns NaN when either side has no
    finite value. Identical samples give 0.
    """
    ref = _finite(reference)
    cur = _finite(current)
    if len(ref) == 0 or len(cur) == 0:
        return math.nan
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    # bin i = values in (edges[i-1], edges[i]]: a discrete value stays in its own bin
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=len(edges) + 1)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=len(edges) + 1)
    p = np.maximum(ref_counts / len(ref), eps)
    q = np.maximum(cur_counts / len(cur), eps)
    return float(np.sum((q - p) * np.log(q / p)))


def psi_table(
    reference: pd.DataFrame, current: pd.DataFrame, columns: Sequence[str], bins: int = 10
) -> dict[str, float]:
    """PSI of every column (NaN where a side has no finite value)."""
    return {c: psi(reference[c], current[c], bins) for c in columns}


def _sample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= n else frame.sample(n=n, random_state=seed)


def _classifier(model: str, seed: int) -> Any:
    if model == "logistic":
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        return make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=0.01, max_iter=1000),
        )
    if model == "lightgbm":
        import lightgbm as lgb

        return lgb.LGBMClassifier(
            n_estimators=100, learning_rate=0.1, num_leaves=15, min_child_samples=20,
            subsample=0.8, subsample_freq=1, colsample_bytree=0.8, n_jobs=2,
            random_state=seed, verbose=-1, importance_type="gain",
        )
    raise ValueError(f"unknown adversarial model {model!r}: logistic | lightgbm")


def _importance(clf: Any) -> np.ndarray:
    if hasattr(clf, "feature_importances_"):
        return np.asarray(clf.feature_importances_, dtype=np.float64)
    return np.abs(np.asarray(clf[-1].coef_, dtype=np.float64)).ravel()


def adversarial_auc(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    seed: int = 0,
    columns: Sequence[str] | None = None,
    folds: int = 3,
    max_rows: int = 5000,
    model: str = "logistic",
) -> dict[str, Any]:
    """Adversarial validation: out-of-fold ROC AUC of a classifier telling reference rows (0)
    from current rows (1), by stratified k-fold. About 0.5 = no drift; near 1 = separable.

    ``model`` is ``"logistic"`` (L2-regularised, C=0.01, on median-imputed standardised
    features: it sees shifts of the distributions) or ``"lightgbm"`` (also interactions, but
    it memorises per-symbol, per-day levels such as spread in bps, so it separates any two
    days of a few symbols: AUC ~0.95 between two days of the same stationary simulator).

    Returns ``{"auc", "n_reference", "n_current", "top_features"}`` (the columns that weigh
    most in the classifier, those that betray the shift).
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    cols = list(columns) if columns is not None else feature_columns(reference, current)
    ref = _sample(reference[cols], max_rows, seed)
    cur = _sample(current[cols], max_rows, seed + 1)
    if len(ref) < folds or len(cur) < folds or not cols:
        return {"auc": math.nan, "n_reference": len(ref), "n_current": len(cur),
                "top_features": []}
    x = np.vstack([ref.to_numpy(np.float64), cur.to_numpy(np.float64)])
    x[~np.isfinite(x)] = np.nan
    y = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    oof = np.zeros(len(y))
    weight = np.zeros(len(cols))
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in skf.split(x, y):
        clf = _classifier(model, seed)
        clf.fit(x[train], y[train])
        oof[test] = np.asarray(clf.predict_proba(x[test]))[:, 1]
        weight += _importance(clf)
    order = np.argsort(-weight)[:10]
    return {
        "auc": float(roc_auc_score(y, oof)),
        "n_reference": int(len(ref)),
        "n_current": int(len(cur)),
        "top_features": [cols[i] for i in order if weight[i] > 0],
    }


def _is_p_value(method: str) -> bool:
    return "p_value" in method.lower() or "p-value" in method.lower()


def evidently_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Sequence[str],
    drift_share: float = 0.5,
) -> tuple[str, dict[str, Any]]:
    """Run Evidently's ``DataDriftPreset`` on ``columns`` (all numerical).

    Returns ``(html, summary)``: the standalone HTML report and ``{"drifted_share",
    "n_drifted", "n_columns", "columns": {name: {"method", "threshold", "score",
    "drifted"}}, "skipped"}`` (columns empty on a side, which Evidently cannot test).
    Evidently picks the test per column (K-S p-value up to 1000 rows, normed Wasserstein
    distance above): a p-value drifts when below its threshold, a
    distance when at or above it.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref = reference[list(columns)].astype(np.float64).replace([np.inf, -np.inf], np.nan)
    cur = current[list(columns)].astype(np.float64).replace([np.inf, -np.inf], np.nan)
    # Evidently refuses a column that is empty on either side (e.g. leader features without
    # a leader): those are reported as skipped, not tested
    usable = ref.notna().any() & cur.notna().any()
    cols = [c for c in columns if usable[c]]
    skipped = [c for c in columns if not usable[c]]
    if not cols:
        return "", {"drifted_share": math.nan, "n_drifted": 0, "n_columns": 0, "columns": {},
                    "skipped": skipped}
    definition = DataDefinition(numerical_columns=cols)
    snapshot = Report([DataDriftPreset(columns=cols, drift_share=drift_share)]).run(
        Dataset.from_pandas(cur[cols], data_definition=definition),
        Dataset.from_pandas(ref[cols], data_definition=definition),
    )
    per_column: dict[str, dict[str, Any]] = {}
    for metric in snapshot.dict()["metrics"]:
        cfg = metric.get("config", {})
        if not str(cfg.get("type", "")).endswith("ValueDrift"):
            continue
        method = str(cfg.get("method", ""))
        threshold = float(cfg.get("threshold", math.nan))
        score = float(metric["value"]) if metric.get("value") is not None else math.nan
        if math.isnan(score):
            drifted = False
        elif _is_p_value(method):
            drifted = score < threshold
        else:
            drifted = score >= threshold
        per_column[str(cfg["column"])] = {
            "method": method,
            "threshold": threshold,
            "score": score,
            "drifted": bool(drifted),
        }
    n_drifted = sum(1 for v in per_column.values() if v["drifted"])
    summary = {
        "drifted_share": n_drifted / len(per_column) if per_column else math.nan,
        "n_drifted": n_drifted,
        "n_columns": len(per_column),
        "columns": per_column,
        "skipped": skipped,
    }
    return snapshot.get_html_str(as_iframe=False), summary


def prediction_stats(scores: Any) -> dict[str, float]:
    """Mean, spread and quantiles of model scores (finite values only)."""
    s = _finite(scores)
    if len(s) == 0:
        return {"n": 0}
    q = np.quantile(s, [0.05, 0.25, 0.5, 0.75, 0.95])
    return {
        "n": int(len(s)),
        "mean": float(s.mean()),
        "std": float(s.std(ddof=1)) if len(s) > 1 else 0.0,
        "q05": float(q[0]),
        "q25": float(q[1]),
        "q50": float(q[2]),
        "q75": float(q[3]),
        "q95": float(q[4]),
    }


def _json_float(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def drift_summary(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    config: DriftConfig | None = None,
    ref_scores: Any = None,
    cur_scores: Any = None,
    recent_ic: float | None = None,
    with_html: bool = False,
) -> dict[str, Any]:
    """All drift checks between ``reference`` and ``current`` as one JSON-able dict.

    ``retrain`` is True when any threshold is crossed: adversarial AUC above
    ``adversarial_auc_threshold``, Evidently's drifted share above
    ``drifted_share_threshold``, or ``recent_ic`` below ``min_ic``; ``reasons`` says which.
    PSI is reported per feature (and the count above ``psi_threshold``) as evidence, not as a
    trigger of its own. With ``with_html`` the Evidently HTML is returned under ``"html"``
    (pop it before serialising).
    """
    cfg = config or DriftConfig()
    cols = feature_columns(reference, current, cfg.exclude_columns)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    psis = psi_table(reference, current, cols, cfg.psi_bins)
    timings["psi_s"] = time.perf_counter() - t0
    finite_psi = {k: v for k, v in psis.items() if math.isfinite(v)}
    drifted_psi = sorted((k for k, v in finite_psi.items() if v > cfg.psi_threshold),
                         key=lambda k: -finite_psi[k])
    top = sorted(finite_psi, key=lambda k: -finite_psi[k])[: cfg.top_k]

    t0 = time.perf_counter()
    ev_cols = cols
    if cfg.evidently_max_columns is not None and len(cols) > cfg.evidently_max_columns:
        # evenly spaced over the feature families, so the drifted share stays unbiased
        idx = np.linspace(0, len(cols) - 1, cfg.evidently_max_columns).round().astype(int)
        ev_cols = [cols[i] for i in sorted(set(idx.tolist()))]
    html, ev = evidently_report(
        _sample(reference, cfg.evidently_max_rows, cfg.seed),
        _sample(current, cfg.evidently_max_rows, cfg.seed + 1),
        ev_cols,
        drift_share=cfg.drifted_share_threshold,
    )
    timings["evidently_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    adv_cols = [c for c in cols if c not in set(cfg.adversarial_exclude)]
    adv = adversarial_auc(reference, current, cfg.seed, adv_cols, cfg.adversarial_folds,
                          cfg.adversarial_max_rows, cfg.adversarial_model)
    timings["adversarial_s"] = time.perf_counter() - t0

    reasons: list[str] = []
    auc = adv["auc"]
    if math.isfinite(auc) and auc > cfg.adversarial_auc_threshold:
        reasons.append(
            f"adversarial AUC {auc:.3f} > {cfg.adversarial_auc_threshold:g}"
        )
    share = ev["drifted_share"]
    if math.isfinite(share) and share > cfg.drifted_share_threshold:
        reasons.append(
            f"drifted share {share:.3f} > {cfg.drifted_share_threshold:g} "
            f"({ev['n_drifted']}/{ev['n_columns']} features)"
        )
    if cfg.min_ic is not None and recent_ic is not None and math.isfinite(recent_ic):
        if recent_ic < cfg.min_ic:
            reasons.append(f"recent IC {recent_ic:.4f} < {cfg.min_ic:g}")

    out: dict[str, Any] = {
        "n_reference": int(len(reference)),
        "n_current": int(len(current)),
        "n_features": len(cols),
        "psi": {k: _json_float(v) for k, v in psis.items()},
        "psi_top": [{"feature": k, "psi": finite_psi[k]} for k in top],
        "n_drifted_psi": len(drifted_psi),
        "drifted_psi": drifted_psi,
        "psi_drifted_share": len(drifted_psi) / len(cols) if cols else None,
        "drifted_share": _json_float(share),
        "n_drifted": ev["n_drifted"],
        "evidently_skipped": ev["skipped"],
        "evidently_columns": {
            k: {**v, "score": _json_float(v["score"]), "threshold": _json_float(v["threshold"])}
            for k, v in ev["columns"].items()
        },
        "adversarial_auc": _json_float(auc),
        "adversarial_top_features": adv["top_features"],
        "recent_ic": _json_float(recent_ic) if recent_ic is not None else None,
        "thresholds": {
            "psi": cfg.psi_threshold,
            "drifted_share": cfg.drifted_share_threshold,
            "adversarial_auc": cfg.adversarial_auc_threshold,
            "min_ic": cfg.min_ic,
        },
        "retrain": bool(reasons),
        "reasons": reasons,
        "timings": timings,
    }
    if ref_scores is not None:
        out["reference_predictions"] = prediction_stats(ref_scores)
    if cur_scores is not None:
        out["current_predictions"] = prediction_stats(cur_scores)
    if ref_scores is not None and cur_scores is not None:
        out["prediction_psi"] = _json_float(psi(ref_scores, cur_scores, cfg.psi_bins))
    if with_html:
        out["html"] = html
    log.info(
        "drift: %d vs %d rows, AUC %.3f, drifted share %.3f, %d PSI>%.2g, retrain=%s",
        len(reference), len(current), auc, share, len(drifted_psi), cfg.psi_threshold,
        bool(reasons),
    )
    return out
