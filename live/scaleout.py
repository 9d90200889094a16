"""Several scorer processes, each owning a set of bus shards, with one universe-wide decision.

Scorer ``i`` of ``n`` (``LiveConfig.scorers``) owns the shards ``s`` with ``s % n == i`` (as
materializer processes do), reads and scores only its shards' symbols and keeps its own state
keys (``<prefix>:scorer-<i>:*``; a single scorer keeps ``<prefix>:scorer:*``).

The one universe-wide part of the decision, the circuit breaker (the share of scored symbols
with one score sign), is made exact by a per-boundary exchange through Redis
(:class:`BreakerExchange`): every scorer adds its part's (scored, up, down) to
``<prefix>:cb:<b>`` (one hash field per scorer, in a MULTI with HLEN, so exactly one scorer is
the last); the last one releases the others (a token list they BLPOP), and every scorer then
decides with the sum, which is what one scorer over the whole universe would count. Cost: one
round trip for the last scorer, three for the others, plus the wait for the slowest part. A
scorer that does not answer within ``boundary_wait_s`` leaves the others deciding with the parts
they have (logged and counted: ``tickml_breaker_partial_total``). The universe-wide daily trade
cap (``max_trades_per_day_universe``) would need a universe-wide ranking of candidates: it is
refused with more than one scorer.
"""

from __future__ import annotations

import logging

import redis

from live import metrics
from live.config import LiveConfig

log = logging.getLogger(__name__)

EXCHANGE_TTL_S = 600


def scorer_name(cfg: LiveConfig, index: int) -> str:
    return "scorer" if cfg.scorers == 1 else f"scorer-{index}"


def scorer_shards(cfg: LiveConfig, index: int) -> list[int]:
    if not 0 <= index < cfg.scorers:
        raise ValueError(f"scorer index {index} outside 0..{cfg.scorers - 1}")
    return [s for s in range(cfg.shards) if s % cfg.scorers == index]


class BreakerExchange:
    """Sums the scorers' circuit-breaker counts of one boundary (module doc)."""

    def __init__(self, cfg: LiveConfig, client: redis.Redis, name: str) -> None:
        self.cfg, self.r, self.name = cfg, client, name

    def total(self, b: int, counts: tuple[int, int, int]) -> tuple[int, int, int]:
        n = self.cfg.scorers
        if n == 1:
            return counts
        key, go = self.cfg.key("cb", b), self.cfg.key("cb", b, "go")
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(key, self.name, ",".join(map(str, counts)))
        pipe.hlen(key)
        pipe.expire(key, EXCHANGE_TTL_S)
        have = pipe.execute()[1]
        if have >= n:  # the last part: release the others
            pipe = self.r.pipeline(transaction=False)
            pipe.rpush(go, *["1"] * (n - 1))
            pipe.expire(go, EXCHANGE_TTL_S)
            pipe.hvals(key)
            parts = pipe.execute()[2]
        else:
            got = self.r.blpop([go], timeout=self.cfg.boundary_wait_s)
            parts = self.r.hvals(key)
            if got is None or len(parts) < n:
                metrics.BREAKER_PARTIAL.inc()
                log.warning(
                    "circuit breaker decided with the parts it has",
                    extra={"b": b, "parts": len(parts), "scorers": n},
                )
        total = [0, 0, 0]
        for raw in parts:
            for i, v in enumerate(raw.split(b",")):
                total[i] += int(v)
        return total[0], total[1], total[2]
