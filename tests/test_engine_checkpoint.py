"""Streaming engine checkpoints: restore mid-day and continue bit-exactly (no pickle)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tickml.features import FeatureConfig, StreamingFeatureEngine, compute_features
from tickml.simulator import SimConfig, simulate_day

pytestmark = pytest.mark.unit

COLS = ("bid", "ask", "bid_size", "ask_size", "price", "size")


def _feed(engine: StreamingFeatureEngine, ticks: pd.DataFrame) -> None:
    for sym, g in ticks.groupby("symbol", sort=False):
        ts = g["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        engine.update_many(str(sym), ts, *(g[c].to_numpy(dtype=np.float64) for c in COLS))


def test_restore_mid_day_is_bit_exact() -> None:
    sim = SimConfig(n_symbols=3)
    ticks = simulate_day(sim, dt.date(2024, 3, 5)).ticks
    fc = FeatureConfig(leader=sim.leader_name)
    want = compute_features(ticks, fc).set_index(["symbol", "event_timestamp"]).sort_index()
    grid = want.index.get_level_values(1).unique().sort_values()
    ts = ticks["ts"]
    engine = StreamingFeatureEngine(fc)
    rows = []
    prev = ts.min() - pd.Timedelta(1, "ns")
    for i, b in enumerate(grid):
        _feed(engine, ticks[(ts > prev) & (ts <= b)])
        if i == len(grid) // 2:  # checkpoint and continue in a new engine
            data = engine.state_bytes()
            assert b"pickle" not in data[:100]
            engine = StreamingFeatureEngine.from_state_bytes(data, fc)
        rows.append(engine.snapshot(b))
        prev = b
    got = pd.concat(rows).set_index(["symbol", "event_timestamp"]).sort_index()
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_restore_refuses_another_config() -> None:
    engine = StreamingFeatureEngine(FeatureConfig(), ["A"])
    data = engine.state_bytes()
    with pytest.raises(ValueError, match="different FeatureConfig"):
        StreamingFeatureEngine.from_state_bytes(data, FeatureConfig(interval="5min"))
    assert StreamingFeatureEngine.from_state_bytes(data).symbols == ["A"]
