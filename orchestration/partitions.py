"""Daily partitions shared by every daily asset (one partition = one session date)."""

from __future__ import annotations

import os

import dagster as dg

from orchestration.resources import partition_start

daily = dg.DailyPartitionsDefinition(
    start_date=partition_start().isoformat(),
    timezone=os.environ.get("TICKML_PARTITION_TZ", "America/New_York"),
    end_offset=0,
)
