"""Daily partitions shared by every daily asset: one partition = one trading day of the market
(local midnight to midnight in the run configuration's ``market.tz``), from
``TICKML_PARTITION_START``. Built when the assets are imported, from the process settings
(:func:`tickml.settings.process_settings`)."""

from __future__ import annotations

import dagster as dg

from tickml.settings import Settings, process_settings


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=settings.partition_start.isoformat(),
        timezone=settings.market().tz,
        end_offset=0,
    )


daily = daily_partitions(process_settings())
