"""Run the offline graph in-process through Dagster (what `tickml demo` / `tickml ingest` use).

Runs go to the Dagster instance in ``DAGSTER_HOME`` (default ``<workdir>/dagster_home``, sqlite),
so they show up in `dagster dev` afterwards, with their metadata and check results. The
resources are the deployment's (:func:`assets.resources.resource_set`) for the given settings;
nothing here reads or writes the environment.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from assets.resources import TickSourceResource, resource_set
from orchestration.jobs import asset_defs
from tickml.errors import RunFailed, UsageError, break_cycles, is_usage, one_line, root_cause
from tickml.settings import Settings


def prepare_instance(settings: Settings) -> dg.DagsterInstance:
    """The Dagster instance to record runs in: DAGSTER_HOME if set, else the workdir's sqlite."""
    home = Path(settings.dagster_home or settings.layout.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists():
        cfg.write_text("telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.from_config(str(home))


def build_resources(
    settings: Settings, source: TickSourceResource | None = None, config_path: str | None = None
) -> dict[str, Any]:
    """The deployment's resources for in-process runs (secrets as values from ``settings``)."""
    return resource_set(settings, source=source, config_path=config_path)


def materialize_days(
    days: Sequence[dt.date],
    settings: Settings,
    source: TickSourceResource,
    on_day: Callable[[dt.date, dict[str, Any]], None] | None = None,
    log_level: str = "WARNING",
    assets: Sequence[str] = ("raw_ticks",),
    config_path: str | None = None,
    op_config: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Materialize the daily ``assets`` for each day (one Dagster run per partition).

    ``op_config``: run config of assets by name, e.g. ``{"drift_report": {...}}``. Returns per
    day the metadata of ``raw_ticks`` (or the first asset) plus ``checks`` (every check's
    pass/fail, keyed ``check`` or ``asset.check`` for the later assets) and ``assets`` (each
    asset's metadata)."""
    run_config: dict[str, Any] = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if op_config:
        run_config["ops"] = {name: {"config": cfg} for name, cfg in op_config.items()}
    selected = asset_defs(assets)
    instance = prepare_instance(settings)
    resources = build_resources(settings, source, config_path)
    out = []
    for day in days:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=dg.BetaWarning)
                result = dg.materialize(
                    selected,
                    partition_key=day.isoformat(),
                    resources=resources,
                    instance=instance,
                    raise_on_error=True,
                    run_config=run_config,
                )
        except Exception as exc:
            raise _failed(f"{' + '.join(assets)} {day}", exc) from root_cause(exc)
        per_asset: dict[str, dict[str, Any]] = {}
        for ev in result.get_asset_materialization_events():
            mat = (
                ev.step_materialization_data.materialization if ev.is_step_materialization else None
            )
            if mat is not None:
                key = mat.asset_key.to_user_string()
                per_asset[key] = {k: v.value for k, v in mat.metadata.items()}
        first = assets[0]
        checks = {
            (
                e.check_name
                if e.asset_key.to_user_string() == first
                else f"{e.asset_key.to_user_string()}.{e.check_name}"
            ): e.passed
            for e in result.get_asset_check_evaluations()
        }
        row = {
            "day": day,
            "run_id": result.run_id,
            "checks": checks,
            "assets": per_asset,
            **per_asset.get(first, {}),
        }
        out.append(row)
        if on_day:
            on_day(day, row)
    return out


def _failed(what: str, exc: BaseException) -> Exception:
    """One clean exception for a failed run: ``what failed: <root cause>``, chained to the root
    cause (Dagster's step error and the asset's exception point at each other, a cycle that
    traceback printers follow forever: it is cut here)."""
    break_cycles(exc)
    cls = UsageError if is_usage(exc) else RunFailed
    return cls(f"{what} failed: {one_line(exc)}")


def materialize_once(
    assets: Sequence[str],
    settings: Settings,
    source: TickSourceResource | None = None,
    config_path: str | None = None,
    log_level: str = "WARNING",
) -> dict[str, Any]:
    """Materialize unpartitioned assets (training set, models) in one run, in graph order."""
    instance = prepare_instance(settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=dg.BetaWarning)
        result = dg.materialize(
            asset_defs(assets),
            resources=build_resources(settings, source or TickSourceResource(), config_path),
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
    per_asset: dict[str, dict[str, Any]] = {}
    for ev in result.get_asset_materialization_events():
        mat = ev.step_materialization_data.materialization if ev.is_step_materialization else None
        if mat is not None:
            per_asset[mat.asset_key.to_user_string()] = {
                k: v.value for k, v in mat.metadata.items()
            }
    checks = {
        f"{e.asset_key.to_user_string()}.{e.check_name}": e.passed
        for e in result.get_asset_check_evaluations()
    }
    failures = {
        ev.step_key: str(ev.step_failure_data.error.message).strip()
        for ev in result.get_step_failure_events()
        if ev.step_failure_data.error is not None
    }
    return {
        "run_id": result.run_id,
        "assets": per_asset,
        "checks": checks,
        "success": result.success,
        "failures": failures,
    }
