"""Versioned Feast feature services. Selected-feature services (e.g. tick_features_top70_v2)
are written by the SHAP selection step (:func:`feature_repo.store.register_selection`); v1 is
every feature."""

from __future__ import annotations

from feast import FeatureService

from feature_repo.views import Views


def make_services(views: Views) -> list[FeatureService]:
    return [
        FeatureService(
            name="tick_features_v1",
            features=[views.tick_features],
            description="All candidate features of the default FeatureConfig.",
        ),
        FeatureService(
            name="model_vector_v1",
            features=[views.model_vector],
            description="Packed live model vectors.",
        ),
    ]
