"""Walk-forward splits by time with purging and an embargo (no label leaks into training).

Rows are labelled events: ``event_timestamp`` (when the row's features became knowable) and
``label_end`` (when its label was decided). A row's *label interval* is the closed interval
``[event_timestamp, label_end]``.

Test folds are made of whole local days of the market (:mod:`tickml.market`: a day is
(midnight, midnight], so a row stamped exactly at midnight closes the previous day). A fold's
test set may be several contiguous runs of days (blocked mode with more than one test group);
each run is a *test interval* ``[first event_timestamp, last label_end]`` of
its rows.

From the training window (the days that may train this fold) three things are removed:

* **purge**: every row whose label interval overlaps a test interval (closed intervals:
  touching counts as overlapping);
* **embargo**: every row whose ``event_timestamp`` falls in ``(test_end, test_end + embargo]``
  after a test interval (its features look back into the test period). Walk-forward modes
  train strictly before the test fold, so the embargo only bites in ``blocked`` mode;
* **validation slice**: the latest ``val_share`` of the remaining rows (cut at a timestamp, so
  rows of one timestamp stay together) become ``val`` for early stopping, and training rows
  whose label interval overlaps the validation interval are purged the same way.

Modes:

``expanding`` (default)
    test folds are consecutive blocks of ``test_days`` days after ``min_train_days`` days;
    training is every earlier day. ``n_folds`` keeps the last ``n_folds`` blocks.
``rolling``
    as expanding, but training is only the last ``train_days`` days before the test block.
``blocked``
    the days are cut into ``n_folds`` contiguous groups (default: one per day); each fold tests
    ``n_test_groups`` of them (every combination: combinatorial purged cross-validation when
    ``n_test_groups > 1``) and trains on all other days, before *and after* the test, purged
    and embargoed. For few days, where walk-forward leaves too few folds.

All indices are positional (``frame.iloc``), int64, sorted.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, model_validator

from tickml.market import OnMarket, local_days, utc_ns

log = logging.getLogger(__name__)

Mode = Literal["expanding", "rolling", "blocked"]


class LeakageError(AssertionError):
    """A training or validation row's label interval reaches into a test fold or its embargo."""


class WalkForwardConfig(OnMarket):
    """How rows are cut into folds by time. Every knob is in whole days or a duration."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Mode = Field(
        default="expanding",
        description="expanding: train on all earlier days; rolling: on the last train_days "
        "days; blocked: k-fold over contiguous day groups, training on both sides of the test "
        "group (purged + embargoed), for few days",
    )
    n_folds: int | None = Field(
        default=None,
        ge=1,
        description="expanding/rolling: how many test folds (the most recent ones; None: every "
        "block that fits after min_train_days). blocked: how many contiguous day groups "
        "(None: one per day)",
    )
    min_train_days: int = Field(
        default=2, ge=1, description="expanding/rolling: days before the first test fold"
    )
    train_days: int | None = Field(
        default=None,
        ge=1,
        description="rolling: training window length in days (None: min_train_days)",
    )
    test_days: int = Field(
        default=1, ge=1, description="expanding/rolling: whole days per test fold"
    )
    n_test_groups: int = Field(
        default=1,
        ge=1,
        description="blocked: day groups tested per fold; >1 gives every combination "
        "(combinatorial purged cross-validation)",
    )
    embargo: dt.timedelta = Field(
        default=dt.timedelta(minutes=30),
        description="after each test interval's last label_end, training rows whose "
        "event_timestamp falls within this duration are dropped (only matters when training "
        "rows follow the test fold: blocked mode)",
    )
    val_share: float = Field(
        default=0.2,
        ge=0.0,
        le=0.5,
        description="share of the training window's rows, the latest ones, held out as a "
        "validation slice for early stopping (0: none)",
    )

    @model_validator(mode="after")
    def _check(self) -> WalkForwardConfig:
        if self.embargo < dt.timedelta(0):
            raise ValueError("embargo must be >= 0")
        if self.mode == "blocked" and self.n_folds is not None and self.n_folds < 2:
            raise ValueError("blocked mode needs n_folds >= 2 day groups")
        return self


@dataclass(frozen=True)
class Fold:
    """One train/validation/test split. Indices are positions in the frame (``iloc``)."""

    fold: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    train_days: tuple[dt.date, ...]
    test_days: tuple[dt.date, ...]
    #: per contiguous run of test days: (first event_timestamp, last label_end) of its rows
    test_intervals: tuple[tuple[pd.Timestamp, pd.Timestamp], ...]
    embargo: pd.Timedelta
    #: training-window rows dropped because their label interval overlaps a test interval
    purged: np.ndarray = field(repr=False)
    #: training-window rows dropped by the embargo after a test interval
    embargoed: np.ndarray = field(repr=False)
    #: training rows dropped because their label interval overlaps the validation slice
    val_purged: np.ndarray = field(repr=False)
    #: first and last event_timestamp of the train + validation rows (None when empty)
    train_start: pd.Timestamp | None = None
    train_end: pd.Timestamp | None = None

    @property
    def test_start(self) -> pd.Timestamp:
        return self.test_intervals[0][0]

    @property
    def test_end(self) -> pd.Timestamp:
        return self.test_intervals[-1][1]

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description (for metadata and reports)."""
        return {
            "fold": self.fold,
            "n_train": int(self.train.size),
            "n_val": int(self.val.size),
            "n_test": int(self.test.size),
            "n_purged": int(self.purged.size),
            "n_embargoed": int(self.embargoed.size),
            "n_val_purged": int(self.val_purged.size),
            "train_days": [d.isoformat() for d in self.train_days],
            "test_days": [d.isoformat() for d in self.test_days],
            "test_intervals": [[s.isoformat(), e.isoformat()] for s, e in self.test_intervals],
            "train_start": None if self.train_start is None else self.train_start.isoformat(),
            "train_end": None if self.train_end is None else self.train_end.isoformat(),
            "embargo_s": self.embargo.total_seconds(),
        }


def _ns(values: Any, name: str) -> np.ndarray:
    """UTC nanoseconds of a timestamp column (tz-naive values are taken as UTC)."""
    ns = utc_ns(values)
    if (ns == np.iinfo(np.int64).min).any():
        raise ValueError(f"{name} has missing timestamps")
    return ns


def _times(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    for col in ("event_timestamp", "label_end"):
        if col not in frame.columns:
            raise ValueError(f"frame has no {col!r} column")
    ev = _ns(frame["event_timestamp"], "event_timestamp")
    le = _ns(frame["label_end"], "label_end")
    bad = le < ev
    if bad.any():
        raise ValueError(f"{int(bad.sum())} rows have label_end before event_timestamp")
    return ev, le


def _ts(ns: int) -> pd.Timestamp:
    return pd.Timestamp(int(ns), tz="UTC")


def _runs(day_ids: list[int]) -> list[list[int]]:
    """Contiguous runs of sorted day indices."""
    runs: list[list[int]] = []
    for d in sorted(day_ids):
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    return runs


def _fold_plan(n_days: int, config: WalkForwardConfig) -> list[tuple[list[int], list[int]]]:
    """(train day indices, test day indices) per fold."""
    plans: list[tuple[list[int], list[int]]] = []
    if config.mode == "blocked":
        n_groups = n_days if config.n_folds is None else config.n_folds
        if n_groups > n_days:
            raise ValueError(f"blocked mode: {n_groups} groups but only {n_days} days")
        if config.n_test_groups >= n_groups:
            raise ValueError("blocked mode: n_test_groups must be < the number of groups")
        groups = [g.tolist() for g in np.array_split(np.arange(n_days), n_groups)]
        for combo in itertools.combinations(range(n_groups), config.n_test_groups):
            test = sorted(d for g in combo for d in groups[g])
            train = [d for d in range(n_days) if d not in set(test)]
            plans.append((train, test))
        return plans
    starts = list(range(config.min_train_days, n_days - config.test_days + 1, config.test_days))
    if not starts:
        raise ValueError(
            f"{n_days} days leave no test fold after min_train_days={config.min_train_days} "
            f"with test_days={config.test_days}"
        )
    if config.n_folds is not None:
        if config.n_folds > len(starts):
            raise ValueError(
                f"n_folds={config.n_folds} but {n_days} days allow only {len(starts)} folds "
                f"(min_train_days={config.min_train_days}, test_days={config.test_days})"
            )
        starts = starts[-config.n_folds :]
    window = config.train_days or config.min_train_days
    for s in starts:
        first = 0 if config.mode == "expanding" else max(0, s - window)
        plans.append((list(range(first, s)), list(range(s, s + config.test_days))))
    return plans


def _overlaps(ev: np.ndarray, le: np.ndarray, start: int, end: int) -> np.ndarray:
    """Closed-interval overlap of [ev, le] with [start, end]."""
    return (ev <= end) & (le >= start)


def walk_forward_splits(frame: pd.DataFrame, config: WalkForwardConfig | None = None) -> list[Fold]:
    """Purged, embargoed folds over ``frame`` (needs ``event_timestamp`` and ``label_end``).

    Raises ``ValueError`` when the days do not allow the requested folds or a fold would be
    left with no training rows (labels longer than the training window, say).
    """
    config = config or WalkForwardConfig()
    ev, le = _times(frame)
    day, days = local_days(ev, config.market.tz)
    embargo_ns = int(pd.Timedelta(config.embargo).value)
    folds: list[Fold] = []
    for k, (train_days, test_days) in enumerate(_fold_plan(len(days), config)):
        test_mask = np.isin(day, test_days)
        window = np.isin(day, train_days)
        intervals: list[tuple[int, int]] = []
        purge = np.zeros(ev.size, dtype=bool)
        embargoed = np.zeros(ev.size, dtype=bool)
        for run in _runs(test_days):
            rows = np.isin(day, run)
            start, end = int(ev[rows].min()), int(le[rows].max())
            intervals.append((start, end))
            purge |= window & _overlaps(ev, le, start, end)
            embargoed |= window & (ev > end) & (ev <= end + embargo_ns)
        embargoed &= ~purge
        kept = np.flatnonzero(window & ~purge & ~embargoed)
        val = np.zeros(0, dtype=np.int64)
        val_purged = np.zeros(0, dtype=np.int64)
        train = kept
        if config.val_share > 0 and kept.size:
            order = np.sort(ev[kept])
            n_val = int(np.ceil(config.val_share * kept.size))
            cut = int(order[kept.size - n_val])
            is_val = ev[kept] >= cut
            val = kept[is_val]
            rest = kept[~is_val]
            v_start, v_end = int(ev[val].min()), int(le[val].max())
            hit = _overlaps(ev[rest], le[rest], v_start, v_end)
            val_purged = rest[hit]
            train = rest[~hit]
        if train.size == 0:
            raise ValueError(
                f"fold {k} (test days {[days[d].isoformat() for d in test_days]}) has no "
                "training rows left after purging: labels are too long for the training "
                "window, or val_share takes everything"
            )
        both = np.concatenate([train, val])
        folds.append(
            Fold(
                fold=k,
                train=train.astype(np.int64),
                val=val.astype(np.int64),
                test=np.flatnonzero(test_mask).astype(np.int64),
                train_days=tuple(days[d] for d in train_days),
                test_days=tuple(days[d] for d in test_days),
                test_intervals=tuple((_ts(s), _ts(e)) for s, e in intervals),
                embargo=pd.Timedelta(embargo_ns),
                purged=np.flatnonzero(purge).astype(np.int64),
                embargoed=np.flatnonzero(embargoed).astype(np.int64),
                val_purged=val_purged.astype(np.int64),
                train_start=_ts(int(ev[both].min())),
                train_end=_ts(int(ev[both].max())),
            )
        )
        log.debug("fold %d: %s", k, folds[-1].summary())
    return folds


def assert_no_leakage(frame: pd.DataFrame, fold: Fold) -> None:
    """Raise :class:`LeakageError` if ``fold`` lets any label information cross into training.

    Checked from the frame itself: train, validation and test are disjoint; every test row's
    label interval lies inside one of the fold's test intervals; no training or validation
    row's label interval overlaps a test interval extended by the embargo; no training row's
    label interval overlaps the validation slice.
    """
    ev, le = _times(frame)
    n = ev.size
    parts = {"train": fold.train, "val": fold.val, "test": fold.test}
    for name, idx in parts.items():
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise LeakageError(f"{name} indices out of range for a frame of {n} rows")
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        common = np.intersect1d(parts[a], parts[b])
        if common.size:
            raise LeakageError(f"{common.size} rows are in both {a} and {b} (first: {common[0]})")
    if fold.test.size:
        inside = np.zeros(fold.test.size, dtype=bool)
        for s, e in fold.test_intervals:
            inside |= (ev[fold.test] >= s.value) & (le[fold.test] <= e.value)
        if not inside.all():
            bad = fold.test[~inside][0]
            raise LeakageError(f"test row {bad} lies outside the fold's test intervals")
    learn = np.concatenate([fold.train, fold.val])
    emb = int(fold.embargo.value)
    for s, e in fold.test_intervals:
        hit = _overlaps(ev[learn], le[learn], s.value, e.value + emb)
        if hit.any():
            bad = int(learn[hit][0])
            raise LeakageError(
                f"{int(hit.sum())} training/validation rows overlap the test interval "
                f"[{s}, {e}] + embargo {fold.embargo} (first: row {bad}, "
                f"[{_ts(ev[bad])}, {_ts(le[bad])}])"
            )
    if fold.val.size and fold.train.size:
        v_start, v_end = int(ev[fold.val].min()), int(le[fold.val].max())
        hit = _overlaps(ev[fold.train], le[fold.train], v_start, v_end)
        if hit.any():
            bad = int(fold.train[hit][0])
            raise LeakageError(
                f"{int(hit.sum())} training rows overlap the validation slice (first: row {bad})"
            )
