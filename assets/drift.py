"""Monitoring: the daily ``drift_report`` asset (Evidently + PSI + adversarial validation).

Reference: the champion's training window (manifest ``training_window``), a seeded sample of
at most ``reference_max_rows`` feature-table rows; without a champion, the ``reference_days``
feature-table days before the partition; with neither (the first day) the report is skipped
(status ``skipped``, check passed with "no reference yet"), it does not fail. Recent window:
the day's features as pushed online (``<lake>/online_log/date=D/shard=S/*.parquet``) when
logged, else its batch table (``tickml.monitoring``). The champion's decision-model scores
(``tickml.monitoring.decision_model``: the direction model when it decides, else the short
model's P(UP)-P(DOWN)) on both sides give the prediction statistics; its recent
out-of-sample IC, of the same model, comes from ``champion_evaluation``.
Outputs ``<workdir>/reports/drift/<day>.html`` (Evidently) and ``<day>.json`` (the summary);
``drift_sensor`` reads the metadata to decide on a retrain.
"""

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.champion import read_evaluation
from assets.metadata import float_or_nan
from assets.partitions import daily
from assets.resources import LakeResource, ModelRegistryResource, PipelineConfigResource
from tickml.drift import DriftConfig, drift_summary
from tickml.features import feature_names
from tickml.models.registry import RegisteredModels
from tickml.monitoring import (
    Reference,
    champion_scores,
    decision_model,
    recent_window,
    reference_window,
)
from tickml.workdir import Workdir

PREDICTION_COLUMNS = ("prediction", "score")
CHECK = "drift_within_thresholds"
#: summary keys shown in the Dagster metadata (the JSON file keeps everything)
COMPACT_KEYS = (
    "day", "reference", "reference_note", "champion", "recent_source", "n_reference",
    "n_current", "adversarial_auc", "drifted_share", "n_drifted_psi", "recent_ic",
    "recent_ic_note", "retrain", "reasons", "psi_top", "adversarial_top_features", "timings",
)
OPTIONAL_COMPACT_KEYS = ("reference_predictions", "current_predictions", "prediction_psi")


def _threshold(name: str, **override: Any) -> Any:
    """A run-config field with tickml.drift.DriftConfig's default and description."""
    field = DriftConfig.model_fields[name]
    return Field(default=override.get("default", field.default), description=field.description)


class DriftReportConfig(dg.Config):
    """Run config of ``drift_report``: the reference window, and the thresholds of
    :class:`tickml.drift.DriftConfig` (its defaults and descriptions)."""

    reference_days: int = Field(
        default=3, description="without a champion: feature-table days before the partition"
    )
    reference_max_rows: int = Field(
        default=20_000, description="rows sampled (seeded) from the reference window"
    )
    min_ic_rows: int = Field(
        default=200, description="the IC counts only over at least this many out-of-sample rows"
    )
    psi_threshold: float = _threshold("psi_threshold")
    drifted_share_threshold: float = _threshold("drifted_share_threshold")
    adversarial_auc_threshold: float = _threshold("adversarial_auc_threshold")
    # the nightly report does check the champion's recent IC (the library default, None,
    # checks nothing): a champion whose recent out-of-sample IC turned negative asks for a
    # retrain
    min_ic: float | None = _threshold("min_ic", default=0.0)
    evidently_max_rows: int = _threshold("evidently_max_rows")
    evidently_max_columns: int | None = _threshold("evidently_max_columns")
    seed: int = _threshold("seed")

    def drift_config(self) -> DriftConfig:
        return DriftConfig(**self.model_dump(include=set(DriftConfig.model_fields)))


def _top_psi_markdown(summary: dict[str, Any]) -> str:
    rows = summary.get("psi_top") or []
    lines = ["| feature | PSI |", "|---|---|"]
    lines += [f"| {r['feature']} | {r['psi']:.3f} |" for r in rows]
    return "\n".join(lines)


def champion_recent_ic(
    layout: Workdir, day: dt.date, champion: str | None, min_rows: int
) -> tuple[float | None, str]:
    """The champion's recent out-of-sample IC from ``champion_evaluation`` (its decision
    model's; None when it does not apply) and a sentence naming the model and saying why."""
    if champion is None:
        return None, "no champion"
    ev = read_evaluation(layout, day)
    if ev is None:
        return None, f"champion_evaluation not materialized for {day}"
    if ev.get("champion") != champion:
        return None, f"champion_evaluation of {day} scored {ev.get('champion')}, not {champion}"
    n = int(ev.get("n_out_of_sample") or 0)
    # the model champion_evaluation scored (its decision model); older records: the short one
    who = ev.get("scored_by") or f"champion {champion} short model, P(UP)-P(DOWN)"
    if ev.get("ic") is None:
        return None, f"{who}: IC undefined over {n} out-of-sample rows"
    if n < min_rows:
        return None, f"{who}: {n} out-of-sample rows < min_ic_rows {min_rows}"
    return float(ev["ic"]), f"{who}: IC over {n} out-of-sample rows"


def _scores(
    champ: RegisteredModels | None, reference: pd.DataFrame, recent: pd.DataFrame
) -> tuple[Any, Any, str]:
    """Prediction scores of both windows: the champion's decision model's
    (``tickml.monitoring.decision_model``), else a logged score column."""
    if champ is not None:
        try:
            scorer = decision_model(champ)
            return (
                champion_scores(scorer.model, reference),
                champion_scores(scorer.model, recent),
                scorer.label,
            )
        except ValueError as exc:
            return None, None, f"champion {champ.version} not scored: {exc}"
    ref_col = next((c for c in PREDICTION_COLUMNS if c in reference.columns), None)
    cur_col = next((c for c in PREDICTION_COLUMNS if c in recent.columns), None)
    return (
        reference[ref_col] if ref_col else None,
        recent[cur_col] if cur_col else None,
        "logged score column" if cur_col else "none",
    )


@dataclass
class Windows:
    """What one day's report compares: the reference and the recent window, the champion;
    ``skipped`` says why there is nothing to compare."""

    day: dt.date
    champion: RegisteredModels | None
    reference: Reference
    recent: pd.DataFrame
    recent_source: str
    skipped: str | None = None

    @property
    def version(self) -> str | None:
        return self.champion.version if self.champion is not None else None


def load_windows(
    lake: LakeResource, registry: ModelRegistryResource, config: DriftReportConfig, day: dt.date
) -> Windows:
    """Step 1: the windows to compare (or why there is nothing to compare)."""
    reg = registry.registry()
    version = reg.champion()
    champ = reg.load(version) if version else None
    ref = reference_window(
        lake.root,
        day,
        champ.manifest if champ else None,
        config.reference_days,
        config.reference_max_rows,
        config.seed,
    )
    if ref.kind is None:
        return Windows(day, champ, ref, pd.DataFrame(), "none", skipped=ref.note)
    recent, source = recent_window(lake.root, day)
    w = Windows(day, champ, ref, recent, source)
    if recent.empty:
        w.skipped = f"no features for {day} (no online log, no batch table or an empty one)"
    return w


def compare(
    w: Windows, names: list[str], config: DriftReportConfig, layout: Workdir
) -> tuple[dict[str, Any], str]:
    """Step 2: drift statistics of the configured features, the champion's predictions on
    both windows and its recent IC; returns the summary and the Evidently HTML."""
    ref = w.reference
    cols = [n for n in names if n in w.recent.columns and n in ref.frame.columns]
    ref_scores, cur_scores, scored_by = _scores(w.champion, ref.frame, w.recent)
    ic, ic_note = champion_recent_ic(layout, w.day, w.version, config.min_ic_rows)
    summary = drift_summary(
        ref.frame[cols],
        w.recent[cols],
        config.drift_config(),
        ref_scores=ref_scores,
        cur_scores=cur_scores,
        recent_ic=ic,
        with_html=True,
    )
    html = summary.pop("html")
    summary.update(
        day=w.day.isoformat(),
        status="ok",
        reference=ref.kind,
        reference_note=ref.note,
        reference_days=[d.isoformat() for d in ref.days],
        champion=w.version,
        recent_source=w.recent_source,
        recent_ic_note=ic_note,
        predictions_from=scored_by,
    )
    return summary, html


def write_report(layout: Workdir, day: dt.date, summary: dict[str, Any], html: str | None) -> None:
    """Step 3: ``reports/drift/<day>.json`` (and ``.html`` when there is a report)."""
    json_path = layout.drift_report(day, ".json")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    if html is not None:
        layout.drift_report(day, ".html").write_text(html, encoding="utf-8")
    json_path.write_text(json.dumps(summary, indent=1), encoding="utf-8")


def skipped_result(layout: Workdir, day: dt.date, reason: str,
                   champion: str | None) -> dg.MaterializeResult:
    """No drift report without a reference or recent rows: a record saying so, no failure."""
    summary: dict[str, Any] = {
        "day": day.isoformat(),
        "status": "skipped",
        "reason": reason,
        "reference": None,
        "champion": champion,
        "retrain": False,
        "reasons": [],
    }
    write_report(layout, day, summary, None)
    return dg.MaterializeResult(
        metadata={
            "status": "skipped",
            "reason": dg.MetadataValue.text(reason),
            "reference": "none",
            "retrain": dg.MetadataValue.bool(False),
            "reasons": dg.MetadataValue.text("none"),
            "summary_path": dg.MetadataValue.path(str(layout.drift_report(day, ".json"))),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK,
                passed=True,
                severity=dg.AssetCheckSeverity.WARN,
                description=f"no reference yet / nothing to compare: {reason}",
                metadata={"skipped": dg.MetadataValue.text(reason)},
            )
        ],
    )


def report_result(layout: Workdir, day: dt.date, summary: dict[str, Any]) -> dg.MaterializeResult:
    """Step 4: the metadata the drift sensor reads, and the non-blocking check."""
    compact = {k: summary[k] for k in COMPACT_KEYS}
    compact |= {k: summary[k] for k in OPTIONAL_COMPACT_KEYS if k in summary}
    reasons = dg.MetadataValue.text("; ".join(summary["reasons"]) or "none")
    metadata = {
        "status": "ok",
        "report": dg.MetadataValue.path(str(layout.drift_report(day, ".html"))),
        "summary_path": dg.MetadataValue.path(str(layout.drift_report(day, ".json"))),
        "summary": dg.MetadataValue.json(compact),
        "top_psi": dg.MetadataValue.md(_top_psi_markdown(summary)),
        "reference": summary["reference"],
        "reference_days": dg.MetadataValue.json(summary["reference_days"]),
        "recent_source": summary["recent_source"],
        "adversarial_auc": dg.MetadataValue.float(float_or_nan(summary["adversarial_auc"])),
        "drifted_share": dg.MetadataValue.float(float_or_nan(summary["drifted_share"])),
        "recent_ic": dg.MetadataValue.float(float_or_nan(summary["recent_ic"])),
        "n_drifted_psi": dg.MetadataValue.int(int(summary["n_drifted_psi"])),
        "retrain": dg.MetadataValue.bool(bool(summary["retrain"])),
        "reasons": reasons,
        "runtime_s": dg.MetadataValue.float(round(summary["timings"]["total_s"], 3)),
        # the same day's online/offline consistency (training-serving skew) report
        "consistency_report": dg.MetadataValue.path(summary["consistency_report"]),
    }
    check_meta = {k: metadata[k] for k in ("adversarial_auc", "drifted_share", "recent_ic",
                                           "reference")}
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK,
                passed=not summary["retrain"],
                severity=dg.AssetCheckSeverity.WARN,
                metadata=check_meta | {"reasons": reasons},
            )
        ],
    )


@dg.asset(
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),  # one day/run
    deps=["tick_features", "champion_evaluation", "online_consistency"],
    group_name="monitoring",
    kinds={"evidently", "html"},
    description=(
        "Data drift of the day's features (as pushed online when logged, else the batch "
        "table) against the champion's training window (without a champion: the days before): "
        "Evidently data-drift report (HTML, linked), PSI per feature, adversarial validation "
        "AUC, the champion's prediction statistics and recent out-of-sample IC (both of its "
        "decision model: the direction model when it decides, else the short model's "
        "P(UP)-P(DOWN)), and a retrain flag read by drift_sensor. Skipped, not failed, while "
        "there is no reference yet."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            CHECK,
            asset="drift_report",
            blocking=False,
            description="Warns when a drift threshold is crossed (adversarial AUC, drifted "
            "share, champion's recent IC); the drift sensor then requests a retrain. Passes "
            "with 'no reference yet' when the report was skipped.",
        )
    ],
)
def drift_report(
    context: dg.AssetExecutionContext,
    config: DriftReportConfig,
    lake: LakeResource,
    pipeline: PipelineConfigResource,
    registry: ModelRegistryResource,
) -> dg.MaterializeResult:
    t_start = time.perf_counter()
    day = dt.date.fromisoformat(context.partition_key)
    layout = lake.layout
    windows = load_windows(lake, registry, config, day)
    if windows.skipped is not None:
        context.log.info("drift report of %s skipped: %s", day, windows.skipped)
        return skipped_result(layout, day, windows.skipped, windows.version)
    # compare the pipeline's configured features only (the log may carry extra columns)
    summary, html = compare(windows, feature_names(pipeline.load().features), config, layout)
    summary["timings"]["total_s"] = time.perf_counter() - t_start
    summary["consistency_report"] = str(layout.consistency_report(day))
    write_report(layout, day, summary, html)
    return report_result(layout, day, summary)
