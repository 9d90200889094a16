"""The working directory's layout: every path the project writes or reads under it, once.

::

    <workdir>/
      lake/                      Parquet lake (tickml.lake)
        ticks/date=D/symbol=S/   canonical ticks                     TickLake
        quarantine/date=D/       rejected rows with their reasons    TickLake
        features/date=D/         batch feature tables (Feast offline source)   FeatureTables
        labels/date=D/           labels of both horizons             LabelTables
        online_log/date=D/shard=S/<first>-<last>.parquet   rows the live materializer pushed online
        model_vectors/           log source of Feast's model_vector view
        datasets/training.parquet   the point-in-time training set
      models/                    model registry (versions, champion pointer)
      reports/                   evaluation.json/html, oos_predictions.parquet,
        champion/<day>.json      the champion's evaluation on a day   (champion_evaluation asset)
        drift/<day>.{html,json}  the day's drift report               (drift_report asset)
        consistency/<day>.json   online vs batch rows of the day      (online_consistency asset)
      feast/                     Feast's local registry.db and online.db (TICKML_ENV=local)
      dagster_home/              Dagster instance of in-process runs (unless DAGSTER_HOME is set)
      mlflow/                    embedded MLflow tracking store (mlflow.db) and artifacts/
      config.yaml                the run configuration `tickml run` used

The root comes from :class:`tickml.settings.Settings` (``TICKML_WORKDIR``, default ``./work``)
or a command's ``--workdir``; nothing else decides where files go.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

from tickml.lake import ONLINE_LOG, FeatureTables, LabelTables, TickLake, online_log_dir

LAKE = "lake"


@dataclass(frozen=True)
class Workdir:
    """Paths under one working directory (absolute; nothing is created by asking)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    @classmethod
    def of_lake(cls, lake: str | os.PathLike[str]) -> Workdir:
        """The working directory whose lake is ``lake``."""
        return cls(Path(lake).resolve().parent)

    # -- the lake ----------------------------------------------------------------------------
    @property
    def lake(self) -> Path:
        return self.root / LAKE

    def tick_lake(self) -> TickLake:
        return TickLake(self.lake)

    def feature_tables(self) -> FeatureTables:
        return FeatureTables(self.lake)

    def label_tables(self) -> LabelTables:
        return LabelTables(self.lake)

    @property
    def features_dir(self) -> Path:
        """Batch feature tables: the Parquet source of Feast's ``tick_features`` view."""
        return self.feature_tables().root

    @property
    def online_log(self) -> Path:
        """The live materializer's log of the rows it pushed online."""
        return self.lake / ONLINE_LOG

    def online_log_day(self, day: dt.date) -> Path:
        return online_log_dir(self.lake, day)

    @property
    def model_vectors_dir(self) -> Path:
        """Log source of Feast's ``model_vector`` view."""
        return self.lake / "model_vectors"

    @property
    def dataset_path(self) -> Path:
        """The point-in-time training set built by the ``training_dataset`` asset."""
        return self.lake / "datasets" / "training.parquet"

    # -- beside the lake ---------------------------------------------------------------------
    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def champion_evaluation(self, day: dt.date) -> Path:
        return self.reports / "champion" / f"{day.isoformat()}.json"

    def consistency_report(self, day: dt.date) -> Path:
        """The day's online/offline consistency report (online_consistency asset)."""
        return self.reports / "consistency" / f"{day.isoformat()}.json"

    def drift_report(self, day: dt.date, suffix: str = ".json") -> Path:
        """The day's drift report: ``.html`` (Evidently) or ``.json`` (the summary)."""
        return self.reports / "drift" / f"{day.isoformat()}{suffix}"

    @property
    def feast_home(self) -> Path:
        return self.root / "feast"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def mlflow(self) -> Path:
        """The embedded MLflow store: ``mlflow.db`` (sqlite) and ``artifacts/``."""
        return self.root / "mlflow"

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"
