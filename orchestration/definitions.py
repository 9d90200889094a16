"""Dagster entry point: assembles the definitions and picks resources by TICKML_ENV."""

from __future__ import annotations

import os

import dagster as dg

from assets import features, ingestion
from orchestration.partitions import daily
from orchestration.resources import RESOURCES_BY_ENV

ENV = os.environ.get("TICKML_ENV", "local")
if ENV not in RESOURCES_BY_ENV:
    raise ValueError(f"TICKML_ENV={ENV!r}: expected one of {sorted(RESOURCES_BY_ENV)}")

ingest_job = dg.define_asset_job("ingest_job", selection=dg.AssetSelection.groups("ingestion"))
features_job = dg.define_asset_job(
    "features_job",
    selection=dg.AssetSelection.assets("raw_ticks", "tick_features"),
    partitions_def=daily,
)

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([ingestion, features]),
    jobs=[ingest_job, features_job],
    resources=RESOURCES_BY_ENV[ENV](),
)
