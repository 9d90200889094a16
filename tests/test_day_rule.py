"""One trading-day rule from ingest to features (tickml.market): a tick exactly at local
midnight belongs to the day that ends there in the lake, the Postgres tick store, the
quarantine and the feature engine alike; re-ingesting a day replaces exactly that day's rows;
the run's market comes from its configuration, else from its source (tickml.sources)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tickml.config import RunConfig
from tickml.errors import UsageError
from tickml.features import FeatureConfig, compute_features
from tickml.ingest import SourceSpec, available_days, ingest_day, load_day
from tickml.lake import TickLake
from tickml.market import Market
from tickml.readers.canonical import write_canonical
from tickml.schema import TICK_COLUMNS
from tickml.settings import Settings
from tickml.sources import source_market
from tickml.store.postgres import TickStore

NY_ALL_DAY = Market.all_day("America/New_York")
D = dt.date(2024, 3, 5)
NEXT = D + dt.timedelta(days=1)
MIDNIGHT = pd.Timestamp("2024-03-06 00:00", tz="America/New_York")  # 05:00 UTC


def _tick(symbol: str, ts: pd.Timestamp, seq: int, bid: float = 10.0) -> tuple:
    return (symbol, ts, seq, bid, bid + 0.02, 100.0, 200.0, bid + 0.01, 5.0)


def _source(path, price: float = 10.0) -> pd.DataFrame:
    """Ticks around the local midnight between D and NEXT; AAA has one exactly on it."""
    ns = pd.Timedelta(1, "ns")
    rows = [
        _tick("AAA", MIDNIGHT - pd.Timedelta(minutes=3), 1, price),
        _tick("AAA", MIDNIGHT - ns, 2, price),
        _tick("AAA", MIDNIGHT, 3, price),  # the last instant of D
        _tick("AAA", MIDNIGHT + ns, 4, price),  # the first tick of NEXT
        _tick("AAA", MIDNIGHT + pd.Timedelta(1, "us"), 5, price),
        _tick("AAA", MIDNIGHT + pd.Timedelta(minutes=2), 6, price),
        _tick("BBB", MIDNIGHT - pd.Timedelta(minutes=2), 1, price),
        _tick("BBB", MIDNIGHT + pd.Timedelta(minutes=1), 2, price),
    ]
    frame = pd.DataFrame(rows, columns=list(TICK_COLUMNS))
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True).astype("datetime64[ns, UTC]")
    write_canonical(frame, path)
    return frame


def _ns(frame: pd.DataFrame) -> list[int]:
    return sorted(frame["ts"].astype("int64").tolist())


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_tick_at_local_midnight_is_in_the_same_day_in_lake_store_and_features(
    tmp_path, fresh_pg_url
):
    src = tmp_path / "ticks.parquet"
    frame = _source(src)
    spec = SourceSpec(kind="canonical", path=src, market=NY_ALL_DAY)
    assert available_days(spec) == [D, NEXT]
    lake = TickLake(tmp_path / "lake")
    with TickStore(fresh_pg_url) as store:
        store.ensure_schema()
        for day in (D, NEXT):
            ingest_day(spec, day, lake, store)
        ts = frame["ts"].astype("int64")
        in_d = ts <= MIDNIGHT.value
        # the lake: midnight closes D; a nanosecond later is NEXT
        assert _ns(lake.read_day(D)) == sorted(ts[in_d].tolist())
        assert _ns(lake.read_day(NEXT)) == sorted(ts[~in_d].tolist())
        assert MIDNIGHT.value in _ns(lake.read_day(D))
        # the store: the same days (stored to the microsecond, rounded up)
        for day, mask in ((D, in_d), (NEXT, ~in_d)):
            stored = store.read(day, tz="America/New_York")
            want = -(-ts[mask] // 1000) * 1000
            assert _ns(stored) == sorted(want.tolist())
            assert store.count(day, tz="America/New_York") == int(mask.sum())
        # stored at 05:00:00 UTC, the midnight tick sits in NEXT's UTC partition, read as D's
        assert store.partitions() == [NEXT]
    # the features: the engine cuts the days where the lake does, so the lake's days one at
    # a time give exactly the rows of all ticks at once
    cfg = FeatureConfig(market=NY_ALL_DAY, leader=None, interval="1min")
    whole = compute_features(frame, cfg)
    by_day = pd.concat(
        [compute_features(lake.read_day(d), cfg) for d in (D, NEXT)], ignore_index=True
    ).sort_values(["symbol", "event_timestamp"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(whole, by_day)
    last_of_d = whole[(whole["symbol"] == "AAA") & (whole["event_timestamp"] == MIDNIGHT)]
    assert len(last_of_d) == 1 and last_of_d["last_tick_ts"].iloc[0] == MIDNIGHT


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_reingesting_a_day_replaces_exactly_that_days_rows(tmp_path, fresh_pg_url):
    src = tmp_path / "ticks.parquet"
    _source(src, price=10.0)
    spec = SourceSpec(kind="canonical", path=src, market=NY_ALL_DAY)
    lake = TickLake(tmp_path / "lake")
    with TickStore(fresh_pg_url) as store:
        store.ensure_schema()
        for day in (D, NEXT):
            ingest_day(spec, day, lake, store)
        next_store = store.read(NEXT, tz="America/New_York")
        next_lake = lake.read_day(NEXT)
        # D again from a changed source: new prices, and BBB no longer trades on D
        changed = _source(src, price=20.0)
        changed = changed[~((changed["symbol"] == "BBB") & (changed["seq"] == 1))]
        write_canonical(changed, src)
        ingest_day(spec, D, lake, store)
        d_store = store.read(D, tz="America/New_York")
        assert sorted(d_store["symbol"]) == ["AAA"] * 3  # BBB's day is gone, store and lake
        assert set(d_store["bid"]) == {20.0} and lake.symbols(D) == ["AAA"]
        assert _ns(d_store) == [-(-t // 1000) * 1000 for t in _ns(lake.read_day(D))]
        # NEXT (whose first ticks share a UTC partition and a microsecond with D's last) is
        # untouched
        pd.testing.assert_frame_equal(store.read(NEXT, tz="America/New_York"), next_store)
        pd.testing.assert_frame_equal(lake.read_day(NEXT), next_lake)
        assert store.count() == 3 + len(next_store)


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_quarantine_day_follows_the_market(tmp_path):
    """A rejected row at local midnight is filed under the day its tick would be stored in."""
    csv = tmp_path / "q.csv"
    csv.write_text(
        "symbol,ts,seq,bid,ask,bid_size,ask_size,price,size\n"
        "AAA,2024-03-06T04:59:00Z,1,10.0,10.1,1,1,,0\n"
        "AAA,2024-03-06T05:00:00Z,2,10.2,10.1,1,1,,0\n"  # crossed, exactly at NY midnight
        "AAA,2024-03-06T05:01:00Z,3,10.0,10.1,1,1,,0\n"
    )
    spec = SourceSpec(kind="canonical", path=csv, market=NY_ALL_DAY)
    lake = TickLake(tmp_path / "lake")
    for day in available_days(spec):
        ingest_day(spec, day, lake)
    q = lake.read_quarantine(D)
    assert q["position"].tolist() == [3] and q["reason"].tolist() == ["crossed_book"]
    assert lake.read_quarantine(NEXT).empty


@pytest.mark.unit
def test_the_runs_market_comes_from_its_configuration_else_its_source(tmp_path):
    crypto = Market.all_day("UTC")
    assert source_market("binance") == crypto
    assert source_market("equity-ticks") == source_market("canonical") == Market()
    assert source_market("binance", Market()) == Market()  # a market section is the truth
    with pytest.raises(ValueError, match="unknown source"):
        source_market("bogus")
    # a configuration without a market section: every section takes the source's market
    cfg = RunConfig().for_source("binance")
    assert cfg.market == cfg.features.market == cfg.labels.market == crypto
    assert cfg.experiment.walk_forward.market == cfg.experiment.decision.market == crypto
    assert RunConfig().for_source("simulator").market == Market()
    tokyo = tmp_path / "tokyo.yaml"
    tokyo.write_text("market: {tz: Asia/Tokyo}\n")
    assert RunConfig.load(tokyo).for_source("binance").market.tz == "Asia/Tokyo"
    # the Dagster partitions follow the same rule (TICKML_SOURCE, TICKML_CONFIG)
    assert Settings(source="binance", config=None).market() == crypto
    assert Settings(source="binance", config=tokyo).market().tz == "Asia/Tokyo"
    assert Settings(config=None).market() == Market()


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_market_that_cannot_hold_the_sources_days_is_one_clear_error(equity_root):
    """The equity files deliver New York trading days; in Tokyo the session falls on the next
    date, so no Tokyo day holds it: one line, no ticks stored under a wrong day."""
    spec = SourceSpec(kind="equity-ticks", path=equity_root, symbols=("IBM",))
    day = dt.date(2013, 10, 8)
    assert len(load_day(spec, day).ticks) > 10_000
    tokyo = dataclasses.replace(spec, market=Market(tz="Asia/Tokyo"))
    with pytest.raises(UsageError) as info:
        load_day(tokyo, day)
    msg = str(info.value)
    assert "\n" not in msg and "outside the day 2013-10-08" in msg and "market.tz" in msg
    # UTC cannot hold it either: the files run to 20:00 New York time, past midnight UTC
    with pytest.raises(UsageError, match="first at 2013-10-09 00:00:00.514"):
        load_day(dataclasses.replace(spec, market=Market(tz="UTC")), day)
    # a market whose days hold the whole file is no conflict (Chicago: the same date)
    chicago = load_day(dataclasses.replace(spec, market=Market(tz="America/Chicago")), day)
    assert np.array_equal(chicago.ticks["ts"], load_day(spec, day).ticks["ts"])


@pytest.mark.unit
def test_the_simulator_trades_the_runs_market():
    spec = SourceSpec(kind="simulator", sim={"n_symbols": 2}, market=Market(tz="Europe/London"))
    ticks = load_day(spec, D).ticks
    local = ticks["ts"].dt.tz_convert("Europe/London")
    assert local.min() > pd.Timestamp("2024-03-05 09:30", tz="Europe/London")
    assert local.max() <= pd.Timestamp("2024-03-05 16:00", tz="Europe/London")
    default = load_day(SourceSpec(kind="simulator", sim={"n_symbols": 2}), D).ticks
    assert default["ts"].dt.tz_convert("America/New_York").min().hour == 9


@pytest.mark.unit
def test_the_live_feed_replays_the_configured_markets_day(tmp_path):
    """`python -m live feed --config F`: the simulated day is the configured market's session
    (without a market section: the source's own, New York)."""
    import argparse

    from live.__main__ import feed_events

    london = tmp_path / "london.yaml"
    london.write_text("market: {tz: Europe/London}\n")
    base = dict(source="simulator", ticks=None, day="2024-03-05", symbols=None, sim_symbols=2,
                signal_strength=0.0, seed=7, speed=None, max_seconds=None, sim_minutes=None,
                close_real_s=None)
    for config, tz in ((str(london), "Europe/London"), (None, "America/New_York")):
        args = argparse.Namespace(**base, config=config)
        feed = feed_events(args, RunConfig.load(config).features)
        local = feed.frame["ts"].dt.tz_convert(tz)
        assert local.min() > pd.Timestamp("2024-03-05 09:30", tz=tz)
        assert local.max() <= pd.Timestamp("2024-03-05 16:00", tz=tz)
