"""Schedules: the nightly daily pipeline and the weekly retrain, in the market's time zone.

Settings (:mod:`tickml.settings`, all optional):

- ``TICKML_NIGHTLY_CRON``: when the nightly ``daily_job`` runs (default ``30 0 * * 2-6``:
  00:30 Tuesday..Saturday, i.e. after each Monday..Friday session has closed *and* its
  calendar-day partition is complete). For a 24/7 market use ``30 0 * * *``.
- ``TICKML_RETRAIN_CRON``: weekly retrain (default ``0 6 * * 6``: Saturday 06:00).
- ``TICKML_SCHEDULES``: ``on`` / ``off``: default status of both schedules. Unset: ``on``
  (RUNNING) when ``TICKML_ENV=prod``, else ``off`` (STOPPED), so `dagster dev` on a laptop or a
  test instance never launches pipeline runs by itself; toggle them in the UI.

The time zone and the session close come from the run configuration's ``market`` section
(``TICKML_CONFIG``; default New York, close 16:00): both schedules run in ``market.tz``, and
the nightly run processes the session date of ``scheduled time - close`` (00:30 Saturday ->
Friday, 17:30 Tuesday -> Tuesday); a market without a session closes at midnight.

Why 00:30 and not 17:30: the daily partitions (``assets.partitions.daily``, the market's
calendar days, ``end_offset=0``) only contain a day once it has ended, so Dagster refuses a run
request for today's partition at 17:30. A 17:30 cron works once the partitions definition has
``end_offset=1``; until then the nightly schedule skips such a tick with a reason saying so.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from assets.partitions import daily
from tickml.market import Market
from tickml.settings import Settings, process_settings

SETTINGS = process_settings()
MARKET = SETTINGS.market()


def default_status(settings: Settings) -> dg.DefaultScheduleStatus:
    if settings.schedules_running:
        return dg.DefaultScheduleStatus.RUNNING
    return dg.DefaultScheduleStatus.STOPPED


def session_date(scheduled: dt.datetime, market: Market) -> dt.date:
    """The session that has most recently closed at ``scheduled`` (in the market's zone)."""
    local = scheduled.astimezone(ZoneInfo(market.tz)).replace(tzinfo=None)
    close = market.session_close
    since_close = (
        dt.timedelta(hours=close.hour, minutes=close.minute)
        if close is not None
        else dt.timedelta(days=1)  # no session: the day closes at midnight
    )
    return (local - since_close).date()


@dg.schedule(
    name="nightly_daily_job",
    job_name="daily_job",
    cron_schedule=SETTINGS.nightly_cron,
    execution_timezone=MARKET.tz,
    default_status=default_status(SETTINGS),
    description="Nightly after the session close, for the session date that just closed (one "
    "daily partition): ingest the day's ticks -> features (and the last rows into the online "
    "store) -> labels -> evaluate the champion -> drift report.",
)
def nightly_daily_job(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    scheduled = context.scheduled_execution_time
    if scheduled is None:  # evaluated by hand without a time: use now
        scheduled = dt.datetime.now(dt.UTC)
    day = session_date(scheduled, MARKET)
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
    cron_schedule=SETTINGS.retrain_cron,
    execution_timezone=MARKET.tz,
    default_status=default_status(SETTINGS),
    description="Weekly retrain of the challenger on the latest training window (the registry's "
    "blocking check decides promotion).",
)
def weekly_retrain(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    scheduled = context.scheduled_execution_time or dt.datetime.now(dt.UTC)
    week_of = scheduled.astimezone(ZoneInfo(MARKET.tz)).date().isoformat()
    return dg.RunRequest(
        run_key=f"weekly-retrain-{week_of}",
        tags={"tickml/trigger": "weekly_retrain", "tickml/week_of": week_of},
    )


SCHEDULES = [nightly_daily_job, weekly_retrain]
