"""Feast data sources: the batch feature tables (Parquet) and the push sources live writes to.

Built for one working directory (:class:`tickml.workdir.Workdir`): Feast stores each file
source's path in its registry when the repo is applied."""

from __future__ import annotations

from typing import NamedTuple

from feast import FileSource, PushSource
from feast.data_format import ParquetFormat

from tickml.workdir import Workdir


class Sources(NamedTuple):
    tick_features_batch: FileSource
    tick_features_push: PushSource
    model_vector_log: FileSource
    model_vector_push: PushSource


def make_sources(layout: Workdir) -> Sources:
    tick_features_batch = FileSource(
        name="tick_features_batch",
        path=str(layout.features_dir),
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
        description="Batch feature tables written by the tick_features asset (one file per day).",
    )
    # Live materializers push the same rows here; the online store (Redis/sqlite) is updated
    # and offline reads of the view keep coming from the batch tables above.
    tick_features_push = PushSource(
        name="tick_features_push",
        batch_source=tick_features_batch,
        description="Streaming feature rows from the live materializer (same definitions as "
        "batch).",
    )
    model_vector_log = FileSource(
        name="model_vector_log",
        path=str(layout.model_vectors_dir),
        file_format=ParquetFormat(),
        timestamp_field="event_timestamp",
        description="Log of the packed per-symbol model input vectors pushed online.",
    )
    model_vector_push = PushSource(
        name="model_vector_push",
        batch_source=model_vector_log,
        description="One Array(Float64) per symbol (every feature, then mid and spread): the "
        "live hot-path layout.",
    )
    return Sources(tick_features_batch, tick_features_push, model_vector_log, model_vector_push)
