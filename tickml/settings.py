"""Deployment settings: the one place the environment is read.

:meth:`Settings.from_env` reads every ``TICKML_*`` variable (and Dagster's ``DAGSTER_HOME``)
once; the entry points (``tickml`` commands, ``python -m live``, the Dagster code location in
``orchestration.definitions``, the benchmarks) build one :class:`Settings` and pass it, or the
values they need from it, to everything below. No other module reads ``os.environ`` and no
module writes it to reach another. The README's configuration table lists every variable.

What a run computes (market, features, labels, models, gates) is not here: that is the run
configuration (:mod:`tickml.config`, a YAML file named by ``TICKML_CONFIG``). Settings say
where things are and which servers to use.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickml.market import Market
from tickml.sources import source_market
from tickml.workdir import Workdir

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

#: variables of earlier versions that the run configuration's market section replaced; a
#: deployment that still sets one gets an error instead of a silently ignored setting
REPLACED = {
    "TICKML_PARTITION_TZ": "market.tz",
    "TICKML_SCHEDULE_TZ": "market.tz",
    "TICKML_SESSION_CLOSE": "market.session_close",
}

_ON = ("on", "1", "true", "yes", "running")
_OFF = ("off", "0", "false", "no", "stopped")


class Settings(BaseSettings):
    """Where the data lives and which servers to use (environment ``TICKML_<FIELD>``)."""

    model_config = SettingsConfigDict(
        env_prefix="TICKML_", env_ignore_empty=True, extra="ignore", frozen=True
    )

    env: Literal["local", "prod"] = Field(
        "local",
        description="resource set: local (embedded sqlite Feast, Postgres optional) or prod "
        "(Feast on Redis + SQL registry, Postgres tick store required)",
    )
    workdir: Path = Field(
        Path("work"),
        description="working directory: lake, models, reports, Feast and Dagster homes "
        "(tickml.workdir; relative paths are taken from the current directory)",
    )
    config: Path | None = Field(
        None, description="run configuration YAML (`tickml config` prints one); none: defaults"
    )
    source: str = Field("simulator", description="`dagster dev` runs: the tick source kind")
    ticks: Path | None = Field(None, description="`dagster dev` runs: the source's files")
    partition_start: dt.date = Field(dt.date(2013, 10, 1), description="first daily partition")
    pg_url: str | None = Field(
        None, repr=False, description="PostgreSQL tick store, signals, shadow ledger (secret)"
    )
    redis_url: str | None = Field(
        None,
        repr=False,
        description="live bus, online store, signals; Feast's online store in prod (secret)",
    )
    feast_registry_url: str | None = Field(
        None, repr=False, description="prod: Feast SQL registry, postgresql+psycopg:// (secret)"
    )
    log_level: str | None = Field(
        None, description="live workers' JSON log level (default INFO; replays: WARNING)"
    )
    debug: bool = Field(
        False, description="full tracebacks on errors (as `tickml --debug`); otherwise one line"
    )
    nightly_cron: str = Field("30 0 * * 2-6", description="when the nightly daily_job runs")
    retrain_cron: str = Field("0 6 * * 6", description="when the weekly retrain runs")
    schedules: bool | None = Field(
        None, description="start the schedules running (default: on in prod, off locally)"
    )
    drift_cooldown_s: float = Field(
        86_400.0, ge=0, description="minimum time between two drift-triggered retrains"
    )
    shared_data: Path | None = Field(
        None, description="the real data sets (tests, benchmarks); default ../shared/data"
    )
    mlflow_tracking_uri: str | None = Field(
        None,
        repr=False,
        description="MLflow tracking: postgresql://... backend store or http(s)://server; "
        "none: sqlite under <workdir>/mlflow (secret)",
    )
    mlflow_artifact_root: str | None = Field(
        None,
        description="artifact location of a new MLflow experiment on a database URI "
        "(default <workdir>/mlflow/artifacts)",
    )
    mlflow_experiment: str = Field("tickml", description="MLflow experiment of training runs")
    bench_redis_url: str | None = Field(
        None, repr=False, description="benchmarks' Redis (its db is flushed)"
    )
    dagster_home: Path | None = Field(
        None,
        validation_alias=AliasChoices("DAGSTER_HOME", "dagster_home"),
        description="Dagster's own variable: the instance in-process runs record to "
        "(default <workdir>/dagster_home)",
    )

    @field_validator("workdir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.resolve()

    @field_validator("schedules", mode="before")
    @classmethod
    def _on_off(cls, v: object) -> object:
        if isinstance(v, str):
            flag = v.strip().lower()
            if flag in _ON:
                return True
            if flag in _OFF:
                return False
            raise ValueError(f"expected on or off, got {v!r}")
        return v

    @classmethod
    def from_env(cls) -> Settings:
        """The settings of this process: every variable read here, once."""
        stale = sorted(k for k in REPLACED if k in os.environ)
        if stale:
            raise ValueError(
                "; ".join(f"{k} is no longer read: set {REPLACED[k]}" for k in stale)
                + " (run configuration: TICKML_CONFIG; see `tickml config`)"
            )
        return cls()

    @property
    def layout(self) -> Workdir:
        """Every path under the working directory."""
        return Workdir(self.workdir)

    @property
    def live_redis_url(self) -> str:
        return self.redis_url or DEFAULT_REDIS_URL

    @property
    def schedules_running(self) -> bool:
        """Whether schedules start RUNNING: TICKML_SCHEDULES, else only in prod (a laptop's
        `dagster dev` never launches runs by itself)."""
        return self.schedules if self.schedules is not None else self.env == "prod"

    def run_config_path(self) -> str | None:
        return str(self.config) if self.config else None

    def market(self) -> Market:
        """The run's market: the run configuration's market section (TICKML_CONFIG), else
        the market of the source `dagster dev` ingests (TICKML_SOURCE: Binance 24/7 UTC, the
        others New York 09:30-16:00; :func:`tickml.sources.source_market`): the time zone of
        the daily partitions and the schedules."""
        return source_market(self.source, Market.of_run_config(self.config))

    def with_workdir(self, workdir: Path | None) -> Settings:
        """These settings with another working directory (a command's --workdir)."""
        if workdir is None:
            return self
        return self.model_copy(update={"workdir": Path(workdir).resolve()})

    @staticmethod
    def env_name(field: str) -> str:
        """The environment variable of a field (``pg_url`` -> ``TICKML_PG_URL``), for
        Dagster's ``EnvVar`` (secrets stay out of run configuration storage)."""
        if field not in Settings.model_fields:
            raise KeyError(field)
        return f"TICKML_{field.upper()}"


@lru_cache(maxsize=1)
def process_settings() -> Settings:
    """The settings of this process, read once: for what Dagster defines when a module is
    imported (the daily partitions, the schedules, the code location's resources). Commands
    and workers build their own with :meth:`Settings.from_env` and pass them down."""
    return Settings.from_env()
