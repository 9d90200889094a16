"""Dagster entry point: assembles the definitions and picks resources by TICKML_ENV."""

from __future__ import annotations

import os

import dagster as dg

from assets import champion, drift, features, ingestion, labels, training
from orchestration.resources import RESOURCES_BY_ENV
from orchestration.schedules import SCHEDULES
from orchestration.sensors import drift_sensor, retrain_job, run_failure_sensor

ENV = os.environ.get("TICKML_ENV", "local")
if ENV not in RESOURCES_BY_ENV:
    raise ValueError(f"TICKML_ENV={ENV!r}: expected one of {sorted(RESOURCES_BY_ENV)}")

ingest_job = dg.define_asset_job("ingest_job", selection=dg.AssetSelection.groups("ingestion"))
#: the nightly chain: ingest -> features (+ online warm start) -> labels -> evaluate the
#: champion on the new day -> drift report (the drift sensor reads the report)
DAILY_ASSETS = (
    "raw_ticks",
    "tick_features",
    "online_features",
    "labels",
    "champion_evaluation",
    "drift_report",
)
daily_job = dg.define_asset_job(
    "daily_job",
    selection=dg.AssetSelection.assets(*DAILY_ASSETS),
    description="Nightly, one session date: ingest the ticks -> features (and the day's last "
    "rows into the online store) -> labels -> evaluate the champion -> drift report.",
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ingestion, features, labels, training, champion, drift]),
    jobs=[ingest_job, daily_job, retrain_job],
    schedules=SCHEDULES,
    sensors=[drift_sensor, run_failure_sensor],
    resources=RESOURCES_BY_ENV[ENV](),
)
