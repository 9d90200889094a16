"""Online/offline consistency of one day: what live served against what batch computes.

The production skew monitor. Inputs, all for one session day:

* **batch**: the day's features recomputed in batch from the stored ticks
  (:func:`tickml.features.compute_features` on the lake's ticks): what training sees;
* **online**: the rows the live materializers pushed online, from their offline log
  (:func:`tickml.lake.read_online_log`): what serving saw;
* **signals** (optional): the scorer's rows (``live_signals``: symbol, event_timestamp,
  model_version, score, gate) and the models that produced them.

Rows are matched on (symbol, event_timestamp). For each feature: the number and share of the
matched rows whose values differ, and the largest absolute difference; the rows present on one
side only (a live-side gap after a reconnect, a live start after the session start, a day the
vendor file lacks); the input-tick time (``last_tick_ts``) of each matched row (a late tick
shows there first). For the signals: the live score (``P_short(UP) - P_short(DOWN)``, or the
direction model's prediction when the version has one) against the same model's score on the
batch row.

Tolerance (:class:`ConsistencyConfig`; documented in the README, "Online/offline consistency"):
two values match when both are NaN, or ``|live - batch| <= abs_tol + rel_tol * |batch|``. The
defaults are exact (``0``): the live path runs the batch kernels and is bit-exact on a real day
(``tests/test_live_e2e.py``), so any difference is a defect or a data fault worth a look. The
check fails when a feature's mismatch share exceeds ``max_mismatch_share``, the one-side rows
exceed ``max_one_side_share`` of all rows, a matched row's ``last_tick_ts`` differs, or a score
differs by more than ``score_abs_tol``. Failed reports name the rows (up to ``max_named_rows``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from tickml.models.train import TrainedModel
from tickml.monitoring import champion_scores

KEYS = ("symbol", "event_timestamp")
TICK_COLUMN = "last_tick_ts"


@dataclass(frozen=True)
class ConsistencyConfig:
    """Tolerances of the consistency check (module docstring)."""

    abs_tol: float = 0.0
    rel_tol: float = 0.0
    max_mismatch_share: float = 0.0
    max_one_side_share: float = 0.0
    score_abs_tol: float = 0.0
    max_named_rows: int = 50


def _ns(values: Any) -> np.ndarray:
    """int64 UTC nanoseconds of timestamps."""
    idx = pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns")
    return np.asarray(idx.tz_convert(None).to_numpy().view(np.int64))


def _iso(ns: Any) -> str:
    return pd.Timestamp(int(ns), tz="UTC").isoformat()


def _keyed(frame: pd.DataFrame) -> pd.MultiIndex:
    """(symbol, event_timestamp as int64 ns) of each row."""
    return pd.MultiIndex.from_arrays(
        [frame["symbol"].astype(str).to_numpy(), _ns(frame["event_timestamp"])], names=list(KEYS)
    )


def _rows(index: pd.MultiIndex, limit: int) -> list[dict[str, str]]:
    frame = index.to_frame(index=False).sort_values(["event_timestamp", "symbol"])
    return [
        {"symbol": str(s), "event_timestamp": _iso(t)}
        for s, t in frame.head(limit).itertuples(index=False)
    ]


def align(batch: pd.DataFrame, online: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict]:
    """Positions of the matched rows in ``batch`` and ``online`` (same order) and the rows on
    one side only: ``{"batch_only": MultiIndex, "online_only": MultiIndex}``."""
    b_idx, o_idx = _keyed(batch), _keyed(online)
    if b_idx.has_duplicates or o_idx.has_duplicates:
        raise ValueError("rows repeat a (symbol, event_timestamp): deduplicate the inputs first")
    pos = b_idx.get_indexer(o_idx)
    hit = pos >= 0
    in_online = np.zeros(len(b_idx), dtype=bool)
    in_online[pos[hit]] = True
    return (
        pos[hit],
        np.flatnonzero(hit),
        {"batch_only": b_idx[~in_online], "online_only": o_idx[~hit]},
    )


def _differs(b: np.ndarray, o: np.ndarray, cfg: ConsistencyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per row: do the values differ beyond the tolerance, and |difference| (0 when both are
    NaN, inf when one side is NaN and the other is not)."""
    with np.errstate(invalid="ignore"):
        diff = np.abs(o - b)
        nan = np.isnan(diff)
        if nan.any():
            diff[nan] = np.where(np.isnan(b[nan]) & np.isnan(o[nan]), 0.0, np.inf)
        bad = diff > cfg.abs_tol + cfg.rel_tol * np.abs(np.nan_to_num(b))
    bad &= ~(o == b)  # inf == inf: no difference
    return bad, diff


def compare_features(
    batch: pd.DataFrame,
    online: pd.DataFrame,
    features: Sequence[str],
    config: ConsistencyConfig | None = None,
) -> dict[str, Any]:
    """Row-by-row comparison of the day's batch and online feature rows (module docstring)."""
    cfg = config or ConsistencyConfig()
    missing = [f for f in features if f not in batch.columns or f not in online.columns]
    if missing:
        raise ValueError(f"features absent from one side: {missing[:10]}")
    bi, oi, one_side = align(batch, online)
    n = len(bi)
    per_row = np.zeros(n, dtype=np.int64)
    worst = np.full(n, -1, dtype=np.int64)  # index of each row's largest difference
    worst_diff = np.zeros(n)
    per_feature: dict[str, dict[str, Any]] = {}
    for j, name in enumerate(features):
        bad, diff = _differs(
            batch[name].to_numpy(np.float64)[bi], online[name].to_numpy(np.float64)[oi], cfg
        )
        count = int(bad.sum())
        if count:
            per_row += bad
            take = bad & (diff >= worst_diff)
            worst[take], worst_diff[take] = j, diff[take]
        per_feature[name] = {
            "mismatches": count,
            "share": count / n if n else 0.0,
            "max_abs_diff": float(diff.max()) if n else 0.0,
        }
    tick_bad = np.zeros(n, dtype=bool)
    tick_max_s = 0.0
    if TICK_COLUMN in batch.columns and TICK_COLUMN in online.columns and n:
        tb, to = _ns(batch[TICK_COLUMN])[bi], _ns(online[TICK_COLUMN])[oi]
        tick_bad = tb != to
        tick_max_s = float(np.abs(to - tb).max() / 1e9)
    row_bad = (per_row > 0) | tick_bad
    bad = np.flatnonzero(row_bad)
    sym = online["symbol"].astype(str).to_numpy()[oi]
    ev = _ns(online["event_timestamp"])[oi]
    first = bad[np.lexsort((sym[bad], ev[bad]))[: cfg.max_named_rows]]  # earliest rows first
    named = [
        {
            "symbol": str(sym[i]),
            "event_timestamp": _iso(ev[i]),
            "features_differing": int(per_row[i]),
            "worst_feature": features[worst[i]] if worst[i] >= 0 else None,
            "worst_abs_diff": float(worst_diff[i]),
            "last_tick_differs": bool(tick_bad[i]),
        }
        for i in first
    ]
    shares = [v["share"] for v in per_feature.values()]
    return {
        "n_batch": len(batch),
        "n_online": len(online),
        "n_matched": n,
        "n_batch_only": len(one_side["batch_only"]),
        "n_online_only": len(one_side["online_only"]),
        "n_rows_differing": int(row_bad.sum()),
        "n_last_tick_differing": int(tick_bad.sum()),
        "last_tick_max_abs_diff_s": tick_max_s,
        "n_features_differing": int(sum(v["mismatches"] > 0 for v in per_feature.values())),
        "max_mismatch_share": max(shares) if shares else 0.0,
        "features": per_feature,
        "rows_differing": named,
        "batch_only": _rows(one_side["batch_only"], cfg.max_named_rows),
        "online_only": _rows(one_side["online_only"], cfg.max_named_rows),
    }


def compare_scores(
    batch: pd.DataFrame,
    signals: pd.DataFrame,
    models: Mapping[str, TrainedModel],
    config: ConsistencyConfig | None = None,
) -> dict[str, Any]:
    """The live scores against the models' scores on the batch rows.

    ``signals``: symbol, event_timestamp, model_version, score (NaN when the row was not
    scored: stale or no model), gate. ``models``: per version that appears, the model whose
    output is the live score (its direction model, else its short model).
    Rows without a batch row, not scored live, or of a version absent from ``models`` are
    counted, not compared.
    """
    cfg = config or ConsistencyConfig()
    out: dict[str, Any] = {
        "n_signals": len(signals),
        "n_not_scored": 0,
        "n_without_batch_row": 0,
        "n_unknown_version": 0,
        "n_compared": 0,
        "n_differing": 0,
        "max_abs_diff": 0.0,
        "versions": sorted({str(v) for v in signals.get("model_version", []) if v}),
        "rows_differing": [],
    }
    if signals.empty:
        return out
    score = signals["score"].to_numpy(dtype=np.float64)
    scored = np.isfinite(score)
    out["n_not_scored"] = int((~scored).sum())
    sig = signals[scored]
    pos = _keyed(batch).get_indexer(_keyed(sig))
    out["n_without_batch_row"] = int((pos < 0).sum())
    named: list[dict[str, Any]] = []
    for version, rows in sig[pos >= 0].groupby("model_version", sort=True):
        model = models.get(str(version))
        if model is None:
            out["n_unknown_version"] += len(rows)
            continue
        rpos = _keyed(batch).get_indexer(_keyed(rows))
        want = champion_scores(model, batch.iloc[rpos])
        got = rows["score"].to_numpy(dtype=np.float64)
        bad, diff = _differs(want, got, ConsistencyConfig(abs_tol=cfg.score_abs_tol))
        max_diff = float(diff.max()) if diff.size else 0.0
        out["n_compared"] += len(rows)
        out["n_differing"] += int(bad.sum())
        out["max_abs_diff"] = max(out["max_abs_diff"], max_diff)
        for i in np.flatnonzero(bad):
            named.append(
                {
                    "symbol": str(rows["symbol"].iloc[i]),
                    "event_timestamp": pd.Timestamp(rows["event_timestamp"].iloc[i]).isoformat(),
                    "model_version": str(version),
                    "live_score": float(got[i]),
                    "batch_score": float(want[i]),
                }
            )
    out["rows_differing"] = sorted(named, key=lambda r: r["event_timestamp"])[: cfg.max_named_rows]
    return out


def verdict(
    features: Mapping[str, Any], scores: Mapping[str, Any] | None, config: ConsistencyConfig
) -> tuple[bool, list[str]]:
    """(passed, reasons) of a day under the configured tolerances."""
    reasons: list[str] = []
    n_all = features["n_matched"] + features["n_batch_only"] + features["n_online_only"]
    over = {
        k: v["share"]
        for k, v in features["features"].items()
        if v["share"] > config.max_mismatch_share
    }
    if over:
        top = sorted(over.items(), key=lambda kv: -kv[1])[:5]
        reasons.append(
            f"{len(over)} feature(s) differ on more than {config.max_mismatch_share:.2%} of "
            f"{features['n_matched']} matched rows: " + ", ".join(f"{k} {v:.2%}" for k, v in top)
        )
    one_side = features["n_batch_only"] + features["n_online_only"]
    if n_all and one_side / n_all > config.max_one_side_share:
        reasons.append(
            f"{one_side} row(s) on one side only ({features['n_batch_only']} batch only, "
            f"{features['n_online_only']} online only) of {n_all}"
        )
    if features["n_last_tick_differing"]:
        reasons.append(
            f"{features['n_last_tick_differing']} matched row(s) saw a different last input "
            f"tick (up to {features['last_tick_max_abs_diff_s']:.3f} s apart): late or missed "
            "ticks"
        )
    if scores and scores["n_differing"]:
        reasons.append(
            f"{scores['n_differing']} live score(s) differ from the model's score on the batch "
            f"row by more than {config.score_abs_tol} (max {scores['max_abs_diff']:.3g})"
        )
    if not features["n_online"]:
        reasons.append("no online rows")
    return not reasons, reasons


def consistency_report(
    batch: pd.DataFrame,
    online: pd.DataFrame,
    features: Sequence[str],
    signals: pd.DataFrame | None = None,
    models: Mapping[str, TrainedModel] | None = None,
    config: ConsistencyConfig | None = None,
) -> dict[str, Any]:
    """The whole day's report: features, scores, verdict and the tolerances used."""
    cfg = config or ConsistencyConfig()
    feats = compare_features(batch, online, features, cfg)
    scores = (
        compare_scores(batch, signals, models or {}, cfg)
        if signals is not None and not signals.empty
        else None
    )
    passed, reasons = verdict(feats, scores, cfg)
    return {
        "passed": passed,
        "reasons": reasons,
        "tolerance": asdict(cfg),
        "features": feats,
        "scores": scores,
    }
