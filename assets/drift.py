"""Monitoring: the daily ``drift_report`` asset (Evidently + PSI + adversarial validation).

Reference window: the ``reference_days`` feature-table days just before the partition's day
(days present in the lake, so weekends and holidays are skipped). Current window: the features
as they were pushed online that day when a live log exists at
``<lake root>/online_log/date=YYYY-MM-DD/*.parquet`` (same columns as the feature table; an
optional ``prediction``/``score`` column gives prediction statistics), else the day's batch
feature table. Outputs ``<workdir>/reports/drift/<day>.html`` (Evidently) and ``<day>.json``
(the summary); the ``drift_sensor`` reads the metadata to decide on a retrain.
"""


import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pandas as pd
from pydantic import Field

from orchestration.partitions import daily
from orchestration.resources import LakeResource, PipelineConfigResource
from tickml.drift import DriftConfig, drift_summary
from tickml.features import feature_names
from tickml.lake import FeatureTables

PREDICTION_COLUMNS = ("prediction", "score")


class DriftReportConfig(dg.Config):
    """Run config of ``drift_report`` (thresholds default to tickml.drift.DriftConfig)."""

    reference_days: int = Field(
        default=3, description="feature-table days before the partition used as reference"
    )
    psi_threshold: float = Field(default=0.2, description="PSI above this = drifted feature")
    drifted_share_threshold: float = Field(
        default=0.3, description="retrain when Evidently's share of drifted features exceeds it"
    )
    adversarial_auc_threshold: float = Field(
        default=0.7, description="retrain when the adversarial validation AUC exceeds it"
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
            evidently_max_rows=self.evidently_max_rows,
            evidently_max_columns=self.evidently_max_columns,
            seed=self.seed,
        )


def online_log_dir(lake_root: str | Path, day: dt.date) -> Path:
    return Path(lake_root) / "online_log" / f"date={day.isoformat()}"


def read_current(lake_root: str | Path, day: dt.date) -> tuple[pd.DataFrame, str]:
    """The day's live-logged features if any, else its batch feature table; and which."""
    files = sorted(online_log_dir(lake_root, day).glob("*.parquet"))
    if files:
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True), "online_log"
    return FeatureTables(lake_root).read_day(day), "feature_table"


def reference_window(tables: FeatureTables, day: dt.date, n_days: int) -> list[dt.date]:
    return [d for d in tables.days() if d < day][-n_days:]


def _top_psi_markdown(summary: dict[str, object]) -> str:
    rows = summary.get("psi_top") or []
    lines = ["| feature | PSI |", "|---|---|"]
    lines += [f"| {r['feature']} | {r['psi']:.3f} |" for r in rows]  # type: ignore[index, union-attr]
    return "\n".join(lines)


@dg.asset(
    partitions_def=daily,
    deps=["tick_features"],
    group_name="monitoring",
    kinds={"evidently", "html"},
    description=(
        "Data drift of the day's features (as pushed online when logged, else the batch "
        "table) against the reference window of the days before: Evidently data-drift report "
        "(HTML, linked), PSI per feature, adversarial validation AUC, prediction statistics, "
        "and a retrain flag read by drift_sensor."
    ),
    check_specs=[
        dg.AssetCheckSpec(
            "drift_within_thresholds",
            asset="drift_report",
            blocking=False,
            description="Warns when a drift threshold is crossed (adversarial AUC, drifted "
            "share); the drift sensor then requests a retrain.",
        )
    ],
)
def drift_report(
    context: dg.AssetExecutionContext,
    config: DriftReportConfig,
    lake: LakeResource,
    pipeline: PipelineConfigResource,
) -> dg.MaterializeResult:
    day = dt.date.fromisoformat(context.partition_key)
    tables = FeatureTables(lake.root)
    ref_days = reference_window(tables, day, config.reference_days)
    if not ref_days:
        raise dg.Failure(f"no feature-table day before {day} to use as drift reference")
    reference = tables.read_range(ref_days[0], ref_days[-1])
    current, source = read_current(lake.root, day)
    # compare the pipeline's configured features only (the log may carry extra columns)
    names = [n for n in feature_names(pipeline.load().features) if n in current.columns]
    pred_col = next((c for c in PREDICTION_COLUMNS if c in current.columns), None)
    ref_pred = next((c for c in PREDICTION_COLUMNS if c in reference.columns), None)
    summary = drift_summary(
        reference[[n for n in names if n in reference.columns]],
        current[names],
        config.drift_config(),
        ref_scores=reference[ref_pred] if ref_pred else None,
        cur_scores=current[pred_col] if pred_col else None,
        with_html=True,
    )
    html = summary.pop("html")
    summary.update(
        day=day.isoformat(),
        current_source=source,
        reference_days=[d.isoformat() for d in ref_days],
    )
    out_dir = lake.reports_dir() / "drift"
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path = out_dir / f"{day.isoformat()}.html"
    json_path = out_dir / f"{day.isoformat()}.json"
    html_path.write_text(html, encoding="utf-8")
    json_path.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    compact = {
        k: summary[k]
        for k in ("day", "current_source", "reference_days", "n_reference", "n_current",
                  "adversarial_auc", "drifted_share", "n_drifted_psi", "retrain", "reasons",
                  "psi_top", "adversarial_top_features", "timings")
    }
    for k in ("reference_predictions", "current_predictions", "prediction_psi"):
        if k in summary:
            compact[k] = summary[k]
    auc = summary["adversarial_auc"]
    share = summary["drifted_share"]
    metadata = {
        "report": dg.MetadataValue.path(str(html_path)),
        "summary_path": dg.MetadataValue.path(str(json_path)),
        "summary": dg.MetadataValue.json(compact),
        "top_psi": dg.MetadataValue.md(_top_psi_markdown(summary)),
        "adversarial_auc": dg.MetadataValue.float(float(auc) if auc is not None else float("nan")),
        "drifted_share": dg.MetadataValue.float(
            float(share) if share is not None else float("nan")
        ),
        "n_drifted_psi": dg.MetadataValue.int(int(summary["n_drifted_psi"])),
        "retrain": dg.MetadataValue.bool(bool(summary["retrain"])),
        "reasons": dg.MetadataValue.text("; ".join(summary["reasons"]) or "none"),
        "current_source": dg.MetadataValue.text(source),
    }
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="drift_within_thresholds",
                passed=not summary["retrain"],
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "reasons": dg.MetadataValue.text("; ".join(summary["reasons"]) or "none"),
                    "adversarial_auc": metadata["adversarial_auc"],
                    "drifted_share": metadata["drifted_share"],
                },
            )
        ],
    )
