"""Monitoring: the daily ``drift_report`` asset (Evidently + PSI + adversarial validation).

Reference: the champion's training window (manifest ``training_window``), a seeded sample of
at most ``reference_max_rows`` feature-table rows; without a champion, the ``reference_days``
feature-table days before the partition; with neither (the first day) the report is skipped
(status ``skipped``, check passed with "no reference yet"), it does not fail. Recent window:
the day's features as pushed online (``<lake>/online_log/date=D/shard=S/*.parquet``) when
logged, else its batch table (``tickml.monitoring``). The champion's scores on both sides give
the prediction statistics; its recent out-of-sample IC comes from ``champion_evaluation``.
Outputs ``<workdir>/reports/drift/<day>.html`` (Evidently) and ``<day>.json`` (the summary);
``drift_sensor`` reads the metadata to decide on a retrain.
"""

import datetime as dt
import json
import math
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.champion import read_evaluation
from assets.consistency import report_path as consistency_path
from assets.partitions import daily
from assets.resources import LakeResource, ModelRegistryResource, PipelineConfigResource
from tickml.drift import DriftConfig, drift_summary
from tickml.features import feature_names
from tickml.monitoring import champion_scores, recent_window, reference_window

PREDICTION_COLUMNS = ("prediction", "score")
CHECK = "drift_within_thresholds"


class DriftReportConfig(dg.Config):
    """Run config of ``drift_report`` (thresholds default to tickml.drift.DriftConfig)."""

    reference_days: int = Field(
        default=3, description="without a champion: feature-table days before the partition"
    )
    reference_max_rows: int = Field(
        default=20_000, description="rows sampled (seeded) from the reference window"
    )
    psi_threshold: float = Field(default=0.2, description="PSI above this = drifted feature")
    drifted_share_threshold: float = Field(
        default=0.5, description="retrain when Evidently's share of drifted features exceeds it"
    )
    adversarial_auc_threshold: float = Field(
        default=0.7, description="retrain when the adversarial validation AUC exceeds it"
    )
    min_ic: float | None = Field(
        default=0.0,
        description="retrain when the champion's recent out-of-sample IC is below this "
        "(None = not checked)",
    )
    min_ic_rows: int = Field(
        default=200, description="the IC counts only over at least this many out-of-sample rows"
    )
    evidently_max_rows: int = Field(default=5000, description="rows per side in Evidently")
    evidently_max_columns: int | None = Field(
        default=None,
        description="features in the Evidently report, evenly spaced (None = all; ~0.1 s each)",
    )
    seed: int = Field(default=0, description="seed of the samples and the classifier")

    def drift_config(self) -> DriftConfig:
        return DriftConfig(
            psi_threshold=self.psi_threshold,
            drifted_share_threshold=self.drifted_share_threshold,
            adversarial_auc_threshold=self.adversarial_auc_threshold,
            min_ic=self.min_ic,
            evidently_max_rows=self.evidently_max_rows,
            evidently_max_columns=self.evidently_max_columns,
            seed=self.seed,
        )


def _top_psi_markdown(summary: dict[str, Any]) -> str:
    rows = summary.get("psi_top") or []
    lines = ["| feature | PSI |", "|---|---|"]
    lines += [f"| {r['feature']} | {r['psi']:.3f} |" for r in rows]
    return "\n".join(lines)


def _float(value: Any) -> float:
    return float(value) if value is not None and math.isfinite(value) else float("nan")


def champion_recent_ic(
    reports_dir: Path, day: dt.date, champion: str | None, min_rows: int
) -> tuple[float | None, str]:
    """The champion's recent out-of-sample IC from ``champion_evaluation`` (None when it
    does not apply) and a sentence saying why."""
    if champion is None:
        return None, "no champion"
    ev = read_evaluation(reports_dir, day)
    if ev is None:
        return None, f"champion_evaluation not materialized for {day}"
    if ev.get("champion") != champion:
        return None, f"champion_evaluation of {day} scored {ev.get('champion')}, not {champion}"
    n = int(ev.get("n_out_of_sample") or 0)
    if ev.get("ic") is None:
        return None, f"champion {champion}: IC undefined over {n} out-of-sample rows"
    if n < min_rows:
        return None, f"champion {champion}: {n} out-of-sample rows < min_ic_rows {min_rows}"
    return float(ev["ic"]), f"champion {champion}: IC over {n} out-of-sample rows"


def _scores(champ: Any, reference: pd.DataFrame, recent: pd.DataFrame) -> tuple[Any, Any, str]:
    """Prediction scores of both windows: the champion's, else a logged score column."""
    short = champ.models.get("short") if champ is not None else None
    if short is not None:
        try:
            return (
                champion_scores(short, reference),
                champion_scores(short, recent),
                f"champion {champ.version} short model, P(UP)-P(DOWN)",
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


def _skipped(
    day: dt.date, out_dir: Path, reason: str, champion: str | None
) -> dg.MaterializeResult:
    """No drift report without a reference or recent rows: a record saying so, no failure."""
    summary = {
        "day": day.isoformat(),
        "status": "skipped",
        "reason": reason,
        "reference": None,
        "champion": champion,
        "retrain": False,
        "reasons": [],
    }
    json_path = out_dir / f"{day.isoformat()}.json"
    json_path.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return dg.MaterializeResult(
        metadata={
            "status": "skipped",
            "reason": dg.MetadataValue.text(reason),
            "reference": "none",
            "retrain": dg.MetadataValue.bool(False),
            "reasons": dg.MetadataValue.text("none"),
            "summary_path": dg.MetadataValue.path(str(json_path)),
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
        "AUC, the champion's prediction statistics and recent out-of-sample IC, and a retrain "
        "flag read by drift_sensor. Skipped, not failed, while there is no reference yet."
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
    reg = registry.registry()
    version = reg.champion()
    champ = reg.load(version) if version else None
    out_dir = lake.reports_dir() / "drift"
    out_dir.mkdir(parents=True, exist_ok=True)
    ref = reference_window(
        lake.root,
        day,
        champ.manifest if champ else None,
        config.reference_days,
        config.reference_max_rows,
        config.seed,
    )
    if ref.kind is None:
        context.log.info("drift report of %s skipped: %s", day, ref.note)
        return _skipped(day, out_dir, ref.note, version)
    recent, source = recent_window(lake.root, day)
    if recent.empty:
        return _skipped(
            day,
            out_dir,
            f"no features for {day} (no online log, no batch table or an empty one)",
            version,
        )
    # compare the pipeline's configured features only (the log may carry extra columns)
    names = [
        n
        for n in feature_names(pipeline.load().features)
        if n in recent.columns and n in ref.frame.columns
    ]
    ref_scores, cur_scores, scored_by = _scores(champ, ref.frame, recent)
    ic, ic_note = champion_recent_ic(lake.reports_dir(), day, version, config.min_ic_rows)
    summary = drift_summary(
        ref.frame[names],
        recent[names],
        config.drift_config(),
        ref_scores=ref_scores,
        cur_scores=cur_scores,
        recent_ic=ic,
        with_html=True,
    )
    html = summary.pop("html")
    summary.update(
        day=day.isoformat(),
        status="ok",
        reference=ref.kind,
        reference_note=ref.note,
        reference_days=[d.isoformat() for d in ref.days],
        champion=version,
        recent_source=source,
        recent_ic_note=ic_note,
        predictions_from=scored_by,
    )
    summary["timings"]["total_s"] = time.perf_counter() - t_start
    summary["consistency_report"] = str(consistency_path(lake.reports_dir(), day))
    html_path = out_dir / f"{day.isoformat()}.html"
    json_path = out_dir / f"{day.isoformat()}.json"
    html_path.write_text(html, encoding="utf-8")
    json_path.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    compact = {
        k: summary[k]
        for k in (
            "day",
            "reference",
            "reference_note",
            "champion",
            "recent_source",
            "n_reference",
            "n_current",
            "adversarial_auc",
            "drifted_share",
            "n_drifted_psi",
            "recent_ic",
            "recent_ic_note",
            "retrain",
            "reasons",
            "psi_top",
            "adversarial_top_features",
            "timings",
        )
    }
    for k in ("reference_predictions", "current_predictions", "prediction_psi"):
        if k in summary:
            compact[k] = summary[k]
    reasons = dg.MetadataValue.text("; ".join(summary["reasons"]) or "none")
    metadata = {
        "status": "ok",
        "report": dg.MetadataValue.path(str(html_path)),
        "summary_path": dg.MetadataValue.path(str(json_path)),
        "summary": dg.MetadataValue.json(compact),
        "top_psi": dg.MetadataValue.md(_top_psi_markdown(summary)),
        "reference": ref.kind,
        "reference_days": dg.MetadataValue.json([d.isoformat() for d in ref.days]),
        "recent_source": source,
        "adversarial_auc": dg.MetadataValue.float(_float(summary["adversarial_auc"])),
        "drifted_share": dg.MetadataValue.float(_float(summary["drifted_share"])),
        "recent_ic": dg.MetadataValue.float(_float(summary["recent_ic"])),
        "n_drifted_psi": dg.MetadataValue.int(int(summary["n_drifted_psi"])),
        "retrain": dg.MetadataValue.bool(bool(summary["retrain"])),
        "reasons": reasons,
        "runtime_s": dg.MetadataValue.float(round(summary["timings"]["total_s"], 3)),
        # the same day's online/offline consistency (training-serving skew) report
        "consistency_report": dg.MetadataValue.path(summary["consistency_report"]),
    }
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name=CHECK,
                passed=not summary["retrain"],
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    k: metadata[k]
                    for k in ("adversarial_auc", "drifted_share", "recent_ic", "reference")
                }
                | {"reasons": reasons},
            )
        ],
    )
