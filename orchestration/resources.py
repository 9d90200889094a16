"""Dagster resources: every external system the assets touch, typed and configured from env.

Secrets (database URLs with passwords) come only from environment variables via ``dg.EnvVar``;
nothing here logs them.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from tickml.ingest import SourceSpec
from tickml.lake import TickLake


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

    def spec(self) -> SourceSpec:
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
        )


class PipelineConfigResource(dg.ConfigurableResource):
    """The run configuration (features, labels, experiment): a YAML file, or the defaults."""

    path: str | None = Field(
        default=None, description="YAML run config (see `tickml config`); empty = defaults."
    )

    def load(self) -> Any:
        from tickml.config import RunConfig

        return RunConfig.load(self.path)


class LakeResource(dg.ConfigurableResource):
    """The Parquet lake (ticks, quarantine, later feature tables) under one root folder."""

    root: str = Field(description="Root folder of the lake.")

    def ticks(self) -> TickLake:
        return TickLake(self.root)

    def reports_dir(self) -> Path:
        """Evaluation reports: next to the lake, ``<workdir>/reports``."""
        p = Path(self.root).parent / "reports"
        p.mkdir(parents=True, exist_ok=True)
        return p

    def dataset_path(self) -> Path:
        """The point-in-time training set (Parquet) built by ``training_dataset``."""
        return Path(self.root) / "datasets" / "training.parquet"


class FeastResource(dg.ConfigurableResource):
    """The Feast feature store of the deployment (definitions in feature_repo/)."""

    env: str = Field(default="local", description="local (sqlite/file) or prod (Redis/Postgres).")
    redis_url: str | None = Field(default=None, description="prod: Redis URL (TICKML_REDIS_URL).")
    registry_url: str | None = Field(
        default=None, description="prod: SQL registry URL (TICKML_FEAST_REGISTRY_URL)."
    )

    def store(self) -> Any:
        from feature_repo.store import load_store

        return load_store(self.env, self.redis_url, self.registry_url)

    def apply(self) -> list[str]:
        from feature_repo.store import apply

        return apply(self.store())


class ModelRegistryResource(dg.ConfigurableResource):
    """Versioned models (LightGBM text + manifest.json) and the champion pointer."""

    root: str = Field(description="Registry folder.")

    def registry(self) -> Any:
        from tickml.models.registry import ModelRegistry

        return ModelRegistry(self.root)


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


def default_workdir() -> Path:
    return Path(os.environ.get("TICKML_WORKDIR", "work")).resolve()


def partition_start() -> dt.date:
    return dt.date.fromisoformat(os.environ.get("TICKML_PARTITION_START", "2013-10-01"))


def _source_from_env() -> TickSourceResource:
    return TickSourceResource(
        kind=os.environ.get("TICKML_SOURCE", "simulator"),
        path=os.environ.get("TICKML_TICKS") or None,
    )


def feast_resource(env: str) -> FeastResource:
    """The Feast store of a deployment: embedded (sqlite/file) locally; in prod Redis and the
    SQL registry, their URLs from TICKML_REDIS_URL / TICKML_FEAST_REGISTRY_URL."""
    if env == "prod":
        return FeastResource(
            env="prod",
            redis_url=dg.EnvVar("TICKML_REDIS_URL"),
            registry_url=dg.EnvVar("TICKML_FEAST_REGISTRY_URL"),
        )
    return FeastResource(env="local")


def local_resources() -> dict[str, Any]:
    """Embedded defaults: lake under TICKML_WORKDIR, Postgres only if TICKML_PG_URL is set."""
    return {
        "tick_source": _source_from_env(),
        "lake": LakeResource(root=str(default_workdir() / "lake")),
        "tick_store": TickStoreResource(
            url=dg.EnvVar("TICKML_PG_URL") if os.environ.get("TICKML_PG_URL") else None
        ),
        "feast": feast_resource("local"),
        "pipeline": PipelineConfigResource(path=os.environ.get("TICKML_CONFIG") or None),
        "registry": ModelRegistryResource(root=str(default_workdir() / "models")),
    }


def prod_resources() -> dict[str, Any]:
    """Production: Postgres tick store required (TICKML_PG_URL)."""
    return {
        "tick_source": _source_from_env(),
        "lake": LakeResource(root=str(default_workdir() / "lake")),
        "tick_store": TickStoreResource(url=dg.EnvVar("TICKML_PG_URL")),
        "feast": feast_resource("prod"),
        "pipeline": PipelineConfigResource(path=os.environ.get("TICKML_CONFIG") or None),
        "registry": ModelRegistryResource(root=str(default_workdir() / "models")),
    }


RESOURCES_BY_ENV = {"local": local_resources, "prod": prod_resources}
