"""Sensors: drift-triggered retraining and reporting of failed runs.

``drift_sensor`` reads the new materializations of ``drift_report`` (its cursor holds the last
event's storage id and the time of the last retrain it requested). A report flagged ``retrain``
(adversarial AUC, drifted share or the champion's recent out-of-sample IC past their
thresholds, decided by the asset; a skipped report, no reference yet, is never flagged) requests
``retrain_job`` with ``run_key="drift-<partition>"`` (Dagster launches a run key once), unless
a retrain was requested less than the cooldown ago (``TICKML_DRIFT_COOLDOWN_S``, default one
day): one drift event gives one run. The challenger it trains reaches the champion only
through the registry's blocking check in ``champion_model``.
"""

import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg

from orchestration.jobs import retrain_job
from tickml.settings import process_settings

log = logging.getLogger(__name__)

DRIFT_ASSET = dg.AssetKey("drift_report")


def _meta_value(metadata: dict[str, Any], key: str) -> Any:
    entry = metadata.get(key)
    return getattr(entry, "value", entry)


def make_drift_sensor(
    cooldown_s: float,
    clock: Callable[[], float] = time.time,
    name: str = "drift_sensor",
    minimum_interval_seconds: int = 300,
) -> dg.SensorDefinition:
    """The drift sensor with a given cooldown (seconds between two requested retrains)."""

    @dg.sensor(
        name=name,
        job=retrain_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=f"Requests retrain_job when a drift_report is flagged retrain (cooldown "
        f"{cooldown_s:g} s, run key drift-<partition>).",
    )
    def _drift_sensor(context: dg.SensorEvaluationContext) -> Iterator[Any]:
        state = json.loads(context.cursor) if context.cursor else {}
        after = state.get("storage_id")
        last_retrain = state.get("last_retrain")
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=DRIFT_ASSET, after_storage_id=after),
            limit=100,
            ascending=True,
        ).records
        requested = 0
        for rec in records:
            after = rec.storage_id
            mat = rec.asset_materialization
            if mat is None:
                continue
            md = dict(mat.metadata)
            partition = mat.partition or "unpartitioned"
            if not _meta_value(md, "retrain"):
                continue
            now = clock()
            if last_retrain is not None and now - last_retrain < cooldown_s:
                context.log.info(
                    f"drift on {partition} ignored: last retrain requested "
                    f"{now - last_retrain:.0f} s ago (cooldown {cooldown_s:g} s)"
                )
                continue
            last_retrain = now
            requested += 1
            reasons = str(_meta_value(md, "reasons") or "")
            context.log.info(f"drift on {partition}: requesting retrain_job ({reasons})")
            yield dg.RunRequest(
                run_key=f"drift-{partition}",
                tags={
                    "tickml/trigger": "drift",
                    "tickml/drift_partition": partition,
                    "tickml/adversarial_auc": str(_meta_value(md, "adversarial_auc")),
                    "tickml/drifted_share": str(_meta_value(md, "drifted_share")),
                    "tickml/recent_ic": str(_meta_value(md, "recent_ic")),
                },
            )
        context.update_cursor(json.dumps({"storage_id": after, "last_retrain": last_retrain}))
        if not requested:
            yield dg.SkipReason(
                f"{len(records)} new drift report(s), none requiring a retrain outside cooldown"
            )

    return _drift_sensor


drift_sensor = make_drift_sensor(process_settings().drift_cooldown_s)


@dg.run_failure_sensor(
    name="run_failure_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Logs every failed run: id, job, failing steps and their errors.",
)
def run_failure_sensor(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    lines = [f"run {run.run_id} of job {run.job_name} FAILED: {context.failure_event.message}"]
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        err = data.error.to_string() if data and data.error else "(no error info)"
        lines.append(f"  step {event.step_key}: {err.strip()}")
    message = "\n".join(lines)
    log.error(message)
    context.log.error(message)
