"""The nightly and weekly schedules, evaluated at concrete instants, and a two-day run of daily
partitions recorded in the project's Postgres-backed Dagster instance."""

import datetime as dt
import shutil
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from orchestration import schedules
from orchestration.schedules import nightly_daily_job, session_date, weekly_retrain

REPO = Path(__file__).resolve().parents[1]
NY = ZoneInfo("America/New_York")
UTC = dt.UTC


def _repo_def() -> dg.RepositoryDefinition:
    from orchestration.definitions import defs

    return dg.Definitions.merge(defs, dg.Definitions(schedules=[nightly_daily_job])) \
        .get_repository_def()


@pytest.fixture(scope="module")
def repo_def() -> dg.RepositoryDefinition:
    return _repo_def()


def _nightly(at: dt.datetime, repo_def: dg.RepositoryDefinition):
    ctx = dg.build_schedule_context(scheduled_execution_time=at, repository_def=repo_def)
    return nightly_daily_job.evaluate_tick(ctx)


@pytest.mark.unit
def test_schedule_definitions_defaults(monkeypatch):
    assert nightly_daily_job.job_name == "daily_job"
    assert nightly_daily_job.cron_schedule == "30 0 * * 2-6"
    assert nightly_daily_job.execution_timezone == "America/New_York"
    assert weekly_retrain.job_name == "retrain_job"
    assert weekly_retrain.cron_schedule == "0 6 * * 6"
    monkeypatch.delenv("TICKML_SCHEDULES", raising=False)
    monkeypatch.setenv("TICKML_ENV", "local")
    assert schedules.default_status() == dg.DefaultScheduleStatus.STOPPED
    monkeypatch.setenv("TICKML_ENV", "prod")
    assert schedules.default_status() == dg.DefaultScheduleStatus.RUNNING
    monkeypatch.setenv("TICKML_SCHEDULES", "off")
    assert schedules.default_status() == dg.DefaultScheduleStatus.STOPPED


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
    close = dt.time(16, 0)
    # 20:15 UTC on 2024-03-11 is 16:15 EDT (after the close); in EST it would be 15:15 (before)
    assert session_date(dt.datetime(2024, 3, 11, 20, 15, tzinfo=UTC), "America/New_York",
                        close) == dt.date(2024, 3, 11)
    # 20:15 UTC on 2024-03-08 is 15:15 EST: Friday's session has not closed -> Thursday
    assert session_date(dt.datetime(2024, 3, 8, 20, 15, tzinfo=UTC), "America/New_York",
                        close) == dt.date(2024, 3, 7)
    # 17:30 local on a Friday -> that Friday; 00:30 UTC Saturday is still Friday evening in NY
    assert session_date(dt.datetime(2024, 11, 8, 17, 30, tzinfo=NY), "America/New_York",
                        close) == dt.date(2024, 11, 8)
    assert session_date(dt.datetime(2024, 11, 9, 0, 30, tzinfo=UTC), "America/New_York",
                        close) == dt.date(2024, 11, 8)


@pytest.mark.unit
def test_weekly_retrain_run_request():
    at = dt.datetime(2024, 3, 9, 11, 0, tzinfo=UTC)  # Saturday 06:00 EST
    result = weekly_retrain.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=at))
    [req] = result.run_requests
    assert req.run_key == "weekly-retrain-2024-03-09"
    assert req.partition_key is None
    assert req.tags["tickml/trigger"] == "weekly_retrain"


@pytest.mark.integration
@pytest.mark.slow
def test_two_day_backfill_recorded_in_postgres_instance(tmp_path, monkeypatch, fresh_pg_url):
    """Two daily partitions of raw_ticks -> tick_features run against the project's dagster.yaml
    (dagster-postgres): the instance in Postgres knows both partitions are materialized."""
    import psycopg

    from orchestration.resources import TickSourceResource
    from orchestration.runner import materialize_days

    home = tmp_path / "prod_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv(
        "TICKML_DAGSTER_PG_URL", fresh_pg_url.replace("postgresql://", "postgresql+psycopg2://", 1)
    )
    days = [dt.date(2024, 1, 4), dt.date(2024, 1, 5)]
    # the nightly schedule's requests for those two nights name exactly these partitions
    repo_def = _repo_def()
    keys = [
        _nightly(dt.datetime(d.year, d.month, d.day + 1, 0, 30, tzinfo=NY), repo_def)
        .run_requests[0].partition_key
        for d in days
    ]
    assert keys == [d.isoformat() for d in days]
    src = TickSourceResource(kind="simulator", sim_n_symbols=2, sim_seed=5)
    rows = materialize_days(days, tmp_path, src, assets=("raw_ticks", "tick_features"))
    assert all(all(r["checks"].values()) for r in rows), [r["checks"] for r in rows]

    instance = dg.DagsterInstance.get()
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    for asset in ("raw_ticks", "tick_features"):
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) == set(keys)
    runs = instance.get_runs()
    assert sorted(r.tags["dagster/partition"] for r in runs) == keys
    assert all(r.is_success for r in runs)
    with psycopg.connect(fresh_pg_url) as conn:
        n_mat = conn.execute(
            "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
        ).fetchone()[0]
    assert n_mat == 4
