"""Versioned Feast feature services. Selected-feature services (e.g. tick_features_top70_v2) are
written by the SHAP selection step; v1 is every feature."""

from feast import FeatureService

from feature_repo.views import model_vector, tick_features

tick_features_v1 = FeatureService(
    name="tick_features_v1",
    features=[tick_features],
    description="All candidate features of the default FeatureConfig.",
)

model_vector_v1 = FeatureService(
    name="model_vector_v1",
    features=[model_vector],
    description="Packed live model vectors.",
)
