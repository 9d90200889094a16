"""Feast feature views. The feature list comes from tickml.features (one definition): the
features of the run configuration's ``features`` section (default: every family)."""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

from feast import FeatureView, Field
from feast.types import Array, Float64, Int64

from feature_repo.entities import symbol, vector_symbol
from feature_repo.sources import Sources
from tickml.features import PIT_COLUMNS, FeatureConfig, feature_names

FEATURE_NAMES = feature_names(FeatureConfig())  # the default configuration's


class Views(NamedTuple):
    tick_features: FeatureView
    model_vector: FeatureView


def make_views(sources: Sources, features: FeatureConfig | None = None) -> Views:
    """The views of one deployment; ``tick_features`` holds the columns ``features`` outputs
    (the feature tables written with that configuration)."""
    names = FEATURE_NAMES if features is None else feature_names(features)
    tick_features = FeatureView(
        name="tick_features",
        entities=[symbol],
        ttl=timedelta(days=1),
        schema=[Field(name=n, dtype=Float64) for n in names]
        + [Field(name=n, dtype=Int64) for n in PIT_COLUMNS],
        source=sources.tick_features_push,
        online=True,
        description="Microstructure features per symbol at each sampling close (event_timestamp).",
        tags={"family": "all", "sampling": "interval close"},
    )
    # the full layout (every feature, then mid and spread): the benchmarks' "old path"; live
    # scoring reads the champion's sized layout, a view of the same shape named
    # model_vector_<digest> (live.layout)
    model_vector = model_vector_view(
        "model_vector",
        sources,
        "Every feature, then mid and spread, packed, float64 (the full layout; live scoring reads "
        "the champion's sized model_vector_<digest> views).",
    )
    return Views(tick_features, model_vector)


def model_vector_view(name: str, sources: Sources, description: str) -> FeatureView:
    """A packed model-vector view: one ``Array(Float64)`` field ``vector`` per symbol (e.g. a
    champion's sized layout, ``live.layout.VectorLayout.view``, registered for Feast's SDK),
    keyed by the ``vector_symbol`` entity (its own Redis hash; entity rows
    ``{"vector_symbol": s}``, push frames with a ``vector_symbol`` column)."""
    return FeatureView(
        name=name,
        entities=[vector_symbol],
        ttl=timedelta(minutes=30),
        schema=[Field(name="vector", dtype=Array(Float64))],
        source=sources.model_vector_push,
        online=True,
        description=description,
    )
