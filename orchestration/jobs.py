"""The asset graph and its jobs, defined once: the Dagster code location
(:mod:`orchestration.definitions`), the in-process runner (``tickml run`` / ``ingest`` /
``demo``), the schedules and the sensors all take them from here."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg

from assets import champion, consistency, drift, features, ingestion, labels, shadow, training

ASSET_MODULES = (ingestion, features, labels, training, champion, consistency, drift, shadow)
#: every asset and asset check of the project
ASSETS = dg.load_assets_from_modules(list(ASSET_MODULES))

#: the nightly chain, one trading day: ingest -> features (+ online warm start) -> labels ->
#: evaluate the champion on the new day -> online/offline consistency -> drift report (the
#: drift sensor reads the report); the day's shadow trading against its backtest
DAILY_ASSETS = (
    "raw_ticks",
    "tick_features",
    "online_features",
    "labels",
    "champion_evaluation",
    "online_consistency",
    "drift_report",
    "shadow_vs_backtest",
)
#: rebuild the training set, train and evaluate a challenger, promote it only if the
#: registry's blocking check passes
RETRAIN_ASSETS = ("training_dataset", "model_experiment", "champion_model")
#: `tickml run`: the offline graph without the live warm start and the monitoring
RUN_DAILY_ASSETS = ("raw_ticks", "tick_features", "labels")
RUN_GLOBAL_ASSETS = ("feast_registry", *RETRAIN_ASSETS)

ingest_job = dg.define_asset_job("ingest_job", selection=dg.AssetSelection.groups("ingestion"))
daily_job = dg.define_asset_job(
    "daily_job",
    selection=dg.AssetSelection.assets(*DAILY_ASSETS),
    description="Nightly, one session date: ingest the ticks -> features (and the day's last "
    "rows into the online store) -> labels -> evaluate the champion -> online/offline "
    "consistency -> drift report; the day's shadow trading against its backtest.",
)
retrain_job = dg.define_asset_job(
    "retrain_job",
    selection=dg.AssetSelection.assets(*RETRAIN_ASSETS),
    description="Rebuild the training set, train and evaluate a challenger, promote it only if "
    "the registry's blocking check passes.",
)
JOBS = [ingest_job, daily_job, retrain_job]


def asset_defs(names: Sequence[str]) -> list[dg.AssetsDefinition]:
    """The asset definitions named ``names``, in that order (with their checks)."""
    found = {
        a.key.to_user_string(): a for a in ASSETS if isinstance(a, dg.AssetsDefinition)
    }
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"unknown assets {missing}; known: {sorted(found)}")
    return [found[n] for n in names]
