"""Schedules: the nightly daily pipeline and the weekly retrain, in the exchange's time zone.

Environment (all optional):

- ``TICKML_SCHEDULE_TZ``: execution time zone of both schedules (default ``America/New_York``).
- ``TICKML_NIGHTLY_CRON``: when the nightly ``daily_job`` runs (default ``30 0 * * 2-6``:
  00:30 Tuesday..Saturday, i.e. after each Monday..Friday session has closed *and* its
  calendar-day partition is complete). For a 24/7 source (Binance) use ``30 0 * * *``.
- ``TICKML_SESSION_CLOSE``: the session close, ``HH:MM`` local (default ``16:00``). The
  nightly run processes the session date of ``scheduled time - close``: 00:30 Saturday ->
  Friday, 17:30 Tuesday -> Tuesday.
- ``TICKML_RETRAIN_CRON``: weekly retrain (default ``0 6 * * 6``: Saturday 06:00).
- ``TICKML_SCHEDULES``: ``on`` / ``off``: default status of both schedules. Unset: ``on``
  (RUNNING) when ``TICKML_ENV=prod``, else ``off`` (STOPPED), so `dagster dev` on a laptop or a
  test instance never launches pipeline runs by itself; toggle them in the UI.

Why 00:30 and not 17:30: the daily partitions (``orchestration.partitions.daily``, NY calendar
days, ``end_offset=0``) only contain a day once it has ended, so Dagster refuses a run request
for today's partition at 17:30. A 17:30 cron works once the partitions definition has
``end_offset=1``; until then the nightly schedule skips such a tick with a reason saying so.
"""

from __future__ import annotations

import datetime as dt
import os
from zoneinfo import ZoneInfo

import dagster as dg

from orchestration.partitions import daily

DEFAULT_TZ = "America/New_York"
DEFAULT_NIGHTLY_CRON = "30 0 * * 2-6"
DEFAULT_RETRAIN_CRON = "0 6 * * 6"
DEFAULT_SESSION_CLOSE = "16:00"


def schedule_tz() -> str:
    return os.environ.get("TICKML_SCHEDULE_TZ", DEFAULT_TZ)


def session_close() -> dt.time:
    return dt.time.fromisoformat(os.environ.get("TICKML_SESSION_CLOSE", DEFAULT_SESSION_CLOSE))


def default_status() -> dg.DefaultScheduleStatus:
    flag = os.environ.get("TICKML_SCHEDULES", "").strip().lower()
    if flag in ("on", "1", "true", "yes", "running"):
        return dg.DefaultScheduleStatus.RUNNING
    if flag in ("off", "0", "false", "no", "stopped"):
        return dg.DefaultScheduleStatus.STOPPED
    if os.environ.get("TICKML_ENV", "local") == "prod":
        return dg.DefaultScheduleStatus.RUNNING
    return dg.DefaultScheduleStatus.STOPPED


def session_date(
    scheduled: dt.datetime, tz: str | None = None, close: dt.time | None = None
) -> dt.date:
    """The session that has most recently closed at ``scheduled`` (in the exchange's zone)."""
    zone = ZoneInfo(tz or schedule_tz())
    close = close or session_close()
    local = scheduled.astimezone(zone)
    shifted = local.replace(tzinfo=None) - dt.timedelta(hours=close.hour, minutes=close.minute)
    return shifted.date()


@dg.schedule(
    name="nightly_daily_job",
    job_name="daily_job",
    cron_schedule=os.environ.get("TICKML_NIGHTLY_CRON", DEFAULT_NIGHTLY_CRON),
    execution_timezone=schedule_tz(),
    default_status=default_status(),
    description="Nightly after the session close, for the session date that just closed (one "
    "daily partition): ingest the day's ticks -> features (and the last rows into the online "
    "store) -> labels -> evaluate the champion -> drift report.",
)
def nightly_daily_job(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    scheduled = context.scheduled_execution_time
    if scheduled is None:  # evaluated by hand without a time: use now
        scheduled = dt.datetime.now(dt.UTC)
    day = session_date(scheduled)
    key = day.isoformat()
    with dg.partition_loading_context(effective_dt=scheduled):
        known = daily.has_partition_key(key)
    if not known:
        return dg.SkipReason(
            f"partition {key} is not complete at {scheduled.isoformat()} (daily partitions end at "
            "midnight); schedule the nightly job after midnight or set end_offset=1 on the "
            "daily partitions"
        )
    return dg.RunRequest(
        run_key=f"nightly-{key}",
        partition_key=key,
        tags={"tickml/trigger": "nightly", "tickml/session_date": key},
    )


@dg.schedule(
    name="weekly_retrain",
    job_name="retrain_job",
    cron_schedule=os.environ.get("TICKML_RETRAIN_CRON", DEFAULT_RETRAIN_CRON),
    execution_timezone=schedule_tz(),
    default_status=default_status(),
    description="Weekly retrain of the challenger on the latest training window (the registry's "
    "blocking check decides promotion).",
)
def weekly_retrain(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    scheduled = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    week_of = scheduled.astimezone(ZoneInfo(schedule_tz())).date().isoformat()
    return dg.RunRequest(
        run_key=f"weekly-retrain-{week_of}",
        tags={"tickml/trigger": "weekly_retrain", "tickml/week_of": week_of},
    )


SCHEDULES = [nightly_daily_job, weekly_retrain]
