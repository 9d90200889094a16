"""Run the offline graph in-process through Dagster (what `tickml demo` / `tickml ingest` use).

Runs go to the Dagster instance in ``DAGSTER_HOME`` (default ``<workdir>/dagster_home``, sqlite),
so they show up in `dagster dev` afterwards, with their metadata and check results.
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration.resources import LakeResource, TickSourceResource, TickStoreResource


def prepare_instance(workdir: Path) -> dg.DagsterInstance:
    """The Dagster instance to record runs in: $DAGSTER_HOME if set, else workdir's sqlite."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str(workdir / "dagster_home")
        os.environ["DAGSTER_HOME"] = home
    Path(home).mkdir(parents=True, exist_ok=True)
    cfg = Path(home) / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text("telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.get()


def build_resources(
    workdir: Path, source: TickSourceResource, pg_url: str | None
) -> dict[str, Any]:
    return {
        "tick_source": source,
        "lake": LakeResource(root=str(workdir / "lake")),
        "tick_store": TickStoreResource(url=pg_url),
    }


def materialize_days(
    days: Sequence[dt.date],
    workdir: Path,
    source: TickSourceResource,
    pg_url: str | None = None,
    on_day: Callable[[dt.date, dict[str, Any]], None] | None = None,
    log_level: str = "WARNING",
) -> list[dict[str, Any]]:
    """Materialize ``raw_ticks`` for each day (one Dagster run per partition)."""
    from assets.ingestion import raw_ticks

    instance = prepare_instance(workdir)
    resources = build_resources(workdir, source, pg_url)
    out = []
    for day in days:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=dg.BetaWarning)
            result = dg.materialize(
                [raw_ticks],
                partition_key=day.isoformat(),
                resources=resources,
                instance=instance,
                raise_on_error=True,
                run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            )
        mats = result.asset_materializations_for_node("raw_ticks")
        meta = {k: v.value for k, v in mats[0].metadata.items()} if mats else {}
        checks = {
            e.check_name: e.passed
            for e in result.get_asset_check_evaluations()
        }
        row = {"day": day, "run_id": result.run_id, "checks": checks, **meta}
        out.append(row)
        if on_day:
            on_day(day, row)
    return out
