"""Ingestion asset family: ``raw_ticks`` (one day of canonical ticks into the lake / tick store)."""


import datetime as dt

import dagster as dg
import pandas as pd
from pydantic import Field

from assets.partitions import daily
from assets.resources import (
    LakeResource,
    PipelineConfigResource,
    TickSourceResource,
    TickStoreResource,
)
from tickml.ingest import ingest_day


class IngestConfig(dg.Config):
    max_quarantine_share: float = Field(
        default=0.01,
        description="The quarantine-share check fails above this share of rejected rows.",
    )
    min_ticks: int = Field(
        default=1, description="The row-count check fails below this many valid ticks."
    )


@dg.asset(
    partitions_def=daily,
    group_name="ingestion",
    kinds={"parquet", "postgres"},
    # one day per run: the asset reads context.partition_key (a day of ticks is seconds of work,
    # so the run overhead is small, and a failed day fails alone)
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=1),
    description=(
        "One trading day (of the run's market) of canonical ticks (symbol, ts UTC, seq, top of "
        "book after the event, trade price/size), validated, written to the Parquet lake "
        "partitioned by date/symbol and "
        "to the Postgres tick store when TICKML_PG_URL is set. Rejected rows go to the "
        "quarantine with their reason and source position."
    ),
    check_specs=[
        dg.AssetCheckSpec("row_count", asset="raw_ticks",
                          description="At least `min_ticks` valid ticks (warn on empty days)."),
        dg.AssetCheckSpec("quarantine_share", asset="raw_ticks",
                          description="Share of rejected rows below `max_quarantine_share`."),
        dg.AssetCheckSpec("monotone_timestamps", asset="raw_ticks",
                          description="Timestamps never decrease within a symbol."),
    ],
)
def raw_ticks(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    tick_source: TickSourceResource,
    lake: LakeResource,
    tick_store: TickStoreResource,
    pipeline: PipelineConfigResource,
) -> dg.MaterializeResult:
    day = dt.date.fromisoformat(context.partition_key)
    run_config = pipeline.load()
    spec = tick_source.spec(validation=run_config.validation, market=run_config.market)
    store = tick_store.store()
    try:
        s = ingest_day(spec, day, lake.ticks(), store)
    finally:
        if store is not None:
            store.close()
    weekend = day.weekday() >= 5
    reasons_md = (
        pd.DataFrame(sorted(s.reasons.items()), columns=["reason", "rows"]).to_markdown(index=False)
        if s.reasons else "none"
    )
    symbols_md = pd.DataFrame(
        sorted(s.per_symbol.items()), columns=["symbol", "ticks"]
    ).to_markdown(index=False) if s.per_symbol else "none"
    row_ok = s.n_ticks >= config.min_ticks
    return dg.MaterializeResult(
        metadata={
            "n_ticks": dg.MetadataValue.int(s.n_ticks),
            "n_symbols": dg.MetadataValue.int(s.n_symbols),
            "n_quarantined": dg.MetadataValue.int(s.n_quarantined),
            "quarantine_share": dg.MetadataValue.float(s.quarantine_share),
            "quarantine_reasons": dg.MetadataValue.md(reasons_md),
            "quarantine_counts": dg.MetadataValue.json(s.reasons),
            "ticks_per_symbol": dg.MetadataValue.md(symbols_md),
            "seconds": dg.MetadataValue.float(round(s.seconds, 3)),
            "ticks_per_second": dg.MetadataValue.float(
                round(s.n_ticks / s.seconds, 1) if s.seconds else 0.0
            ),
            "lake_path": dg.MetadataValue.path(str(lake.ticks().day_dir(day))),
            "postgres": dg.MetadataValue.bool(s.stored_in_postgres),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="row_count",
                passed=row_ok,
                severity=dg.AssetCheckSeverity.WARN
                if (weekend or s.n_ticks == 0) else dg.AssetCheckSeverity.ERROR,
                metadata={"n_ticks": s.n_ticks, "weekend": weekend},
            ),
            dg.AssetCheckResult(
                check_name="quarantine_share",
                passed=s.quarantine_share <= config.max_quarantine_share,
                metadata={"share": s.quarantine_share, "limit": config.max_quarantine_share,
                          "reasons": dg.MetadataValue.json(s.reasons)},
            ),
            dg.AssetCheckResult(
                check_name="monotone_timestamps",
                passed=not s.non_monotone_symbols,
                metadata={"offending_symbols": dg.MetadataValue.json(s.non_monotone_symbols)},
            ),
        ],
    )
