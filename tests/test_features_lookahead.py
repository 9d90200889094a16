"""No look-ahead on real data: changing or deleting every tick after t changes no row <= t.

IBM (quotes + trades) and SPY (the leader, trades only) on 2013-10-08, cut at a time in the
morning session and at one in the afternoon. Rows stamped at or before the cut must be
bit-identical after the later ticks are perturbed (prices, book, sizes) or deleted. The same
property on random ticks (ties, missing books, day changes, every-n sampling) is checked with
hypothesis in ``test_features_random.py``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tickml.features import FeatureConfig, compute_features
from tickml.readers.equity import read_equity_day

DAY = dt.date(2013, 10, 8)
CUTS = ("2013-10-08 10:07:23.456", "2013-10-08 14:00:00")  # New York; the 2nd is a boundary


@pytest.fixture(scope="module")
def ticks(equity_root) -> pd.DataFrame:
    return read_equity_day(equity_root, DAY, symbols=["IBM", "SPY"]).ticks


def perturb_after(ticks: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    out = ticks.copy()
    late = out["ts"] > t
    assert late.sum() > 10_000
    out.loc[late, "price"] *= 1.013
    out.loc[late, ["bid", "ask"]] *= 0.991
    out.loc[late, ["bid_size", "ask_size"]] += 700.0
    out.loc[late, "size"] = np.where(out.loc[late, "size"] > 0, out.loc[late, "size"] * 3, 0.0)
    return out


def rows_until(frame: pd.DataFrame, t: pd.Timestamp) -> pd.DataFrame:
    part = frame[frame["event_timestamp"] <= t]
    return part.sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)


def assert_identical(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert a[["symbol", "event_timestamp", "last_tick_ts"]].equals(
        b[["symbol", "event_timestamp", "last_tick_ts"]]
    )
    x = a.drop(columns=["symbol", "event_timestamp", "last_tick_ts"]).to_numpy()
    y = b.drop(columns=["symbol", "event_timestamp", "last_tick_ts"]).to_numpy()
    same = (x == y) | (np.isnan(x) & np.isnan(y))
    bad = [c for j, c in enumerate(a.columns[2:-1]) if not same[:, j].all()]
    assert not bad, f"rows before the cut changed: {bad}"


@pytest.mark.slow
@pytest.mark.parametrize("cut", CUTS)
def test_no_lookahead_real_day(ticks: pd.DataFrame, cut: str) -> None:
    cfg = FeatureConfig()
    t = pd.Timestamp(cut, tz="America/New_York").tz_convert("UTC")
    base = compute_features(ticks, cfg)
    before = rows_until(base, t)
    assert len(before) > 60
    changed = compute_features(perturb_after(ticks, t), cfg)
    assert_identical(before, rows_until(changed, t))
    # and the rows after the cut did see the change (the perturbation is not a no-op)
    after_b = base[base["event_timestamp"] > t + pd.Timedelta("5min")]
    after_c = changed[changed["event_timestamp"] > t + pd.Timedelta("5min")]
    assert not np.allclose(after_b["vwap_dev_bps"], after_c["vwap_dev_bps"])
    deleted = compute_features(ticks[ticks["ts"] <= t], cfg)
    assert_identical(before, rows_until(deleted, t))
    assert (base["last_tick_ts"] <= base["event_timestamp"]).all()


@pytest.mark.unit
def test_tick_at_boundary_belongs_to_the_interval_closing_there() -> None:
    cfg = FeatureConfig(session_open=None, session_close=None, leader=None)
    b = pd.Timestamp("2013-10-08 15:00", tz="UTC")
    base = pd.DataFrame(
        {
            "symbol": "X",
            "ts": [b - pd.Timedelta("30s"), b, b + pd.Timedelta("1ns")],
            "seq": [1, 2, 3],
            "bid": [10.0, 10.0, 10.0],
            "ask": [10.02, 10.02, 10.02],
            "bid_size": 100.0,
            "ask_size": 100.0,
            "price": [np.nan, 10.02, 10.0],
            "size": [0.0, 500.0, 300.0],
        }
    )
    rows = compute_features(base, cfg).set_index("event_timestamp")
    assert rows.loc[b, "last_tick_ts"] == b  # the trade stamped exactly b is in b's row
    assert rows.loc[b, "trade_rate_s10"] == pytest.approx(0.1)
    assert rows.loc[b, "ticks_in_interval"] == 2.0
    # the tick 1 ns later is not
    nxt = b + pd.Timedelta("1min")
    assert rows.loc[nxt, "ticks_in_interval"] == 1.0
