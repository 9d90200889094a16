"""Monitoring: ``champion_evaluation``, the champion's out-of-sample IC on each new day.

Scores the day's recent window (features as pushed online when logged, else the batch table;
``tickml.monitoring``) with the champion's decision model (``tickml.monitoring.decision_model``:
the manifest's ``oos.decision_model``, else the direction model's prediction when the version
has one, else the short model's ``P(UP) - P(DOWN)``) and correlates it (Spearman) with the
day's ``fwd_return_short`` labels over the rows after the champion's training window. Writes
``<workdir>/reports/champion/<day>.json`` (``model`` and ``scored_by`` name the model);
``drift_report`` reads it and compares the IC with its ``min_ic`` threshold.
"""

import datetime as dt
import json
from typing import Any

import dagster as dg
import pandas as pd

from assets.metadata import float_or_nan
from assets.partitions import daily
from assets.resources import LakeResource, ModelRegistryResource
from tickml.lake import LabelTables
from tickml.monitoring import decision_model, recent_ic, recent_window
from tickml.workdir import Workdir


def read_evaluation(layout: Workdir, day: dt.date) -> dict[str, Any] | None:
    """The day's champion evaluation, None when it was not materialized."""
    path = layout.champion_evaluation(day)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


@dg.asset(
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),  # one day/run
    deps=["tick_features", "labels"],
    group_name="monitoring",
    kinds={"lightgbm"},
    description=(
        "The champion evaluated on the new day: Spearman IC of its decision model's score "
        "(the manifest's oos.decision_model, else the direction model's prediction when the "
        "version has one, else the short model's P(UP)-P(DOWN)) on the day's features (as "
        "pushed online when logged, else the batch table) with the day's fwd_return_short, "
        "over rows after its training window only. "
        "Skipped (status no_champion) while the registry has no champion."
    ),
)
def champion_evaluation(
    context: dg.AssetExecutionContext, lake: LakeResource, registry: ModelRegistryResource
) -> dg.MaterializeResult:
    day = dt.date.fromisoformat(context.partition_key)
    reg = registry.registry()
    version = reg.champion()
    path = lake.layout.champion_evaluation(day)
    path.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"day": day.isoformat(), "champion": version}
    if version is None:
        result.update(status="no_champion", ic=None)
        context.log.info("no champion in the registry: nothing to evaluate on %s", day)
    else:
        champ = reg.load(version)
        scorer = decision_model(champ)
        recent, source = recent_window(lake.root, day)
        labels_ = LabelTables(lake.root)
        labels = labels_.read_day(day) if labels_.has_day(day) else pd.DataFrame()
        result.update(
            status="ok",
            recent_source=source,
            model=scorer.name,
            scored_by=scorer.label,
            **recent_ic(scorer.model, champ.manifest, recent, labels),
        )
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return dg.MaterializeResult(
        metadata={
            "status": result["status"],
            "champion": str(version),
            "model": str(result.get("model", "none")),
            "scored_by": str(result.get("scored_by", "none")),
            "ic": dg.MetadataValue.float(float_or_nan(result.get("ic"))),
            "n_out_of_sample": dg.MetadataValue.int(int(result.get("n_out_of_sample") or 0)),
            "n_in_training_window": dg.MetadataValue.int(
                int(result.get("n_in_training_window") or 0)
            ),
            "recent_source": str(result.get("recent_source", "none")),
            "training_cutoff": str(result.get("cutoff")),
            "path": dg.MetadataValue.path(str(path)),
        }
    )
