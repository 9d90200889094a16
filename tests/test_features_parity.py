"""Batch vs streaming parity on a full real day, replayed tick by tick through ``update``.

IBM (quotes + trades) and SPY (trades only, the cross-asset leader) on 2013-10-08, every tick
fed one at a time in time order, a snapshot at every grid boundary. Every feature must equal
the batch value for the same (symbol, event_timestamp) within 1e-9 relative. No feature needs
a looser tolerance: both modes run the same compiled update and row writer in the same order,
so the rows are in fact bit-identical (asserted too).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tickml.features import FeatureConfig, StreamingFeatureEngine, compute_features
from tickml.readers.equity import read_equity_day

DAY = dt.date(2013, 10, 8)
COLS = ("bid", "ask", "bid_size", "ask_size", "price", "size")


@pytest.fixture(scope="module")
def ticks(equity_root) -> pd.DataFrame:
    t = read_equity_day(equity_root, DAY, symbols=["IBM", "SPY"]).ticks
    assert set(t["symbol"]) == {"IBM", "SPY"} and len(t) > 400_000
    return t


def _stream_order(ticks: pd.DataFrame) -> tuple[list, ...]:
    ev = ticks.sort_values(["ts", "seq"], kind="stable")
    ts = ev["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64).tolist()
    return (ev["symbol"].tolist(), ts, *(ev[c].to_numpy(dtype=float).tolist() for c in COLS))


def replay_interval(cfg: FeatureConfig, ticks: pd.DataFrame) -> pd.DataFrame:
    """Live-style replay: one update() per tick, snapshot(b) once every tick <= b is in."""
    syms, ts, bid, ask, bsz, asz, price, size = _stream_order(ticks)
    engine = StreamingFeatureEngine(cfg, sorted(set(syms)))
    step = cfg.interval_ns
    day_start = cfg.market.day_of(ts[0])[0]
    next_b = day_start + ((ts[0] - day_start + step - 1) // step) * step
    frames = []
    update = engine.update
    for i, t in enumerate(ts):
        while next_b < t:
            frames.append(engine.snapshot(next_b))
            next_b += step
        update(syms[i], t, bid[i], ask[i], bsz[i], asz[i], price[i], size[i])
    end = cfg.market.day_of(ts[-1])[1]
    while next_b <= end:
        frames.append(engine.snapshot(next_b))
        next_b += step
    return pd.concat([f for f in frames if len(f)], ignore_index=True)


def assert_same_rows(batch: pd.DataFrame, stream: pd.DataFrame, names: list[str]) -> None:
    key = ["symbol", "event_timestamp"]
    b = batch.set_index(key).sort_index()
    s = stream.set_index(key).sort_index()
    s = s.loc[s.index.intersection(b.index)]  # stream may go on past the batch's last row
    assert b.index.equals(s.index), "stream misses batch rows"
    assert (b["last_tick_ts"] == s["last_tick_ts"]).all()
    bv, sv = b[names].to_numpy(), s[names].to_numpy()
    for j, name in enumerate(names):
        np.testing.assert_allclose(
            sv[:, j], bv[:, j], rtol=1e-9, atol=0, equal_nan=True, err_msg=name
        )
    same = (bv == sv) | (np.isnan(bv) & np.isnan(sv))
    differ = [n for j, n in enumerate(names) if not same[:, j].all()]
    assert not differ, f"not bit-identical: {differ}"


@pytest.mark.slow
def test_stream_batch_parity_real_day_tick_by_tick(ticks: pd.DataFrame) -> None:
    cfg = FeatureConfig()
    batch = compute_features(ticks, cfg)
    stream = replay_interval(cfg, ticks)
    names = [c for c in batch.columns if c not in ("symbol", "event_timestamp", "last_tick_ts")]
    assert len(names) >= 150
    # one row per session minute per symbol, 09:31 .. 16:00
    assert batch.groupby("symbol").size().to_dict() == {"IBM": 390, "SPY": 390}
    assert_same_rows(batch, stream, names)
    # the comparison is not vacuous: most values are finite, and the cross-asset family is on
    ibm = batch[batch["symbol"] == "IBM"]
    assert np.isfinite(ibm[names].to_numpy()).mean() > 0.99
    assert ibm["lead_corr_b30"].notna().all()


@pytest.mark.slow
def test_stream_batch_parity_every_n_ticks(ticks: pd.DataFrame) -> None:
    cfg = FeatureConfig(every_n_ticks=250)
    batch = compute_features(ticks, cfg)
    syms, ts, *cols = _stream_order(ticks)
    engine = StreamingFeatureEngine(cfg, ["IBM", "SPY"])
    for i, t in enumerate(ts):
        engine.update(syms[i], t, *(c[i] for c in cols))
    engine.flush()
    stream = engine.drain()
    names = engine.names
    assert len(stream) == len(batch) > 1000
    assert not batch.duplicated(["symbol", "event_timestamp"]).any()
    assert (batch["last_tick_ts"] == batch["event_timestamp"]).all()
    assert_same_rows(batch, stream, names)


@pytest.mark.slow
def test_stream_update_many_matches_update(ticks: pd.DataFrame) -> None:
    """update_many over each symbol's ticks of an interval = the same rows as batch mode."""
    cfg = FeatureConfig()
    ibm = ticks[ticks["symbol"] == "IBM"]
    ibm = ibm[ibm["ts"] < pd.Timestamp("2013-10-08 15:00", tz="UTC")]
    batch = compute_features(ibm, cfg)
    engine = StreamingFeatureEngine(cfg, ["IBM"])
    ts = ibm["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    step = cfg.interval_ns
    bounds = (ts + step - 1) // step * step  # the grid time closing each tick's interval
    frames = []
    for b in np.unique(bounds):
        sel = bounds == b
        engine.update_many("IBM", ts[sel], *(ibm[c].to_numpy(dtype=float)[sel] for c in COLS))
        frames.append(engine.snapshot(int(b)))
    stream = pd.concat(frames, ignore_index=True)
    batch = batch[batch["event_timestamp"].isin(stream["event_timestamp"])]
    assert len(stream) == len(batch) > 60  # every session minute until 11:00 has IBM ticks
    assert_same_rows(batch, stream, engine.names)


@pytest.mark.unit
def test_snapshot_after_newer_tick_raises() -> None:
    cfg = FeatureConfig(session_open=None, session_close=None, leader=None)
    engine = StreamingFeatureEngine(cfg, ["X"])
    t0 = pd.Timestamp("2013-10-08 14:00:00.5", tz="UTC").value
    engine.update("X", t0, 10.0, 10.01, 100.0, 200.0, np.nan, 0.0)
    assert len(engine.snapshot(pd.Timestamp("2013-10-08 14:01", tz="UTC"))) == 1
    engine.update("X", t0 + 120 * 10**9, 10.0, 10.02, 100.0, 200.0, np.nan, 0.0)
    with pytest.raises(ValueError, match="later tick"):
        engine.snapshot(pd.Timestamp("2013-10-08 14:02", tz="UTC"))


def test_ring_moments_computed_ahead_change_no_row(ticks: pd.DataFrame) -> None:
    """A live materializer's pattern: symbols added as their first tick comes (the state grows
    past its first 8 rows), ring moments computed ahead of the boundaries a few symbols at a
    time (``warm``), a checkpoint restored mid-way: every row equals batch bit for bit."""
    window = ticks[(ticks["ts"] >= "2013-10-08 14:00Z") & (ticks["ts"] < "2013-10-08 14:40Z")]
    copies = [window[window["symbol"] == "SPY"]]
    for c in range(9):  # nine renamed copies of IBM: the universe grows one symbol at a time
        part = window[window["symbol"] == "IBM"].copy()
        part["symbol"] = f"IBM{c}"
        part["ts"] += pd.Timedelta(milliseconds=37 * c)  # their own times, not ties
        copies.append(part)
    data = pd.concat(copies, ignore_index=True)
    cfg = FeatureConfig()
    batch = compute_features(data, cfg)
    syms, ts, bid, ask, bsz, asz, price, size = _stream_order(data)
    engine = StreamingFeatureEngine(cfg)
    step = cfg.interval_ns
    day_start = cfg.market.day_of(ts[0])[0]
    next_b = day_start + ((ts[0] - day_start + step - 1) // step) * step
    frames, warmed, restored = [], 0, False
    for i, t in enumerate(ts):
        while next_b < t:
            frames.append(engine.snapshot(next_b))
            next_b += step
            if not restored and len(frames) > 20:
                engine = StreamingFeatureEngine.from_state_bytes(engine.state_bytes(), cfg)
                restored = True
        engine.update(syms[i], t, bid[i], ask[i], bsz[i], asz[i], price[i], size[i])
        if i % 40 == 0:
            warmed += engine.warm(3)
    frames.append(engine.snapshot(next_b))
    stream = pd.concat([f for f in frames if len(f)], ignore_index=True)
    assert restored and warmed > 1000 and len(engine.symbols) == 10
    batch = batch[batch["event_timestamp"] <= stream["event_timestamp"].max()]  # to the close
    assert_same_rows(batch, stream, engine.names)


def test_moments_kept_across_growth_of_the_universe(ticks: pd.DataFrame) -> None:
    """Quiet symbols keep their moments computed ahead while a new symbol grows the state
    (their rows then come from the kept moments): equal to an engine that never warms."""
    ibm = ticks[(ticks["symbol"] == "IBM") & (ticks["ts"] >= "2013-10-08 14:00Z")].head(600)
    cols = [ibm[c].to_numpy(dtype=float) for c in COLS]
    ts = ibm["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    cfg = FeatureConfig(leader=None)
    warm, plain = StreamingFeatureEngine(cfg), StreamingFeatureEngine(cfg)
    b = cfg.interval_ns * (int(ts[-1]) // cfg.interval_ns + 1)
    for eng in (warm, plain):
        for c in range(8):  # fills the first 8 state rows
            eng.update_many(f"Q{c}", ts[:400], *(a[:400] for a in cols))
    assert warm.warm() == 8
    for eng in (warm, plain):  # a ninth symbol: the state grows
        eng.update_many("NEW", ts[400:], *(a[400:] for a in cols))
    assert warm.warm() == 1  # only the new one: the quiet ones' moments are kept
    ws, wv, _ = warm.snapshot_arrays(b)
    ps, pv, _ = plain.snapshot_arrays(b)
    assert ws == ps and len(ws) == 9
    assert ((wv == pv) | (np.isnan(wv) & np.isnan(pv))).all()
