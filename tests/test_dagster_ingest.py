"""Real Dagster runs of the ingestion graph (sqlite instance in tmp, real Postgres tick store)."""

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from _servers import dagster_dev, graphql

from assets.resources import TickSourceResource
from orchestration.runner import materialize_days
from tickml.lake import TickLake
from tickml.settings import Settings

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration


@pytest.fixture()
def dagster_home(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def test_definitions_expose_partitioned_raw_ticks_with_checks():
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    node = graph.get(next(k for k in graph.get_all_asset_keys() if k.path == ["raw_ticks"]))
    assert node.partitions_def is not None
    keys = node.partitions_def.get_partition_keys(
        current_time=dt.datetime(2013, 10, 12)
    )
    assert "2013-10-08" in keys
    checks = {c.name for c in defs.resolve_asset_graph().asset_check_keys}
    assert {"row_count", "quarantine_share", "monotone_timestamps"} <= checks
    assert defs.resolve_job_def("ingest_job") is not None


def test_simulator_days_through_dagster_into_lake_and_postgres(tmp_path, dagster_home, pg_url):
    from tickml.store.postgres import TickStore

    days = [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    src = TickSourceResource(kind="simulator", sim_n_symbols=3, sim_seed=11)
    rows = materialize_days(days, Settings(workdir=tmp_path, pg_url=pg_url), src)
    assert [r["day"] for r in rows] == days
    lake = TickLake(tmp_path / "lake")
    store = TickStore(pg_url)
    try:
        for r, day in zip(rows, days, strict=True):
            assert all(r["checks"].values()), r["checks"]
            n_lake = len(lake.read_day(day))
            assert n_lake == r["n_ticks"] > 1000
            assert store.count(day=day, tz="America/New_York") == n_lake
        # idempotent: the same day again leaves the same rows, no duplicates
        materialize_days(days[:1], Settings(workdir=tmp_path, pg_url=pg_url), src)
        assert store.count(day=days[0], tz="America/New_York") == rows[0]["n_ticks"]
    finally:
        store.close()
    # the runs are recorded in the Dagster instance (what the UI shows)
    import dagster as dg

    inst = dg.DagsterInstance.get()
    assert len(inst.get_runs()) == 3


def test_raw_ticks_takes_the_run_configurations_market(tmp_path, dagster_home, fresh_pg_url):
    """The simulator trades the configured market's session, and the lake and the store file
    the day under that market's days (the default configuration: New York, as before)."""
    from tickml.store.postgres import TickStore

    day = dt.date(2024, 1, 5)
    london = tmp_path / "london.yaml"
    london.write_text(
        "market: {tz: Europe/London, session_open: '08:00', session_close: '16:30'}\n"
    )
    src = TickSourceResource(kind="simulator", sim_n_symbols=2)
    settings = Settings(workdir=tmp_path, pg_url=fresh_pg_url, config=None)
    [row] = materialize_days([day], settings, src, config_path=str(london))
    ticks = TickLake(tmp_path / "lake").read_day(day)
    local = ticks["ts"].dt.tz_convert("Europe/London")
    assert row["n_ticks"] == len(ticks) > 1000
    assert local.min() > pd.Timestamp("2024-01-05 08:00", tz="Europe/London")
    assert local.max() <= pd.Timestamp("2024-01-05 16:30", tz="Europe/London")
    with TickStore(fresh_pg_url) as store:
        assert store.count(day=day, tz="Europe/London") == len(ticks)
    materialize_days([day], settings.model_copy(update={"workdir": tmp_path / "ny"}), src)
    ny = TickLake(tmp_path / "ny" / "lake").read_day(day)["ts"].dt.tz_convert("America/New_York")
    assert ny.min() > pd.Timestamp("2024-01-05 09:30", tz="America/New_York")
    assert ny.max() <= pd.Timestamp("2024-01-05 16:00", tz="America/New_York")


@pytest.mark.slow
def test_real_equity_day_through_dagster(tmp_path, dagster_home, equity_root, pg_url):
    src = TickSourceResource(kind="equity-ticks", path=str(equity_root), symbols=["IBM", "SPY"])
    [row] = materialize_days(
        [dt.date(2013, 10, 8)], Settings(workdir=tmp_path, pg_url=pg_url), src
    )
    assert row["checks"] == {
        "row_count": True, "quarantine_share": True, "monotone_timestamps": True
    }
    ticks = TickLake(tmp_path / "lake").read_day(dt.date(2013, 10, 8))
    assert set(ticks["symbol"]) == {"IBM", "SPY"}
    # SPY is trades-only: every SPY tick is a trade with no book
    spy = ticks[ticks["symbol"] == "SPY"]
    assert spy["price"].notna().all() and spy["bid"].isna().all()
    # the regular session in UTC (EDT = UTC-4): 13:30 .. 20:00 holds most trades
    hours = spy["ts"].dt.hour
    assert ((hours >= 13) & (hours < 20)).mean() > 0.9


@pytest.mark.slow
def test_dagster_dev_serves_the_asset_graph(tmp_path):
    """`dagster dev` with the project's workspace.yaml starts and lists raw_ticks over GraphQL."""
    with dagster_dev(tmp_path) as base:
        query = "{ assetNodes { assetKey { path } groupName description } }"
        nodes = graphql(base, query)["assetNodes"]
    raw = [n for n in nodes if n["assetKey"]["path"] == ["raw_ticks"]]
    assert raw and raw[0]["groupName"] == "ingestion"
    assert "canonical ticks" in raw[0]["description"]


@pytest.mark.slow
def test_tick_features_asset_and_feast_registry(tmp_path, dagster_home):
    """raw_ticks -> tick_features in one real Dagster run; checks pass; Feast repo applies."""
    import dagster as dg

    from assets.features import feast_registry
    from orchestration.runner import build_resources
    from tickml.lake import FeatureTables

    src = TickSourceResource(kind="simulator", sim_n_symbols=3, sim_seed=3)
    day = dt.date(2024, 1, 2)
    settings = Settings(workdir=tmp_path)
    [row] = materialize_days([day], settings, src, assets=("raw_ticks", "tick_features"))
    assert all(row["checks"].values()), row["checks"]
    assert {"tick_features.no_nan_or_inf", "tick_features.point_in_time"} <= set(row["checks"])
    feats = FeatureTables(tmp_path / "lake").read_day(day)
    assert row["assets"]["tick_features"]["rows"] == len(feats) > 0
    assert (feats["last_tick_ts"] <= feats["event_timestamp"]).all()
    res = dg.materialize([feast_registry], resources=build_resources(settings, src))
    assert res.success
    applied = res.asset_materializations_for_node("feast_registry")[0].metadata["applied"].value
    assert "tick_features_v1" in applied


def test_production_dagster_yaml_stores_runs_in_postgres(tmp_path, monkeypatch, fresh_pg_url):
    """The project's dagster.yaml: dagster-postgres storage from TICKML_DAGSTER_PG_URL."""
    import shutil

    import dagster as dg
    import psycopg

    home = tmp_path / "prod_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(
        "TICKML_DAGSTER_PG_URL", fresh_pg_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    )
    instance = dg.DagsterInstance.get()
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    src = TickSourceResource(kind="simulator", sim_n_symbols=2, sim_seed=1)
    [row] = materialize_days([dt.date(2024, 1, 2)], Settings(workdir=tmp_path), src)
    assert all(row["checks"].values())
    with psycopg.connect(fresh_pg_url) as conn:
        n_runs = conn.execute(
            "SELECT count(*) FROM runs WHERE run_id = %s", (row["run_id"],)
        ).fetchone()[0]
        n_events = conn.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s", (row["run_id"],)
        ).fetchone()[0]
    assert n_runs == 1 and n_events > 10
