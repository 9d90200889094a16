"""Feed -> tick bus: publishes a feed's tick batches and clock markers.

``lockstep=True`` (replays, tests, the tick-to-signal benchmark): after each clock marker the
feed waits until every materializer passed it and, when the boundary produced rows, until the
scorer scored it. A replay at full speed then scores every boundary on its own rows, and the
close -> signal latency has no queueing from a replay running ahead of real time in it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis

from live import metrics
from live.bus import TickBus
from live.config import LiveConfig
from live.feeds import Clock, Ticks
from live.scaleout import scorer_name

log = logging.getLogger(__name__)


@dataclass
class FeedStats:
    ticks: int = 0
    entries: int = 0
    clocks: int = 0
    seconds: float = 0.0
    lockstep_timeouts: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def progress_key(config: LiveConfig) -> str:
    return config.key("progress")


def wait_for(
    config: LiveConfig,
    client: redis.Redis,
    t_ns: int,
    stop: threading.Event,
    timeout_s: float = 60.0,
) -> bool:
    """Block until materializers passed ``t_ns`` and the scorer scored it if it had rows."""
    deadline = time.monotonic() + timeout_s
    fields = [f"done:{s}" for s in range(config.shards)] + [
        f"rows:{s}" for s in range(config.shards)
    ]
    while not stop.is_set() and time.monotonic() < deadline:
        vals = client.hmget(progress_key(config), fields)
        done = [int(v) if v else -1 for v in vals[: config.shards]]
        rows = [int(v) if v else -1 for v in vals[config.shards :]]
        if min(done) >= t_ns:
            if max(rows) < t_ns:
                return True
            names = [scorer_name(config, i) for i in range(config.scorers)]
            lasts = client.mget([config.key(n, "last") for n in names])
            if all(last is not None and int(last) >= t_ns for last in lasts):
                return True
        time.sleep(0.0005)
    return stop.is_set()


def wait_ready(
    config: LiveConfig, client: redis.Redis, stop: threading.Event, timeout_s: float = 180.0
) -> bool:
    """Lockstep replays start once every materializer shard and the scorer are up (their
    start-up, seconds of imports and compiled-kernel loading, is not interval-close latency)."""
    need = [f"mat:{s}" for s in range(config.shards)]
    need += [scorer_name(config, i) for i in range(config.scorers)]
    deadline = time.monotonic() + timeout_s
    while not stop.is_set() and time.monotonic() < deadline:
        if all(client.hmget(config.key("ready"), need)):
            return True
        time.sleep(0.05)
    log.warning("workers not ready; replay starts anyway", extra={"need": ",".join(need)})
    return False


def run_feed(
    config: LiveConfig,
    events: Iterable[Ticks | Clock],
    stop: threading.Event,
    src: str = "feed",
    leader: str | None = "SPY",
    lockstep: bool = False,
    lockstep_timeout_s: float = 60.0,
    wait_workers: bool = False,
) -> FeedStats:
    """Publish ``events``; ``lockstep`` or ``wait_workers`` (a paced replay): start once the
    workers announced readiness."""
    client = redis.Redis.from_url(config.redis_url)
    bus = TickBus(client, config, leader=leader)
    stats = FeedStats()
    metrics.worker_started("feed", boundaries=False)
    if lockstep or wait_workers:
        wait_ready(config, client, stop)
    t0 = time.perf_counter()
    for ev in events:
        if stop.is_set():
            break
        while True:
            try:
                if isinstance(ev, Ticks):
                    stats.entries += bus.publish(ev.frame, src=src)
                    stats.ticks += len(ev.frame)
                    metrics.ticks_processed("feed", len(ev.frame))
                else:
                    bus.publish_clock(ev.t_ns, ev.wall_ns)
                    stats.clocks += 1
                    if lockstep and not wait_for(config, client, ev.t_ns, stop, lockstep_timeout_s):
                        stats.lockstep_timeouts += 1
                        log.warning("lockstep wait timed out", extra={"t_ns": ev.t_ns})
                break
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                metrics.ERRORS.labels("feed", "redis").inc()
                log.warning("redis unavailable, feed waits", extra={"error": str(exc)})
                if stop.wait(0.5):
                    break
    stats.seconds = time.perf_counter() - t0
    log.info("feed finished", extra={"ticks": stats.ticks, "seconds": round(stats.seconds, 3)})
    return stats
