"""Recent volatility: the streaming state (:class:`tickml.volatility.RecentVol`) equals the batch
function bit for bit, whether each boundary is one ``step`` or the live scorer's split
(``known`` before publishing, ``append`` after, ``prepare`` for the next boundary), across
local days, symbols joining late, stale rows and a save/restore."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tickml.market import EPOCH, day_numbers
from tickml.volatility import RecentVol, recent_vol

pytestmark = pytest.mark.unit

NY = "America/New_York"


def _boundaries() -> list[int]:
    out = []
    for day in ("2024-01-16", "2024-01-17"):
        start = pd.Timestamp(f"{day} 09:31", tz=NY)
        out += [(start + pd.Timedelta(minutes=k)).tz_convert("UTC").value for k in range(45)]
    return out


def test_streaming_split_equals_step_and_batch():
    rng = np.random.default_rng(3)
    universe = [f"S{i:02d}" for i in range(40)]
    bounds = _boundaries()
    one, split = RecentVol(), RecentVol()
    rows = []  # (symbol, ts, return) of the fresh rows: the batch function's input
    got_step, got_split, keys = [], [], []
    for k, b in enumerate(bounds):
        syms = universe[: 20 + k // 3] if k < 60 else universe  # symbols join late
        n = len(syms)
        ret = rng.normal(0, 1, n)
        ret[rng.random(n) < 0.05] = np.nan  # a return may be missing
        fresh = rng.random(n) > 0.1  # stale rows are not appended
        day = int(day_numbers(np.array([b]), NY)[0])
        got_step.append(one.step(day, syms, ret, fresh))
        vol, slots = split.known(day, syms)
        got_split.append(vol)
        split.append(slots, ret, fresh)
        if k % 7 == 3:  # a restart: the prepared values are not saved, the history is
            split = RecentVol.from_bytes(split.to_bytes())
        split.prepare()
        keys.append([(s, b, bool(f)) for s, f in zip(syms, fresh, strict=True)])
        rows += [(s, b, r) for s, r, f in zip(syms, ret, fresh, strict=True) if f]
        assert day == (pd.Timestamp(b, tz="UTC").tz_convert(NY).date() - EPOCH).days
    for a, c in zip(got_step, got_split, strict=True):
        np.testing.assert_array_equal(a, c)
    # the batch function over the fresh rows gives every fresh row's value
    frame = pd.DataFrame(rows, columns=["symbol", "ts", "ret"])
    batch = recent_vol(frame["symbol"].to_numpy(), frame["ts"].to_numpy(), frame["ret"].to_numpy())
    want = dict(zip(zip(frame["symbol"], frame["ts"], strict=True), batch.tolist(), strict=True))
    checked = 0
    for vols, key in zip(got_step, keys, strict=True):
        for v, (s, b, f) in zip(vols.tolist(), key, strict=True):
            if f:
                w = want[(s, b)]
                assert (np.isnan(v) and np.isnan(w)) or v == w
                checked += 1
    assert checked > 2000
    assert np.isfinite(np.concatenate(got_step)).mean() > 0.5  # the comparison is not all-NaN


def test_known_without_prepare_and_bad_shapes():
    v = RecentVol()
    vol, slots = v.known(5, ["A", "B"])
    assert np.isnan(vol).all() and slots.tolist() == [0, 1]
    with pytest.raises(ValueError, match="align"):
        v.append(slots, np.zeros(3), np.ones(3, bool))
    with pytest.raises(ValueError, match="align"):
        v.step(5, ["A", "B"], np.zeros(3), np.ones(2, bool))
