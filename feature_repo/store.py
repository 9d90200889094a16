"""Open the Feast store of a deployment and apply the definitions programmatically.

``env="local"``: ``feature_store.yaml`` (sqlite online store, DuckDB offline store over the
Parquet feature tables, file registry under ``<workdir>/feast``). ``env="prod"``:
``feature_store.prod.yaml`` (Redis online store, SQL registry in PostgreSQL). The YAML files
hold the infrastructure with ``${NAME}`` placeholders; :func:`load_store` fills them from its
arguments (the deployment's :class:`tickml.settings.Settings`), not from the environment.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml
from feast import FeatureService, FeatureStore, RepoConfig

from feature_repo.entities import symbol, vector_symbol
from feature_repo.services import make_services
from feature_repo.sources import make_sources
from feature_repo.views import make_views
from tickml.features import FeatureConfig
from tickml.workdir import Workdir

REPO_DIR = Path(__file__).resolve().parent
YAML_BY_ENV = {"local": "feature_store.yaml", "prod": "feature_store.prod.yaml"}


def redis_url_to_feast(url: str) -> str:
    """``redis://[:pw@]host:port/db`` -> Feast's ``host:port,db=N[,password=pw][,ssl=true]``."""
    u = urlparse(url)
    if u.scheme not in ("redis", "rediss"):
        raise ValueError(f"expected a redis:// or rediss:// URL, got scheme {u.scheme!r}")
    parts = [f"{u.hostname or '127.0.0.1'}:{u.port or 6379}"]
    db = (u.path or "/0").lstrip("/") or "0"
    parts.append(f"db={int(db)}")
    if u.password:
        parts.append(f"password={unquote(u.password)}")
    if u.scheme == "rediss":
        parts.append("ssl=true")
    return ",".join(parts)


def repo_config(
    env: str, layout: Workdir, redis_url: str | None = None, registry_url: str | None = None
) -> RepoConfig:
    """The deployment's Feast configuration: its YAML with the placeholders filled in."""
    if env not in YAML_BY_ENV:
        raise ValueError(f"TICKML_ENV={env!r}: expected local or prod")
    values = {"TICKML_FEAST_HOME": str(layout.feast_home)}
    if env == "prod":
        if not redis_url or not registry_url:
            raise ValueError("prod Feast needs TICKML_REDIS_URL and TICKML_FEAST_REGISTRY_URL")
        values["TICKML_FEAST_REDIS"] = redis_url_to_feast(redis_url)
        values["TICKML_FEAST_REGISTRY_URL"] = registry_url
    text = (REPO_DIR / YAML_BY_ENV[env]).read_text(encoding="utf-8")
    config = RepoConfig(**yaml.safe_load(string.Template(text).substitute(values)))
    config.repo_path = REPO_DIR
    return config


def load_store(
    env: str, layout: Workdir, redis_url: str | None = None, registry_url: str | None = None
) -> FeatureStore:
    """The Feast store of a deployment (``env`` local or prod) for one working directory."""
    config = repo_config(env, layout, redis_url, registry_url)
    layout.feast_home.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(REPO_DIR), config=config)


def definitions(layout: Workdir, features: FeatureConfig | None = None) -> list[Any]:
    """Every Feast object of the repo for one working directory (``FeatureStore.apply``):
    file sources point at its lake; ``tick_features`` has the columns of ``features`` (the run
    configuration's feature section; default: every family)."""
    sources = make_sources(layout)
    views = make_views(sources, features)
    return [symbol, vector_symbol, *sources, *views, *make_services(views)]


def apply(store: FeatureStore, layout: Workdir, features: FeatureConfig | None = None) -> list[str]:
    """Register entities, sources, views and services; returns the names applied."""
    objs = definitions(layout, features)
    store.apply(objs)
    return [getattr(o, "name", str(o)) for o in objs]


def register_selection(store: FeatureStore, name: str, features: list[str]) -> str:
    """Register a versioned FeatureService over the selected features of the applied
    ``tick_features`` view (e.g. ``tick_features_top70_v3``), in model order; returns its
    name."""
    if not features:
        raise ValueError("no features to register")
    view = store.get_feature_view("tick_features")
    unknown = [f for f in features if f not in {x.name for x in view.features}]
    if unknown:
        raise ValueError(f"features not in tick_features: {unknown[:10]}")
    service = FeatureService(
        name=name,
        features=[view[features]],
        description=f"SHAP-selected features ({len(features)}), in model input order.",
    )
    store.apply([service])
    return name
