"""The nightly and weekly schedules, evaluated at concrete instants, and a two-day run of the
nightly job recorded in the project's Postgres-backed Dagster instance, with Feast's online
store in Redis."""

import datetime as dt
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from orchestration import schedules
from orchestration.schedules import nightly_daily_job, session_date, weekly_retrain
from tickml.market import Market
from tickml.settings import Settings

REPO = Path(__file__).resolve().parents[1]
NY = ZoneInfo("America/New_York")
UTC = dt.UTC


def _repo_def() -> dg.RepositoryDefinition:
    from orchestration.definitions import defs

    return dg.Definitions.merge(
        defs, dg.Definitions(schedules=[nightly_daily_job])
    ).get_repository_def()


@pytest.fixture(scope="module")
def repo_def() -> dg.RepositoryDefinition:
    return _repo_def()


def _nightly(at: dt.datetime, repo_def: dg.RepositoryDefinition):
    ctx = dg.build_schedule_context(scheduled_execution_time=at, repository_def=repo_def)
    return nightly_daily_job.evaluate_tick(ctx)


@pytest.mark.unit
def test_schedule_definitions_defaults():
    assert nightly_daily_job.job_name == "daily_job"
    assert nightly_daily_job.cron_schedule == "30 0 * * 2-6"
    assert nightly_daily_job.execution_timezone == "America/New_York"
    assert weekly_retrain.job_name == "retrain_job"
    assert weekly_retrain.cron_schedule == "0 6 * * 6"
    status = schedules.default_status
    assert status(Settings(env="local", schedules=None)) == dg.DefaultScheduleStatus.STOPPED
    assert status(Settings(env="prod", schedules=None)) == dg.DefaultScheduleStatus.RUNNING
    assert status(Settings(env="prod", schedules="off")) == dg.DefaultScheduleStatus.STOPPED
    assert status(Settings(env="local", schedules="on")) == dg.DefaultScheduleStatus.RUNNING


@pytest.mark.unit
@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # 00:30 New York on a Tuesday (EST, 05:30 UTC) -> Monday's session
        (dt.datetime(2024, 1, 9, 5, 30, tzinfo=UTC), "2024-01-08"),
        # Saturday 00:30 -> Friday's session
        (dt.datetime(2024, 1, 6, 0, 30, tzinfo=NY), "2024-01-05"),
        # Tuesday after the spring-forward Sunday (EDT, 04:30 UTC) -> Monday 2024-03-11
        (dt.datetime(2024, 3, 12, 4, 30, tzinfo=UTC), "2024-03-11"),
        # Tuesday after the fall-back Sunday (EST again, 05:30 UTC) -> Monday 2024-11-04
        (dt.datetime(2024, 11, 5, 5, 30, tzinfo=UTC), "2024-11-04"),
        # a session in the real equity data (Oct 2013, EDT)
        (dt.datetime(2013, 10, 9, 4, 30, tzinfo=UTC), "2013-10-08"),
    ],
)
def test_nightly_requests_the_session_that_just_closed(at, expected, repo_def):
    result = _nightly(at, repo_def)
    assert result.skip_message is None
    [req] = result.run_requests
    assert req.partition_key == expected
    assert req.run_key == f"nightly-{expected}"
    assert req.tags["dagster/partition"] == expected
    assert req.tags["dagster/schedule_name"] == "nightly_daily_job"


@pytest.mark.unit
def test_nightly_before_the_day_is_complete_skips_with_reason(repo_def):
    """17:30 on the session day: the daily partition (a NY calendar day) does not exist yet."""
    result = _nightly(dt.datetime(2024, 1, 2, 17, 30, tzinfo=NY), repo_def)
    assert result.run_requests == []
    assert "2024-01-02" in result.skip_message and "end_offset" in result.skip_message


@pytest.mark.unit
def test_session_date_uses_the_exchange_zone_across_dst():
    ny = Market(tz="America/New_York", session_close=dt.time(16, 0))
    # 20:15 UTC on 2024-03-11 is 16:15 EDT (after the close); in EST it would be 15:15 (before)
    assert session_date(
        dt.datetime(2024, 3, 11, 20, 15, tzinfo=UTC), ny
    ) == dt.date(2024, 3, 11)
    # 20:15 UTC on 2024-03-08 is 15:15 EST: Friday's session has not closed -> Thursday
    assert session_date(
        dt.datetime(2024, 3, 8, 20, 15, tzinfo=UTC), ny
    ) == dt.date(2024, 3, 7)
    # 17:30 local on a Friday -> that Friday; 00:30 UTC Saturday is still Friday evening in NY
    assert session_date(
        dt.datetime(2024, 11, 8, 17, 30, tzinfo=NY), ny
    ) == dt.date(2024, 11, 8)
    assert session_date(
        dt.datetime(2024, 11, 9, 0, 30, tzinfo=UTC), ny
    ) == dt.date(2024, 11, 8)


@pytest.mark.unit
def test_weekly_retrain_run_request():
    at = dt.datetime(2024, 3, 9, 11, 0, tzinfo=UTC)  # Saturday 06:00 EST
    result = weekly_retrain.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=at))
    [req] = result.run_requests
    assert req.run_key == "weekly-retrain-2024-03-09"
    assert req.partition_key is None
    assert req.tags["tickml/trigger"] == "weekly_retrain"


@pytest.mark.unit
def test_daily_job_is_the_nightly_chain(repo_def):
    """daily_job: ingest -> features (+ online warm start) -> labels -> evaluate the champion ->
    drift report, in that dependency order."""
    from orchestration.definitions import DAILY_ASSETS

    job = repo_def.get_job("daily_job")
    assert set(job.graph.node_names()) == set(DAILY_ASSETS)
    graph = repo_def.asset_graph
    parents = {
        k: {p.to_user_string() for p in graph.get(dg.AssetKey(k)).parent_keys} for k in DAILY_ASSETS
    }
    assert "raw_ticks" in parents["tick_features"]
    assert "tick_features" in parents["online_features"]
    assert "tick_features" in parents["labels"]
    assert "labels" in parents["champion_evaluation"]
    assert "champion_evaluation" in parents["drift_report"]
    assert {"raw_ticks", "tick_features"} <= parents["shadow_vs_backtest"]
    assert nightly_daily_job.job_name == job.name


@pytest.mark.integration
@pytest.mark.slow
def test_two_day_backfill_through_postgres_instance_and_redis(
    tmp_path, monkeypatch, fresh_pg_url, fresh_pg_url_2, redis_url
):
    """Two nightly partitions of daily_job (ingest -> features -> online warm start -> labels
    -> champion evaluation -> drift report) in production mode: the project's dagster.yaml
    (dagster-postgres) records the runs, Feast's online store is Redis with its SQL registry
    in PostgreSQL, and after the backfill Redis serves each symbol's last row of the second
    day (a later backfill of the first day does not overwrite it)."""
    import psycopg
    import redis

    from assets.resources import TickSourceResource
    from feature_repo.store import load_store
    from orchestration.definitions import DAILY_ASSETS
    from orchestration.runner import materialize_days
    from tickml.lake import FeatureTables

    home = tmp_path / "prod_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    registry_url = fresh_pg_url_2.replace("postgresql://", "postgresql+psycopg://", 1)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(
        "TICKML_DAGSTER_PG_URL", fresh_pg_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    )
    settings = Settings(
        env="prod", redis_url=redis_url, feast_registry_url=registry_url, workdir=tmp_path
    )
    days = [dt.date(2024, 1, 4), dt.date(2024, 1, 5)]
    # the nightly schedule's requests for those two nights name exactly these partitions
    repo_def = _repo_def()
    keys = [
        _nightly(dt.datetime(d.year, d.month, d.day + 1, 0, 30, tzinfo=NY), repo_def)
        .run_requests[0]
        .partition_key
        for d in days
    ]
    assert keys == [d.isoformat() for d in days]
    src = TickSourceResource(kind="simulator", sim_n_symbols=2, sim_seed=5)
    # Evidently costs ~0.1-0.3 s per column here: 40 evenly spaced features keep the test short
    drift_cfg = {"evidently_max_columns": 40}
    rows = materialize_days(
        days, settings, src, assets=DAILY_ASSETS, op_config={"drift_report": drift_cfg}
    )
    drift_check = "drift_report.drift_within_thresholds"
    for r in rows:  # every check passes (drift may warn: two days of a regime-switching market)
        assert drift_check in r["checks"]
        assert all(v for k, v in r["checks"].items() if k != drift_check), r["checks"]
    first, second = (r["assets"] for r in rows)
    assert first["online_features"]["online_store"] == "redis"
    assert first["online_features"]["registry_applied"] is True  # fresh SQL registry
    assert second["online_features"]["registry_applied"] is False
    assert first["champion_evaluation"]["status"] == "no_champion"
    assert first["drift_report"]["status"] == "skipped"  # the first day: no reference yet
    assert "no reference yet" in first["drift_report"]["reason"]
    assert second["drift_report"]["status"] == "ok"
    assert second["drift_report"]["reference"] == "prior_days"
    assert second["drift_report"]["reference_days"] == [keys[0]]
    assert second["drift_report"]["recent_source"] == "batch"
    assert second["drift_report"]["summary"]["n_reference"] > 0
    assert first["shadow_vs_backtest"]["status"] == "skipped"  # no shadow ledger database

    instance = dg.DagsterInstance.get()
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    for asset in DAILY_ASSETS:
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(keys), asset
    runs = instance.get_runs()
    assert sorted(r.tags["dagster/partition"] for r in runs) == keys
    assert all(r.is_success for r in runs)
    with psycopg.connect(fresh_pg_url) as conn:
        n_mat = conn.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        ).fetchone()[0]
    assert n_mat == 2 * len(DAILY_ASSETS)

    # Redis (through Feast, registry in Postgres) holds each symbol's last row of day two
    def online() -> pd.DataFrame:
        store = load_store("prod", settings.layout, redis_url, registry_url)
        cols = ["ret_t20", "spread_t60", "row_event_ns", "last_tick_ns"]
        got = store.get_online_features(
            features=[f"tick_features:{c}" for c in cols],
            entity_rows=[{"symbol": s} for s in want["symbol"]],
        ).to_df()
        return got.set_index("symbol").loc[want["symbol"], cols]

    feats = FeatureTables(tmp_path / "lake").read_day(days[1])
    want = feats.sort_values("event_timestamp").groupby("symbol").tail(1).sort_values("symbol")
    assert len(want) == 2
    assert redis.Redis.from_url(redis_url).dbsize() == 2  # one hash per symbol
    got = online()
    assert (got["row_event_ns"].to_numpy() == want["row_event_ns"].to_numpy()).all()
    np.testing.assert_array_equal(
        got[["ret_t20", "spread_t60", "last_tick_ns"]].to_numpy(float),
        want[["ret_t20", "spread_t60", "last_tick_ns"]].to_numpy(float),
    )
    # backfilling the first day again leaves the newer rows in place
    materialize_days(days[:1], settings, src, assets=("online_features",))
    pd.testing.assert_frame_equal(online(), got)
