"""Dagster entry point: assembles the definitions and picks resources by TICKML_ENV."""

from __future__ import annotations

import os

import dagster as dg

from assets import drift, features, ingestion, labels, training
from orchestration.resources import RESOURCES_BY_ENV
from orchestration.schedules import SCHEDULES
from orchestration.sensors import drift_sensor, retrain_job, run_failure_sensor

ENV = os.environ.get("TICKML_ENV", "local")
if ENV not in RESOURCES_BY_ENV:
    raise ValueError(f"TICKML_ENV={ENV!r}: expected one of {sorted(RESOURCES_BY_ENV)}")

ingest_job = dg.define_asset_job("ingest_job", selection=dg.AssetSelection.groups("ingestion"))
daily_job = dg.define_asset_job(
    "daily_job",
    selection=dg.AssetSelection.assets("raw_ticks", "tick_features", "labels"),
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ingestion, features, labels, training, drift]),
    jobs=[ingest_job, daily_job, retrain_job],
    schedules=SCHEDULES,
    sensors=[drift_sensor, run_failure_sensor],
    resources=RESOURCES_BY_ENV[ENV](),
)
