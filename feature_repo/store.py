"""Open the Feast store for a deployment and apply the definitions programmatically.

``TICKML_ENV=local`` (default): ``feature_store.yaml`` (sqlite online, Parquet offline, file
registry under ``$TICKML_FEAST_HOME``, default ``work/feast``). ``TICKML_ENV=prod``:
``feature_store.prod.yaml`` (Redis online store from ``TICKML_REDIS_URL``, SQL registry from
``TICKML_FEAST_REGISTRY_URL``). Overrides for tests: ``redis_url=``, ``registry_url=``.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from feast import FeatureStore

from feature_repo.paths import feast_home

REPO_DIR = Path(__file__).resolve().parent


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


def load_store(
    env: str | None = None, redis_url: str | None = None, registry_url: str | None = None
) -> FeatureStore:
    env = env or os.environ.get("TICKML_ENV", "local")
    home = feast_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["TICKML_FEAST_HOME"] = str(home)
    if env == "local":
        return FeatureStore(repo_path=str(REPO_DIR), fs_yaml_file=REPO_DIR / "feature_store.yaml")
    if env != "prod":
        raise ValueError(f"TICKML_ENV={env!r}: expected local or prod")
    redis_url = redis_url or os.environ.get("TICKML_REDIS_URL")
    registry_url = registry_url or os.environ.get("TICKML_FEAST_REGISTRY_URL")
    if not redis_url or not registry_url:
        raise ValueError("prod Feast needs TICKML_REDIS_URL and TICKML_FEAST_REGISTRY_URL")
    os.environ["TICKML_FEAST_REDIS"] = redis_url_to_feast(redis_url)
    os.environ["TICKML_FEAST_REGISTRY_URL"] = registry_url
    return FeatureStore(
        repo_path=str(REPO_DIR), fs_yaml_file=REPO_DIR / "feature_store.prod.yaml"
    )


def definitions() -> list:
    """Every Feast object of the repo, for ``FeatureStore.apply``.

    The modules are reloaded so paths follow the current environment (TICKML_WORKDIR,
    TICKML_FEATURES_PATH), as they do when the ``feast`` CLI imports them.
    """
    import importlib

    from feature_repo import entities, paths, services, sources, views

    for mod in (paths, entities, sources, views, services):
        importlib.reload(mod)

    return [
        entities.symbol,
        sources.tick_features_batch,
        sources.tick_features_push,
        sources.model_vector_log,
        sources.model_vector_push,
        views.tick_features,
        views.model_vector,
        services.tick_features_v1,
        services.model_vector_v1,
    ]


def apply(store: FeatureStore) -> list[str]:
    """Register entities, sources, views and services; returns the names applied."""
    objs = definitions()
    store.apply(objs)
    return [getattr(o, "name", str(o)) for o in objs]


def register_selection(store: FeatureStore, name: str, features: list[str]) -> str:
    """Register a versioned FeatureService over the selected features of ``tick_features``
    (e.g. ``tick_features_top70_v3``), in model order; returns its name."""
    from feast import FeatureService

    from feature_repo.views import tick_features

    if not features:
        raise ValueError("no features to register")
    unknown = [f for f in features if f not in {x.name for x in tick_features.features}]
    if unknown:
        raise ValueError(f"features not in tick_features: {unknown[:10]}")
    service = FeatureService(
        name=name,
        features=[tick_features[features]],
        description=f"SHAP-selected features ({len(features)}), in model input order.",
    )
    store.apply([service])
    return name
