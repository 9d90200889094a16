"""Online/offline consistency: the pure comparison, and a real fault day through the live
materializer and the ``online_consistency`` asset.

The clean real day (0 mismatches, live scores = champion scores) is checked on the full-day
replay of ``tests/test_live_e2e.py``. Here: the first 45 minutes of IBM + SPY 2013-10-08 go over
the bus (the clock then runs on to the close) to a real materializer with two live-side
faults: IBM's ticks of a reconnect gap (10:00:00-10:02:30 New York) never arrive, and SPY's
last ticks before the 09:46 boundary (one millisecond's) arrive after that boundary's clock
marker (a late tick). The batch side recomputes the features from all the stored ticks; the
asset check must fail and name the rows.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import redis

from tickml.consistency import ConsistencyConfig, compare_features, consistency_report

NY = "America/New_York"
DAY = dt.date(2013, 10, 8)
KEY = ["symbol", "event_timestamp"]


def _frame(values: dict[str, list[float]], minutes: list[int], symbol: str = "A") -> pd.DataFrame:
    ts = pd.Timestamp("2024-01-02 14:31", tz="UTC")
    return pd.DataFrame(
        {
            "symbol": symbol,
            "event_timestamp": [ts + pd.Timedelta(minutes=m) for m in minutes],
            **values,
        }
    )


@pytest.mark.unit
def test_compare_features_counts_values_nans_and_one_side_rows() -> None:
    batch = _frame({"f": [1.0, np.nan, 3.0, 4.0], "g": [0.0, 0.0, 0.0, 0.0]}, [0, 1, 2, 3])
    online = _frame({"f": [1.0, np.nan, 3.5, np.nan], "g": [0.0, 0.0, 0.0, 0.0]}, [0, 1, 2, 3])
    online = pd.concat([online.iloc[1:], _frame({"f": [9.0], "g": [0.0]}, [9])])
    out = compare_features(batch, online, ["f", "g"])
    assert (out["n_matched"], out["n_batch_only"], out["n_online_only"]) == (3, 1, 1)
    f = out["features"]["f"]
    assert f["mismatches"] == 2 and f["share"] == pytest.approx(2 / 3)
    assert f["max_abs_diff"] == np.inf  # one side NaN, the other 4.0
    assert out["features"]["g"]["mismatches"] == 0
    assert [r["worst_feature"] for r in out["rows_differing"]] == ["f", "f"]
    assert out["batch_only"][0]["event_timestamp"].startswith("2024-01-02T14:31")
    assert out["online_only"][0]["event_timestamp"].startswith("2024-01-02T14:40")
    # a tolerance admits the 0.5 difference, never a NaN against a number
    loose = compare_features(batch, online, ["f"], ConsistencyConfig(abs_tol=0.6))
    assert loose["features"]["f"]["mismatches"] == 1


@pytest.mark.unit
def test_report_passes_only_when_exact() -> None:
    batch = _frame({"f": [1.0, 2.0]}, [0, 1])
    assert consistency_report(batch, batch.copy(), ["f"])["passed"]
    off = batch.assign(f=[1.0, 2.0 + 1e-12])
    rep = consistency_report(batch, off, ["f"])
    assert not rep["passed"] and "1 feature(s) differ" in rep["reasons"][0]
    assert consistency_report(batch, off, ["f"], config=ConsistencyConfig(rel_tol=1e-9))["passed"]
    share = ConsistencyConfig(max_mismatch_share=0.5)
    assert consistency_report(batch, off, ["f"], config=share)["passed"]
    gap = consistency_report(batch, batch.iloc[:1], ["f"])
    assert not gap["passed"] and "1 row(s) on one side only" in gap["reasons"][0]


def _faulty_events(ticks: pd.DataFrame, gap: tuple[pd.Timestamp, pd.Timestamp], late_b: int):
    """The replay feed's events with the IBM gap removed and SPY's last ticks before
    ``late_b`` moved right after that boundary's clock marker; and the late ticks."""
    from live.feeds import Clock, ReplayFeed, Ticks, boundaries
    from tickml.features import FeatureConfig

    ts = ticks["ts"]
    in_gap = (ticks["symbol"] == "IBM") & (ts > gap[0]) & (ts <= gap[1])
    spy = ticks[(ticks["symbol"] == "SPY") & (ts.astype("int64") <= late_b)]
    late = spy[spy["ts"] == spy["ts"].max()]  # the last millisecond's ticks
    live = ticks[~in_gap].drop(index=late.index)
    events = []
    for ev in ReplayFeed(live, FeatureConfig()):
        events.append(ev)
        if isinstance(ev, Clock) and ev.t_ns == late_b:
            events.append(Ticks(late, time.time_ns()))
    # the day's ticks stop at 10:15 here; the clock runs on to the close, as live it would:
    # one marker per grid time (a single marker hours ahead is refused by the materializer)
    last = max(ev.t_ns for ev in events if isinstance(ev, Clock))
    close = int(pd.Timestamp(f"{DAY} 16:00", tz=NY).value)
    events += [Clock(int(b), time.time_ns()) for b in boundaries(FeatureConfig(), last, close)]
    return events, late


@pytest.mark.integration
def test_fault_day_fails_and_names_the_rows(
    equity_root: Path, redis_url: str, tmp_path: Path
) -> None:
    from assets.consistency import online_consistency
    from assets.resources import (
        LakeResource,
        ModelRegistryResource,
        PipelineConfigResource,
        TickStoreResource,
    )
    from live.bus import TickBus
    from live.config import LiveConfig
    from live.feeds import Clock
    from live.materializer import run_materializer
    from live.replay import drained
    from tickml.features import FeatureConfig
    from tickml.lake import TickLake
    from tickml.readers.equity import read_equity_day

    ticks = read_equity_day(equity_root, DAY, symbols=["IBM", "SPY"]).ticks
    ticks = ticks[ticks["ts"] <= pd.Timestamp(f"{DAY} 10:15", tz=NY)].reset_index(drop=True)
    gap = (pd.Timestamp(f"{DAY} 10:00", tz=NY), pd.Timestamp(f"{DAY} 10:02:30", tz=NY))
    late_b = int(pd.Timestamp(f"{DAY} 09:46", tz=NY).value)
    events, late = _faulty_events(ticks, gap, late_b)

    # live side: the faulty stream over the bus into a real materializer (in-process)
    cfg = LiveConfig(redis_url=redis_url, shards=1, stream_maxlen=1_000_000)
    client = redis.Redis.from_url(redis_url)
    bus = TickBus(client, cfg, leader=FeatureConfig().leader)
    for ev in events:
        if isinstance(ev, Clock):
            bus.publish_clock(ev.t_ns, ev.wall_ns)
        else:
            bus.publish(ev.frame)
    # no scorer or ledger here
    client.mset({cfg.key("scorer", "last"): 2**62, cfg.key("ledger", "last"): 2**62})
    lake_root = tmp_path / "lake"
    stop = threading.Event()
    worker = threading.Thread(
        target=run_materializer, args=(cfg, [0], stop), kwargs={"log_dir": lake_root}
    )
    worker.start()
    last_clock = max(ev.t_ns for ev in events if isinstance(ev, Clock))

    def done() -> bool:
        mark = client.hget(cfg.key("progress"), "done:0")
        return mark is not None and int(mark) >= last_clock and drained(cfg, client)

    deadline = time.monotonic() + 120
    while not done() and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    worker.join(60)
    assert drained(cfg, client), "the materializer did not drain the bus"

    # batch side: every tick stored in the lake; the asset recomputes and compares
    TickLake(lake_root).write_day(ticks, DAY)
    result = dg.materialize(
        [online_consistency],
        partition_key=DAY.isoformat(),
        resources={
            "lake": LakeResource(root=str(lake_root)),
            "pipeline": PipelineConfigResource(),
            "registry": ModelRegistryResource(root=str(tmp_path / "models")),
            "tick_store": TickStoreResource(),
        },
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=True,
    )
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "online_matches_batch" and not check.passed
    report = __import__("json").loads(
        (tmp_path / "reports" / "consistency" / f"{DAY}.json").read_text()
    )
    f = report["features"]
    assert not report["passed"] and report["scores"] is None  # no tick store: no signals
    assert f["n_batch_only"] == f["n_online_only"] == 0  # the engine writes every boundary
    rows = {(r["symbol"], pd.Timestamp(r["event_timestamp"])) for r in f["rows_differing"]}
    # every row before the first fault agrees; the gap's first IBM row is named
    assert min(t for _, t in rows).value == late_b, sorted(rows)[:5]
    assert ("IBM", pd.Timestamp(f"{DAY} 10:01", tz=NY)) in rows
    # the late tick: SPY's 09:46 row saw an earlier last tick than batch (named, flagged)
    spy_late = next(
        r
        for r in f["rows_differing"]
        if r["symbol"] == "SPY" and pd.Timestamp(r["event_timestamp"]).value == late_b
    )
    assert spy_late["last_tick_differs"]
    assert f["n_last_tick_differing"] >= 2  # IBM in the gap, SPY at 09:46
    assert any("late or missed ticks" in r for r in report["reasons"])
    # the rows are named in the check's metadata too (the Dagster UI shows them)
    named = check.metadata["rows_differing"].value
    assert "IBM" in named and "SPY" in named
    assert late["ts"].iloc[0] <= pd.Timestamp(late_b, tz="UTC")
