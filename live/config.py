"""Configuration of the live workers: one pydantic model, every field documented.

Secrets (URLs with passwords) come from the environment only, through the settings
(``TICKML_REDIS_URL``, ``TICKML_PG_URL``: :meth:`LiveConfig.from_settings`). Nothing here is
logged with its password (:func:`tickml.redact.redact`).
"""

from __future__ import annotations

import zlib
from typing import Any

from pydantic import BaseModel, Field

from tickml.settings import DEFAULT_REDIS_URL, Settings


def shard_of(symbol: str, shards: int) -> int:
    """Stable shard of a symbol: crc32 of its UTF-8 bytes modulo ``shards``."""
    return zlib.crc32(symbol.encode("utf-8")) % shards


class LiveConfig(BaseModel):
    """Live path settings (feeds, bus, materializer, scorer, writer)."""

    redis_url: str = Field(
        DEFAULT_REDIS_URL,
        description="Redis for the bus, the online store and signals (env TICKML_REDIS_URL)",
    )
    pg_url: str | None = Field(
        None,
        description="PostgreSQL for the tick store, signals and the shadow ledger "
        "(env TICKML_PG_URL; None: those writes are off)",
    )
    prefix: str = Field("tickml", description="prefix of every Redis key the live path owns")
    shards: int = Field(4, ge=1, le=1024, description="tick bus streams (symbol hash shards)")
    scorers: int = Field(
        1,
        ge=1,
        le=64,
        description="scorer processes; scorer i owns the shards s with s % scorers == i (the "
        "circuit breaker stays universe-wide through a per-boundary exchange in Redis)",
    )
    stream_maxlen: int = Field(
        100_000,
        ge=100,
        description="approximate cap on entries per shard stream (XADD MAXLEN ~); an entry is a "
        "batch of ticks, so this bounds memory, not ticks",
    )
    batch_ticks: int = Field(2_000, ge=1, description="ticks per bus entry a feed publishes")
    feast_project: str = Field("tickml", description="Feast project name (feature_store.yaml)")
    boundary_wait_s: float = Field(
        2.0,
        gt=0,
        description="how long the scorer waits for every shard's rows of a boundary before "
        "scoring with what it has (missing shards are then stale)",
    )
    checkpoint_every: int = Field(
        5,
        ge=1,
        description="materializer checkpoints (state + offline log) every N boundaries with "
        "rows; a restart re-reads the entries since, so recovery work is bounded by N intervals",
    )
    write_feature_view: bool = Field(
        True,
        description="also write every feature into Feast's tick_features view (the per-feature "
        "layout Feast's SDK reads); the scorer reads only the champion's packed "
        "model_vector_<digest> view",
    )
    view_delay_s: float = Field(
        0.5,
        ge=0,
        description="the tick_features rows of a boundary are written once every scorer "
        "finished it (off the close -> signals path), or after this long at the latest",
    )
    warm_symbols: int = Field(
        256,
        ge=0,
        description="materializer: after a read that found the bus drained, compute ahead of "
        "the close the ring moments of up to this many symbols that ticked since theirs were "
        "last computed (the boundary's snapshot then reuses them while no tick came; rows "
        "identical either way; costs 8 * Program.ring_work_size bytes per symbol, 14.7 KB at "
        "the default features, allocated on first use). 0: off",
    )
    online_log_dir: str | None = Field(
        None,
        description="lake holding the offline log of rows pushed online (<lake>/online_log; "
        "from_settings: <workdir>/lake)",
    )
    max_clock_step_s: float = Field(
        900.0,
        gt=0,
        description="a clock marker more than this beyond the shard's newest tick or accepted "
        "marker is refused (feeds send one per sampling interval; a marker hours ahead would "
        "close every boundary in between)",
    )
    max_clock_skew_s: float = Field(
        60.0,
        ge=0,
        description="a clock marker later than the wall clock plus this is refused",
    )
    ledger_wait_s: float = Field(
        30.0,
        gt=0,
        description="shadow ledger: how long a boundary whose records do not yet cover every "
        "shard waits, once a later boundary arrived, before it is stepped with what came",
    )
    metrics_port: int | None = Field(
        None, description="Prometheus /metrics port on 127.0.0.1 (None: no endpoint)"
    )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> LiveConfig:
        """The live configuration of a deployment: its Redis, Postgres and lake."""
        base = {
            "redis_url": settings.live_redis_url,
            "pg_url": settings.pg_url,
            "online_log_dir": str(settings.layout.lake),
        }
        return cls(**{**base, **overrides})

    def key(self, *parts: Any) -> str:
        return ":".join([self.prefix, *(str(p) for p in parts)])

    def stream(self, shard: int) -> str:
        return self.key("ticks", shard)

    def shard_of(self, symbol: str) -> int:
        return shard_of(symbol, self.shards)
