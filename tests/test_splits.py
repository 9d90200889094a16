"""Purged walk-forward splits: exact purge/embargo sets (hypothesis), no leakage, real grids."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tickml.evaluation.splits import (
    LeakageError,
    WalkForwardConfig,
    assert_no_leakage,
    walk_forward_splits,
)

pytestmark = pytest.mark.unit

MIN = 60_000_000_000
BASE = pd.Timestamp("2024-03-04", tz="UTC").value


def _frame(ev_ns: np.ndarray, le_ns: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_timestamp": pd.to_datetime(ev_ns, utc=True),
            "label_end": pd.to_datetime(le_ns, utc=True),
        }
    )


def _oracle(frame: pd.DataFrame, cfg: WalkForwardConfig):
    """Brute force, row by row, straight from the definitions in the module docstring."""
    ev = [t.value for t in frame["event_timestamp"]]
    le = [t.value for t in frame["label_end"]]
    n = len(ev)
    day_of = [(pd.Timestamp(t - 1, tz="UTC").tz_convert(cfg.market.tz)).date() for t in ev]
    days = sorted(set(day_of))
    plans = []
    if cfg.mode == "blocked":
        g = len(days) if cfg.n_folds is None else cfg.n_folds
        groups = [list(a) for a in np.array_split(np.arange(len(days)), g)]
        for combo in itertools.combinations(range(g), cfg.n_test_groups):
            test = sorted(d for c in combo for d in groups[c])
            plans.append(([d for d in range(len(days)) if d not in test], test))
    else:
        s = cfg.min_train_days
        starts = []
        while s + cfg.test_days <= len(days):
            starts.append(s)
            s += cfg.test_days
        if cfg.n_folds is not None:
            if cfg.n_folds > len(starts):
                raise ValueError("too many folds")
            starts = starts[-cfg.n_folds :]
        w = cfg.train_days or cfg.min_train_days
        for s in starts:
            lo = 0 if cfg.mode == "expanding" else max(0, s - w)
            plans.append((list(range(lo, s)), list(range(s, s + cfg.test_days))))
    emb = pd.Timedelta(cfg.embargo).value
    out = []
    for train_d, test_d in plans:
        test_rows = [i for i in range(n) if days.index(day_of[i]) in test_d]
        # contiguous runs of test days
        runs, cur = [], []
        for d in test_d:
            if cur and d != cur[-1] + 1:
                runs.append(cur)
                cur = []
            cur.append(d)
        runs.append(cur)
        ivs = []
        for r in runs:
            rows = [i for i in test_rows if days.index(day_of[i]) in r]
            ivs.append((min(ev[i] for i in rows), max(le[i] for i in rows)))
        window = [i for i in range(n) if days.index(day_of[i]) in train_d]
        purged = {i for i in window if any(ev[i] <= e and le[i] >= s for s, e in ivs)}
        embargoed = {
            i for i in window if i not in purged and any(e < ev[i] <= e + emb for s, e in ivs)
        }
        kept = [i for i in window if i not in purged and i not in embargoed]
        val, val_purged, train = set(), set(), set(kept)
        if cfg.val_share > 0 and kept:
            n_val = math.ceil(cfg.val_share * len(kept))
            cut = sorted(ev[i] for i in kept)[len(kept) - n_val]
            val = {i for i in kept if ev[i] >= cut}
            vs, ve = min(ev[i] for i in val), max(le[i] for i in val)
            rest = [i for i in kept if i not in val]
            val_purged = {i for i in rest if ev[i] <= ve and le[i] >= vs}
            train = set(rest) - val_purged
        out.append(
            dict(
                train=train,
                val=val,
                test=set(test_rows),
                purged=purged,
                embargoed=embargoed,
                val_purged=val_purged,
            )
        )
    return out


configs = st.builds(
    WalkForwardConfig,
    mode=st.sampled_from(["expanding", "rolling", "blocked", "blocked"]),
    n_folds=st.none() | st.integers(2, 3),
    min_train_days=st.integers(1, 3),
    train_days=st.none() | st.integers(1, 3),
    test_days=st.integers(1, 2),
    embargo=st.integers(0, 1440).map(lambda m: dt.timedelta(minutes=m)),
    val_share=st.sampled_from([0.0, 0.1, 0.25, 0.5]),
    n_test_groups=st.integers(1, 2),
    tz=st.sampled_from(["UTC", "America/New_York"]),
)


@st.composite
def labelled_rows(draw):
    n = draw(st.integers(2, 60))
    # events over ~6 days, minute resolution; horizons mostly up to 3 hours, some up to 2 days
    ev = np.array(draw(st.lists(st.integers(0, 6 * 1440), min_size=n, max_size=n)), np.int64)
    horizon = st.integers(0, 180) | st.integers(0, 2 * 1440)
    h = np.array(draw(st.lists(horizon, min_size=n, max_size=n)), dtype=np.int64)
    return _frame(BASE + ev * MIN, BASE + (ev + h) * MIN)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=labelled_rows(), cfg=configs)
def test_folds_match_the_brute_force_definition(frame, cfg):
    try:
        expected = _oracle(frame, cfg)
    except (ValueError, IndexError):
        expected = None
    try:
        folds = walk_forward_splits(frame, cfg)
    except ValueError:
        # only legitimate when no fold plan exists or some fold has no training row left
        assert expected is None or not expected or any(not e["train"] for e in expected)
        return
    assert expected is not None and len(folds) == len(expected)
    for fold, exp in zip(folds, expected, strict=True):
        for key in ("train", "val", "test", "purged", "embargoed", "val_purged"):
            got = getattr(fold, key)
            assert set(got.tolist()) == exp[key], key
            assert got.dtype == np.int64 and np.all(np.diff(got) > 0)
        assert_no_leakage(frame, fold)
        ev = frame["event_timestamp"].to_numpy()
        le = frame["label_end"].to_numpy()
        # pairwise: no training/validation label interval touches any test row's interval
        learn = np.concatenate([fold.train, fold.val])
        for j in fold.test:
            assert not np.any((ev[learn] <= le[j]) & (le[learn] >= ev[j]))


def test_config_fields_are_described_and_validated():
    for name, info in WalkForwardConfig.model_fields.items():
        assert info.description, name
    with pytest.raises(ValidationError):
        WalkForwardConfig(val_share=0.9)
    with pytest.raises(ValidationError):
        WalkForwardConfig(embargo=dt.timedelta(minutes=-1))
    with pytest.raises(ValidationError):
        WalkForwardConfig(mode="blocked", n_folds=1)


def _session_grid(n_days=5, n_symbols=4, horizon_min=15):
    """Real-like equity grid: 390 one-minute rows a day 09:31..16:00 New York, labels capped
    at the close (they never span the night)."""
    rows = []
    for d in range(n_days):
        day = dt.date(2013, 10, 7) + dt.timedelta(days=d)
        open_ = pd.Timestamp(dt.datetime.combine(day, dt.time(9, 30)), tz="America/New_York")
        close = open_ + pd.Timedelta(minutes=390)
        ev = open_ + pd.to_timedelta(np.arange(1, 391), unit="min")
        le = np.minimum(ev + pd.Timedelta(minutes=horizon_min), close)
        for s in range(n_symbols):
            rows.append(pd.DataFrame({"symbol": f"S{s}", "event_timestamp": ev, "label_end": le}))
    frame = pd.concat(rows, ignore_index=True)
    frame["event_timestamp"] = frame["event_timestamp"].dt.tz_convert("UTC")
    frame["label_end"] = pd.to_datetime(frame["label_end"]).dt.tz_convert("UTC")
    return frame


def test_real_like_session_grid_expanding():
    frame = _session_grid()
    folds = walk_forward_splits(frame, WalkForwardConfig(min_train_days=2))
    assert len(folds) == 3
    for k, fold in enumerate(folds):
        assert_no_leakage(frame, fold)
        assert [d.day for d in fold.test_days] == [9 + k]
        assert [d.day for d in fold.train_days] == list(range(7, 9 + k))
        assert fold.test.size == 390 * 4
        # labels end at the close: nothing crosses the night, so nothing is purged
        assert fold.purged.size == 0 and fold.embargoed.size == 0
        window = (2 + k) * 390 * 4
        assert fold.val.size == math.ceil(0.2 * window)
        # the 15 one-minute stamps before the validation cut have labels reaching into it
        assert fold.val_purged.size == 15 * 4
        assert fold.train.size + fold.val.size + fold.val_purged.size == window
        ev = frame["event_timestamp"]
        assert ev.iloc[fold.train].max() < ev.iloc[fold.val].min()
        assert fold.train_end < fold.test_start


def test_real_like_session_grid_rolling_and_blocked():
    frame = _session_grid()
    rolling = walk_forward_splits(
        frame, WalkForwardConfig(mode="rolling", min_train_days=2, val_share=0)
    )
    assert [len(f.train_days) for f in rolling] == [2, 2, 2]
    assert [f.train.size for f in rolling] == [2 * 390 * 4] * 3
    blocked = walk_forward_splits(frame, WalkForwardConfig(mode="blocked", val_share=0))
    assert len(blocked) == 5
    for fold in blocked:
        assert_no_leakage(frame, fold)
        assert fold.train.size == 4 * 390 * 4  # sessions never touch: no purge, no embargo
    cpcv = walk_forward_splits(
        frame, WalkForwardConfig(mode="blocked", n_test_groups=2, val_share=0)
    )
    assert len(cpcv) == 10
    assert sum(len(f.test_intervals) == 2 for f in cpcv) == 6  # non-adjacent pairs


def test_24h_grid_purges_and_embargoes_exactly():
    """Crypto-like: one-minute rows around the clock, 30-minute labels cross midnight."""
    ev = BASE + np.arange(1, 3 * 1440 + 1) * MIN
    frame = _frame(ev, ev + 30 * MIN)
    cfg = WalkForwardConfig(min_train_days=1, val_share=0, tz="UTC")
    folds = walk_forward_splits(frame, cfg)
    assert len(folds) == 2
    # the test day starts at 00:01; training rows stamped 23:31 .. 00:00 end inside it
    assert [f.purged.size for f in folds] == [30, 30]
    assert all(f.embargoed.size == 0 for f in folds)
    blocked = walk_forward_splits(
        frame, WalkForwardConfig(mode="blocked", val_share=0, tz="UTC", embargo="PT1H")
    )
    middle = blocked[1]
    assert [d.day for d in middle.test_days] == [5]
    # 30 before the test day (labels reach into it), 30 after it (inside its last label)
    assert middle.purged.size == 60
    # then one hour of embargo: rows stamped (00:30, 01:30] of the following day
    assert middle.embargoed.size == 60
    assert_no_leakage(frame, middle)


def test_assert_no_leakage_catches_a_leak():
    ev = BASE + np.arange(1, 3 * 1440 + 1) * MIN
    frame = _frame(ev, ev + 30 * MIN)
    fold = walk_forward_splits(
        frame, WalkForwardConfig(mode="blocked", val_share=0.2, tz="UTC", embargo="PT1H")
    )[1]
    assert_no_leakage(frame, fold)
    for bad in (fold.purged[:1], fold.embargoed[-1:], fold.val_purged[:1]):
        leaky = dataclasses.replace(fold, train=np.sort(np.concatenate([fold.train, bad])))
        with pytest.raises(LeakageError):
            assert_no_leakage(frame, leaky)
    with pytest.raises(LeakageError):
        assert_no_leakage(frame, dataclasses.replace(fold, val=fold.test[:3]))
    # a test row outside the recorded test intervals is also a leak
    with pytest.raises(LeakageError):
        assert_no_leakage(frame, dataclasses.replace(fold, test=np.array([0])))


def test_errors_are_clear():
    frame = _session_grid(n_days=2, n_symbols=1)
    with pytest.raises(ValueError, match="n_folds"):
        walk_forward_splits(frame, WalkForwardConfig(min_train_days=1, n_folds=3))
    with pytest.raises(ValueError, match="no test fold"):
        walk_forward_splits(frame, WalkForwardConfig(min_train_days=2))
    bad = frame.copy()
    bad.loc[0, "label_end"] = bad.loc[0, "event_timestamp"] - pd.Timedelta(minutes=1)
    with pytest.raises(ValueError, match="before event_timestamp"):
        walk_forward_splits(bad, WalkForwardConfig(min_train_days=1))
    # labels longer than the training window purge every training row
    ev = BASE + np.arange(1, 2 * 1440 + 1) * MIN
    long = _frame(ev, ev + 3 * 1440 * MIN)
    with pytest.raises(ValueError, match="no training rows"):
        walk_forward_splits(long, WalkForwardConfig(min_train_days=1, tz="UTC"))


def test_input_order_does_not_matter():
    frame = _session_grid(n_days=3, n_symbols=2)
    perm = np.random.default_rng(0).permutation(len(frame))
    shuffled = frame.iloc[perm].reset_index(drop=True)
    a = walk_forward_splits(frame, WalkForwardConfig(min_train_days=1))
    b = walk_forward_splits(shuffled, WalkForwardConfig(min_train_days=1))
    for fa, fb in zip(a, b, strict=True):
        for key in ("train", "val", "test", "val_purged"):
            assert set(perm[getattr(fb, key)].tolist()) == set(getattr(fa, key).tolist())
