"""Feast data sources: the batch feature tables (Parquet) and the push sources live writes to."""

from feast import FileSource, PushSource
from feast.data_format import ParquetFormat

from feature_repo.paths import features_path, workdir

tick_features_batch = FileSource(
    name="tick_features_batch",
    path=features_path(),
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    description="Batch feature tables written by the tick_features asset (one file per day).",
)

# Live materializers push the same rows here; the online store (Redis/sqlite) is updated and
# offline reads of the view keep coming from the batch tables above.
tick_features_push = PushSource(
    name="tick_features_push",
    batch_source=tick_features_batch,
    description="Streaming feature rows from the live materializer (same definitions as batch).",
)

model_vector_log = FileSource(
    name="model_vector_log",
    path=str(workdir() / "lake" / "model_vectors"),
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    description="Log of the packed per-symbol model input vectors pushed online.",
)

model_vector_push = PushSource(
    name="model_vector_push",
    batch_source=model_vector_log,
    description="One Array(Float64) per symbol (every feature, then mid and spread): the live "
    "hot-path layout.",
)
