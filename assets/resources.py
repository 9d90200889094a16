"""Dagster resources: every external system the assets touch, typed, and the one function
that assembles them for a deployment (:func:`resource_set`, from :class:`tickml.settings.Settings`).

Secrets (database URLs with passwords) come from the environment through the settings; the
Dagster code location hands them over as ``dg.EnvVar`` so they never enter Dagster's run
storage; nothing here logs them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from tickml.ingest import SourceSpec
from tickml.lake import TickLake
from tickml.market import Market
from tickml.settings import Settings
from tickml.workdir import Workdir


class TickSourceResource(dg.ConfigurableResource):
    """Where the ``raw_ticks`` asset reads a day of ticks from."""

    kind: str = Field(
        default="simulator",
        description="simulator | equity-ticks | binance | canonical",
    )
    path: str | None = Field(
        default=None, description="Root folder or file of the source (not for the simulator)."
    )
    symbols: list[str] | None = Field(
        default=None, description="Restrict to these symbols (default: all in the source)."
    )
    out_of_order_tolerance: str | None = Field(
        default=None,
        description="Ticks out of time order by more than this are rejected (default per "
        "source: 1s for Binance captures, 0s otherwise).",
    )
    sim_n_symbols: int = Field(default=8, description="Simulator: number of symbols.")
    sim_seed: int = Field(default=7, description="Simulator: base random seed.")
    sim_signal_strength: float = Field(
        default=0.0, description="Simulator: strength of the planted predictable component."
    )

    def spec(self, validation: Any | None = None, market: Market | None = None) -> SourceSpec:
        """The source; ``validation``: plausibility bounds (the run config's ``validation``);
        ``market``: the run's market (None: the source's own)."""
        sim: dict[str, Any] = {
            "n_symbols": self.sim_n_symbols,
            "seed": self.sim_seed,
            "signal_strength": self.sim_signal_strength,
        }
        return SourceSpec(
            kind=self.kind,
            path=Path(self.path) if self.path else None,
            symbols=tuple(self.symbols) if self.symbols else None,
            out_of_order_tolerance=self.out_of_order_tolerance,
            sim=sim,
            market=market,
            **({"validation": validation} if validation is not None else {}),
        )


class PipelineConfigResource(dg.ConfigurableResource):
    """The run configuration (market, features, labels, experiment): a YAML file, or the
    defaults; without a market section, the market of the run's tick source."""

    path: str | None = Field(
        default=None, description="YAML run config (see `tickml config`); empty = defaults."
    )
    source: str = Field(
        default="simulator",
        description="The kind of the tick source raw_ticks reads: a configuration without a "
        "market section takes its market (binance: 24/7 UTC; tickml.sources).",
    )

    def load(self) -> Any:
        from tickml.config import RunConfig

        return RunConfig.load(self.path).for_source(self.source)


class LakeResource(dg.ConfigurableResource):
    """The Parquet lake (ticks, quarantine, feature and label tables) of a working directory;
    the reports and the training set sit where :class:`tickml.workdir.Workdir` puts them."""

    root: str = Field(description="Root folder of the lake (<workdir>/lake).")

    @property
    def layout(self) -> Workdir:
        return Workdir.of_lake(self.root)

    def ticks(self) -> TickLake:
        return TickLake(self.root)

    def reports_dir(self) -> Path:
        """Evaluation, champion and drift reports: ``<workdir>/reports``."""
        p = self.layout.reports
        p.mkdir(parents=True, exist_ok=True)
        return p

    def dataset_path(self) -> Path:
        """The point-in-time training set (Parquet) built by ``training_dataset``."""
        return self.layout.dataset_path


class FeastResource(dg.ConfigurableResource):
    """The Feast feature store of the deployment (definitions in feature_repo/)."""

    env: str = Field(default="local", description="local (sqlite/DuckDB) or prod (Redis/SQL).")
    workdir: str = Field(description="Working directory: feature tables, local Feast home.")
    redis_url: str | None = Field(default=None, description="prod: Redis URL (TICKML_REDIS_URL).")
    registry_url: str | None = Field(
        default=None, description="prod: SQL registry URL (TICKML_FEAST_REGISTRY_URL)."
    )

    @property
    def layout(self) -> Workdir:
        return Workdir(Path(self.workdir))

    def store(self) -> Any:
        from feature_repo.store import load_store

        return load_store(self.env, self.layout, self.redis_url, self.registry_url)

    def apply(self, features: Any = None) -> list[str]:
        """Apply the repo; ``features``: the run's FeatureConfig (the view's columns)."""
        from feature_repo.store import apply

        return apply(self.store(), self.layout, features)


class ModelRegistryResource(dg.ConfigurableResource):
    """Versioned models (LightGBM text + manifest.json) and the champion pointer."""

    root: str = Field(description="Registry folder.")

    def registry(self) -> Any:
        from tickml.models.registry import ModelRegistry

        return ModelRegistry(self.root)


class MlflowResource(dg.ConfigurableResource):
    """MLflow experiment tracking (``assets.tracking`` says what a run records).

    Embedded default: a sqlite backend store and local artifacts under ``<workdir>/mlflow``.
    Production: ``TICKML_MLFLOW_TRACKING_URI``, a PostgreSQL backend store
    (``postgresql://...``, artifacts under ``artifact_root``) or a tracking server
    (``http://...``, which stores the artifacts). Tracking never blocks training: when MLflow
    cannot be reached the run is logged without it (a warning, and no run id in the manifest).
    """

    tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking URI (env TICKML_MLFLOW_TRACKING_URI): http(s)://server, "
        "postgresql://... or sqlite:///...; empty = sqlite under <workdir>/mlflow.",
    )
    artifact_root: str | None = Field(
        default=None,
        description="artifact location of a new experiment when the URI is a database "
        "(env TICKML_MLFLOW_ARTIFACT_ROOT; default <workdir>/mlflow/artifacts).",
    )
    experiment: str = Field(default="tickml", description="MLflow experiment name.")
    workdir: str = Field(description="Where the embedded store lives (<workdir>/mlflow).")
    enabled: bool = Field(default=True, description="False: no tracking at all.")

    def uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{Workdir(Path(self.workdir)).mlflow / 'mlflow.db'}"

    def safe_uri(self) -> str:
        """The tracking URI without its password (safe to log and to store)."""
        from tickml.redact import redact

        return redact(self.uri())

    def _client(self) -> tuple[Any, str]:
        """An MlflowClient and the experiment id (created on first use)."""
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        uri = self.uri()
        if uri.startswith("sqlite:///"):
            Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=uri)
        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return client, exp.experiment_id
        location = None
        if not uri.startswith(("http://", "https://", "databricks")):
            root = self.artifact_root or str(Workdir(Path(self.workdir)).mlflow / "artifacts")
            location = root if "://" in root else Path(root).resolve().as_uri()
        try:
            return client, client.create_experiment(
                self.experiment,
                artifact_location=location,
                # the UI's "model training" views, not its GenAI ones
                tags={"mlflow.experimentKind": "custom_model_development"},
            )
        except MlflowException:  # created meanwhile by another run
            made = client.get_experiment_by_name(self.experiment)
            if made is None:
                raise
            return client, made.experiment_id

    def _guard(self, what: str, fn: Any) -> Any:
        if not self.enabled:
            return None
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - tracking must not fail training
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
            dg.get_dagster_logger().warning(
                "MLflow %s skipped (%s): %s", what, self.safe_uri(), first
            )
            return None

    def start_run(self, run_name: str, tags: dict[str, str]) -> dict[str, str] | None:
        """A new run; its reference (run id, experiment, redacted URI) for the manifest."""

        def start() -> dict[str, str]:
            client, exp_id = self._client()
            run = client.create_run(exp_id, run_name=run_name, tags=tags)
            return {
                "run_id": run.info.run_id,
                "experiment_id": exp_id,
                "experiment": self.experiment,
                "tracking_uri": self.safe_uri(),
            }

        return self._guard("start_run", start)

    def log_training(self, ref: dict[str, str] | None, *args: Any) -> bool:
        """``assets.tracking.log_training`` into the run, then end it (FINISHED)."""
        if ref is None:
            return False

        def log() -> bool:
            from assets.tracking import log_training

            client, _ = self._client()
            try:
                log_training(client, ref["run_id"], *args)
            except Exception:
                client.set_terminated(ref["run_id"], status="FAILED")
                raise
            client.set_terminated(ref["run_id"], status="FINISHED")
            return True

        return bool(self._guard("log_training", log))

    def mark_champion(
        self, ref: dict[str, str] | None, version: str, previous: dict[str, str] | None
    ) -> bool:
        """Tag the champion's run (and untag the replaced one's)."""
        if ref is None:
            return False

        def mark() -> bool:
            from assets.tracking import mark_champion

            client, exp_id = self._client()
            mark_champion(client, exp_id, ref["run_id"], version, (previous or {}).get("run_id"))
            return True

        return bool(self._guard("mark_champion", mark))


class TickStoreResource(dg.ConfigurableResource):
    """The PostgreSQL tick store. Optional: with no URL, the lake alone is the store."""

    url: str | None = Field(
        default=None, description="PostgreSQL URL (from TICKML_PG_URL); empty = disabled."
    )

    def enabled(self) -> bool:
        return bool(self.url)

    def store(self) -> Any:
        if not self.url:
            return None
        from tickml.store.postgres import TickStore

        return TickStore(self.url)


class ShadowLedgerResource(dg.ConfigurableResource):
    """The live shadow ledger's PostgreSQL tables (``tickml/store/shadow.py``). Optional: with no
    URL there is no shadow trading to report."""

    url: str | None = Field(
        default=None, description="PostgreSQL URL (from TICKML_PG_URL); empty = disabled."
    )

    def enabled(self) -> bool:
        return bool(self.url)

    def day(self, day: dt.date, tz: str) -> tuple[Any, Any, str | None]:
        """(fills, per-boundary equity, execution config JSON) of the local ``day``."""
        import pandas as pd

        from tickml.store.shadow import read_day

        start = pd.Timestamp(day).tz_localize(tz)
        end = pd.Timestamp(day + dt.timedelta(days=1)).tz_localize(tz)
        return read_day(str(self.url), day, start.to_pydatetime(), end.to_pydatetime())


def resource_set(
    settings: Settings,
    source: TickSourceResource | None = None,
    config_path: str | None = None,
    secrets_from_env: bool = False,
) -> dict[str, Any]:
    """Every resource the assets use, for one deployment: the one place they are assembled
    (the Dagster code location and the in-process runner both call it).

    ``source``: where ``raw_ticks`` reads (default: ``settings.source``/``settings.ticks``);
    ``config_path``: the run configuration (default: ``settings.config``). With
    ``secrets_from_env`` the secret URLs are Dagster ``EnvVar``s (the code location: values
    stay out of Dagster's run storage); otherwise the settings' values (in-process runs).
    TICKML_ENV=prod requires the Postgres tick store and puts Feast on Redis + its SQL
    registry."""
    layout = settings.layout

    def secret(field: str) -> Any:
        value = getattr(settings, field)
        if value is None:
            return None
        return dg.EnvVar(Settings.env_name(field)) if secrets_from_env else value

    prod = settings.env == "prod"
    feast = FeastResource(env=settings.env, workdir=str(layout.root))
    tick_store = TickStoreResource(url=secret("pg_url"))
    if prod:
        feast = FeastResource(
            env="prod",
            workdir=str(layout.root),
            redis_url=secret("redis_url"),
            registry_url=secret("feast_registry_url"),
        )
        if secrets_from_env:  # required in prod: a run without it fails, naming the variable
            tick_store = TickStoreResource(url=dg.EnvVar(Settings.env_name("pg_url")))
    source = source or TickSourceResource(
        kind=settings.source, path=str(settings.ticks) if settings.ticks else None
    )
    return {
        "tick_source": source,
        "lake": LakeResource(root=str(layout.lake)),
        "tick_store": tick_store,
        "feast": feast,
        "pipeline": PipelineConfigResource(
            path=config_path or settings.run_config_path(), source=source.kind
        ),
        "registry": ModelRegistryResource(root=str(layout.models)),
        "mlflow": MlflowResource(
            tracking_uri=secret("mlflow_tracking_uri"),
            artifact_root=settings.mlflow_artifact_root,
            experiment=settings.mlflow_experiment,
            workdir=str(layout.root),
        ),
        "shadow": ShadowLedgerResource(url=secret("pg_url")),
    }
