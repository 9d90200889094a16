"""Dagster entry point (the code location ``workspace.yaml`` names): the assets, jobs,
schedules, sensors and the resources of the deployment the process settings describe
(``TICKML_ENV``, ``TICKML_WORKDIR``, ...: :mod:`tickml.settings`)."""

from __future__ import annotations

import dagster as dg

from assets.resources import resource_set
from orchestration.jobs import ASSETS, DAILY_ASSETS, JOBS
from orchestration.schedules import SCHEDULES
from orchestration.sensors import drift_sensor, run_failure_sensor
from tickml.settings import process_settings

__all__ = ["DAILY_ASSETS", "defs"]

defs = dg.Definitions(
    assets=ASSETS,
    jobs=JOBS,
    schedules=SCHEDULES,
    sensors=[drift_sensor, run_failure_sensor],
    resources=resource_set(process_settings(), secrets_from_env=True),
)
