"""Inputs of the nightly monitoring: the drift reference, the recent window, the champion's IC.

* **Reference window**: the days the champion was trained on (manifest ``training_window``:
  its ``days``, else the calendar days from ``start`` to ``end``), a seeded sample of at most
  ``max_rows`` feature-table rows spread evenly over those days (one day in memory at a time).
  Without a champion (or when none of its days is left in the lake): the ``n`` feature-table
  days before the partition. Neither: no reference yet.
* **Recent window**: the day's features as they were pushed online (the live materializer's
  log, :func:`tickml.lake.read_online_log`) when a log exists, else the day's batch table.
* **Champion's decision model** (:func:`decision_model`): the model whose score the champion
  decides on, the one the promotion gate judged and the live scorer serves
  (``RegisteredModels.decision_model``, one rule): the direction model (a regression, scored
  by its prediction) when the version has one, else the short model, ``P(UP) - P(DOWN)``.
* **Champion recent IC**: Spearman correlation of the decision model's score on the recent
  rows with ``fwd_return_short`` of the day's labels, over the rows after the champion's
  training window only (``event_timestamp`` after the window's ``label_end_max``, else its
  ``end``): rows it never saw, whose label horizons do not overlap the labels it learned from.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tickml.evaluation.metrics import direction_score, spearman_ic
from tickml.lake import DayTables, FeatureTables, read_online_log
from tickml.models.registry import RegisteredModels
from tickml.models.train import TrainedModel, predict_proba, predict_value

REFERENCE_CHAMPION = "champion_training_window"
REFERENCE_PRIOR_DAYS = "prior_days"
RECENT_ONLINE_LOG = "online_log"
RECENT_BATCH = "batch"
KEYS = ("symbol", "event_timestamp")


@dataclass(frozen=True)
class Reference:
    """A drift reference: the sampled rows, which window they come from and why."""

    frame: pd.DataFrame
    kind: str | None  # REFERENCE_CHAMPION | REFERENCE_PRIOR_DAYS | None (no reference yet)
    days: list[dt.date] = field(default_factory=list)
    champion: str | None = None
    note: str = ""


def training_days(manifest: Mapping[str, Any]) -> list[dt.date]:
    """The days of a manifest's ``training_window`` (``days``, else ``start``..``end``)."""
    window = manifest.get("training_window") or {}
    if window.get("days"):
        return sorted({dt.date.fromisoformat(str(d)[:10]) for d in window["days"]})
    if window.get("start") and window.get("end"):
        start = pd.Timestamp(window["start"]).date()
        end = pd.Timestamp(window["end"]).date()
        return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    return []


def training_cutoff(manifest: Mapping[str, Any]) -> pd.Timestamp | None:
    """The last instant the champion's training labels reached (UTC), None if unknown."""
    window = manifest.get("training_window") or {}
    for key in ("label_end_max", "end"):
        if window.get(key):
            ts = pd.Timestamp(window[key])
            return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return None


def sample_days(
    tables: DayTables, days: Sequence[dt.date], max_rows: int, seed: int = 0
) -> tuple[pd.DataFrame, list[dt.date]]:
    """At most ``max_rows`` rows of ``days`` (those in ``tables``), an equal seeded share of
    each day; returns the rows and the days found."""
    present = [d for d in days if tables.has_day(d)]
    if not present:
        return pd.DataFrame(), []
    per_day = max(1, math.ceil(max_rows / len(present)))
    frames = []
    for i, day in enumerate(present):
        frame = tables.read_day(day)
        frames.append(
            frame if len(frame) <= per_day else frame.sample(per_day, random_state=seed + i)
        )
    out = pd.concat(frames, ignore_index=True)
    if len(out) > max_rows:
        out = out.sample(max_rows, random_state=seed)
    return out.reset_index(drop=True), present


def reference_window(
    root: str | os.PathLike[str],
    day: dt.date,
    manifest: Mapping[str, Any] | None,
    prior_days: int = 3,
    max_rows: int = 20_000,
    seed: int = 0,
) -> Reference:
    """The drift reference of ``day`` (module docstring): the champion's training window when
    ``manifest`` (the champion's) is given and its days are in the lake, else the
    ``prior_days`` feature-table days before ``day``; ``kind=None`` when there is neither.
    ``day`` itself is never part of the reference."""
    tables = FeatureTables(root)
    note = ""
    if manifest is not None:
        version = manifest.get("version")
        wanted = [d for d in training_days(manifest) if d != day]
        frame, found = sample_days(tables, wanted, max_rows, seed)
        if found:
            return Reference(
                frame,
                REFERENCE_CHAMPION,
                found,
                version,
                f"champion {version}'s training window: {len(found)} of "
                f"{len(wanted)} days in the lake, {len(frame)} rows sampled",
            )
        note = f"champion {version}'s training days are not in the lake; "
    prior = [d for d in tables.days() if d < day][-prior_days:]
    if not prior:
        return Reference(
            pd.DataFrame(),
            None,
            [],
            None,
            note + f"no reference yet: no champion and no feature-table day before {day}",
        )
    frame, found = sample_days(tables, prior, max_rows, seed)
    what = "no champion" if manifest is None else "fallback"
    return Reference(
        frame,
        REFERENCE_PRIOR_DAYS,
        found,
        None,
        note + f"{what}: the {len(found)} feature-table day(s) before {day}, "
        f"{len(frame)} rows sampled",
    )


def recent_window(root: str | os.PathLike[str], day: dt.date) -> tuple[pd.DataFrame, str]:
    """The day's features as pushed online when logged, else its batch table (possibly
    empty), and which: ``"online_log"`` | ``"batch"``."""
    logged = read_online_log(root, day)
    if not logged.empty:
        return logged, RECENT_ONLINE_LOG
    tables = FeatureTables(root)
    return (tables.read_day(day) if tables.has_day(day) else pd.DataFrame()), RECENT_BATCH


@dataclass(frozen=True)
class DecisionModel:
    """The champion's decision model: its name in the version, the model, and a label for
    metadata and notes (e.g. ``"champion v3 direction model, prediction"``)."""

    name: str
    model: TrainedModel
    label: str


def decision_model(champ: RegisteredModels) -> DecisionModel:
    """The model whose score the champion decides on: ``champ.decision_model``, the registry's
    one rule (:func:`tickml.models.promotion.decision_model_of`: the direction model when the
    version has one, else the short model). Raises ``ValueError`` when the version lacks it."""
    name = champ.decision_model
    if name not in champ.models:
        raise ValueError(
            f"champion {champ.version}: its decision model is {name!r}, the version has "
            f"{sorted(champ.models)}"
        )
    model = champ.models[name]
    how = "prediction" if model.is_regression else "P(UP)-P(DOWN)"
    return DecisionModel(name, model, f"champion {champ.version} {name} model, {how}")


def champion_scores(model: TrainedModel, frame: pd.DataFrame) -> np.ndarray:
    """The decision's score per row of ``frame``: the short model's ``P(UP) - P(DOWN)``, or,
    for a regression model (the direction model), its prediction."""
    missing = [f for f in model.features if f not in frame.columns]
    if missing:
        raise ValueError(f"the model needs features absent from the rows: {missing[:10]}")
    if model.is_regression:
        return predict_value(model, frame)
    return np.asarray(direction_score(predict_proba(model, frame), model.classes))


def _utc_ns(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")


def recent_ic(
    model: TrainedModel,
    manifest: Mapping[str, Any],
    recent: pd.DataFrame,
    labels: pd.DataFrame,
    return_column: str = "fwd_return_short",
) -> dict[str, Any]:
    """The out-of-sample IC of ``model`` (the champion's decision model,
    :func:`decision_model`) on the recent rows (module docstring).

    Returns ``{"ic", "n_scored", "n_labelled", "n_in_training_window", "n_out_of_sample",
    "cutoff", "score_mean", "score_std"}``; ``ic`` is None when undefined (fewer than 3
    out-of-sample labelled rows, a constant score or return, or a manifest without a training
    window, when no row is known to be unseen).
    """
    cutoff = training_cutoff(manifest)
    out: dict[str, Any] = {
        "ic": None,
        "n_scored": 0,
        "n_labelled": 0,
        "n_in_training_window": 0,
        "n_out_of_sample": 0,
        "cutoff": None if cutoff is None else cutoff.isoformat(),
        "score_mean": None,
        "score_std": None,
    }
    if recent.empty:
        return out
    scored = recent[list(KEYS)].copy()
    scored["event_timestamp"] = _utc_ns(scored["event_timestamp"])
    scored["score"] = champion_scores(model, recent)
    out.update(
        n_scored=len(scored),
        score_mean=float(np.nanmean(scored["score"])),
        score_std=float(np.nanstd(scored["score"])),
    )
    if labels.empty or return_column not in labels.columns:
        return out
    lab = labels[[*KEYS, return_column]].copy()
    lab["event_timestamp"] = _utc_ns(lab["event_timestamp"])
    merged = scored.merge(lab, on=list(KEYS), how="inner")
    merged = merged[np.isfinite(merged[return_column].to_numpy(np.float64))]
    out["n_labelled"] = len(merged)
    if cutoff is None:  # the training window is unknown: no row is known to be unseen
        out["n_in_training_window"] = None
        return out
    inside = merged["event_timestamp"] <= cutoff
    oos = merged[~inside]
    out.update(
        n_in_training_window=int(inside.sum()),
        n_out_of_sample=len(oos),
        ic=spearman_ic(oos["score"], oos[return_column]),
    )
    return out
