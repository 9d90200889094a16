"""Replay a day through the whole live path (feed -> bus -> materializers -> scorer -> shadow
ledger, writer).

Used by ``tickml live replay``, the demo, the end-to-end tests and the tick-to-signal
benchmark. Workers are real processes (``python -m live <role>``) under the supervisor; the
feed runs in lockstep by default (see :mod:`live.feedrunner`).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis

from live import state
from live.config import LiveConfig
from live.scaleout import scorer_name
from live.supervisor import Child, Supervisor
from tickml.errors import RunFailed, UsageError
from tickml.redact import redact

log = logging.getLogger(__name__)


@dataclass
class ReplaySpec:
    source: str = "simulator"
    ticks: str | None = None
    day: str | None = None
    symbols: tuple[str, ...] | None = None
    speed: float | None = None
    max_seconds: float | None = None
    close_real_s: float | None = None  # with speed: the seconds around each close at 1x
    lockstep: bool = True
    config: str | None = None
    registry: str | None = None  # None: <workdir>/models
    workdir: str | None = None  # None: the children's TICKML_WORKDIR
    log_level: str = "WARNING"
    materializers: int | None = None
    sim_symbols: int = 8
    sim_minutes: int | None = None  # simulator: a session of this many minutes from 09:30
    signal_strength: float = 0.0
    seed: int = 7
    url: str | None = None  # binance websocket URL (source "binance")
    #: child name (materializer-0, scorer, ledger, writer, feed) -> Prometheus /metrics port
    metrics_ports: dict[str, int] | None = None
    #: without ``metrics_ports``: the children serve base, base + 1, ... in the order
    #: materializers, scorers, ledger, writer, feed (``python -m live run --metrics-port``)
    metrics_port_base: int | None = None


def children(cfg: LiveConfig, spec: ReplaySpec, env: dict[str, str]) -> list[Child]:
    # every worker computes on the source's market (RunConfig.for_source), as training did
    common = ["--shards", str(cfg.shards), "--scorers", str(cfg.scorers), "--source", spec.source]
    if spec.config:
        common += ["--config", spec.config]
    if spec.workdir:
        common += ["--workdir", spec.workdir]
    m = max(1, min(spec.materializers or cfg.shards, cfg.shards))
    registry = ["--registry", spec.registry] if spec.registry else []
    kids = [
        Child(
            f"materializer-{i}",
            [
                "materializer",
                *common,
                "--consumer",
                f"mat-{i}",
                *registry,
                "--own",
                *[str(s) for s in range(cfg.shards) if s % m == i],
            ],
            env=env,
        )
        for i in range(m)
    ]
    for i in range(cfg.scorers):
        args = ["scorer", *common, *registry, "--index", str(i)]
        kids.append(Child(scorer_name(cfg, i), args, env=env))
    kids.append(Child("ledger", ["ledger", *common], env=env))
    if cfg.pg_url:
        kids.append(Child("writer", ["writer", *common], env=env))
    feed = ["feed", *common]
    for flag in (
        "ticks",
        "day",
        "speed",
        "max_seconds",
        "close_real_s",
        "sim_symbols",
        "sim_minutes",
        "signal_strength",
        "seed",
        "url",
    ):
        v = getattr(spec, flag)
        if v is not None:
            feed += [f"--{flag.replace('_', '-')}", str(v)]
    if spec.symbols:
        feed += ["--symbols", *spec.symbols]
    if spec.lockstep:
        feed.append("--lockstep")
    kids.append(Child("feed", feed, restart_on_success=False, env=env))
    ports = dict(spec.metrics_ports or {})
    if not ports and spec.metrics_port_base is not None:
        ports = {k.name: spec.metrics_port_base + i for i, k in enumerate(kids)}
    for kid in kids:
        port = ports.get(kid.name)
        if port is not None:
            kid.argv.extend(["--metrics-port", str(port)])
    return kids


def drained(cfg: LiveConfig, client: redis.Redis) -> bool:
    """True when every consumer group consumed and acknowledged every bus entry, every scorer
    scored the newest boundary that had rows and the shadow ledger stepped it."""
    for s in range(cfg.shards):
        try:
            groups = client.xinfo_groups(cfg.stream(s))
        except redis.ResponseError:
            continue
        for g in groups:
            if int(g.get("pending", 0)) or int(g.get("lag") or 0):
                return False
    rows = [
        int(v) for k, v in client.hgetall(cfg.key("progress")).items() if k.startswith(b"rows:")
    ]
    if not rows:
        return True
    keys = [cfg.key(scorer_name(cfg, i), "last") for i in range(cfg.scorers)]
    lasts = client.mget([*keys, cfg.key("ledger", "last")])
    return all(last is not None and int(last) >= max(rows) for last in lasts)


FILE_SOURCES = ("equity-ticks", "canonical", "binance-replay")
SOURCES = ("simulator", *FILE_SOURCES, "binance")


def check_spec(spec: ReplaySpec) -> None:
    """Every argument of a replay, checked before anything starts or is deleted; raises
    :class:`~tickml.errors.UsageError` naming the first problem."""
    from tickml.config import load_run_config
    from tickml.days import parse_day
    from tickml.validation import symbol_error

    if spec.source not in SOURCES:
        raise UsageError(f"--source {spec.source!r}: choose one of {', '.join(SOURCES)}")
    day = parse_day(spec.day, "--day")
    for s in spec.symbols or ():
        if symbol_error(s) is not None:
            raise UsageError(f"--symbols: {s[:40]!r} is not a valid symbol ({symbol_error(s)})")
    for name in ("speed", "max_seconds"):
        v = getattr(spec, name)
        if v is not None and not (math.isfinite(v) and v > 0):
            raise UsageError(f"--{name.replace('_', '-')} must be > 0, not {v}")
    if spec.close_real_s is not None and not (
        math.isfinite(spec.close_real_s) and spec.close_real_s >= 0
    ):
        raise UsageError(f"--close-real-s must be >= 0, not {spec.close_real_s}")
    if spec.sim_symbols < 1 or (spec.materializers is not None and spec.materializers < 1):
        raise UsageError("--sim-symbols and --materializers must be >= 1")
    if spec.config:
        load_run_config(spec.config)
    if spec.source == "binance":
        if not spec.url or not spec.url.startswith(("ws://", "wss://")):
            raise UsageError(f"--url {spec.url!r}: a websocket URL (wss://...) is needed")
        return
    if spec.source in FILE_SOURCES:
        _check_file_day(spec, day)


def _check_file_day(spec: ReplaySpec, day: dt.date | None) -> None:
    from tickml.ingest import SourceSpec, available_days
    from tickml.market import Market

    if not spec.ticks:
        raise UsageError(f"--source {spec.source} needs --ticks PATH")
    if not os.path.exists(spec.ticks):
        raise UsageError(f"--ticks {spec.ticks}: no such file or folder")
    kind = "binance" if spec.source == "binance-replay" else spec.source
    market = Market.of_run_config(spec.config)  # the feed splits the source by these days
    days = available_days(SourceSpec(kind=kind, path=Path(spec.ticks), market=market))
    if day is None:
        raise UsageError(f"--day is needed: {spec.ticks} holds {_days_text(days)}")
    if day not in days:
        raise UsageError(f"--day {day}: {spec.ticks} has no ticks that day; it holds "
                         f"{_days_text(days)}")


def _days_text(days: list[dt.date]) -> str:
    if not days:
        return "no day with valid ticks"
    return f"{len(days)} day(s), {days[0]} .. {days[-1]}"


def replay(
    cfg: LiveConfig,
    spec: ReplaySpec,
    timeout_s: float = 600.0,
    fresh: bool = True,
    on_drained: Callable[[], None] | None = None,
    wipe_existing: bool = False,
    watch: Callable[[Supervisor, redis.Redis], None] | None = None,
) -> dict[str, Any]:
    """Run the live path on ``spec`` until the feed finished and everything drained.

    Every argument is checked first (:func:`check_spec`). ``fresh``: start from an empty bus
    and no checkpoints: deletes the prefix's keys, but only those of an earlier replay unless
    ``wipe_existing`` (:func:`live.state.check_clearable`). A worker that exits with a
    configuration error (status 2) stops the replay with a :class:`~tickml.errors.UsageError`
    instead of being restarted. ``on_drained``: called once everything drained, while the
    workers still run (e.g. to query what their metrics endpoints served). ``watch``: called
    every 0.2 s with the supervisor while the replay runs (fault tests)."""
    check_spec(spec)
    # the workers' settings: secrets travel in their environment, never on a command line
    env = {"TICKML_REDIS_URL": cfg.redis_url, "TICKML_LOG_LEVEL": spec.log_level}
    if cfg.pg_url:
        env["TICKML_PG_URL"] = cfg.pg_url
    client = redis.Redis.from_url(cfg.redis_url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        where = redact(cfg.redis_url)
        raise RunFailed(f"no Redis at {where}: {exc} (set TICKML_REDIS_URL)") from None
    if fresh:
        state.check_clearable(cfg, client, allow=wipe_existing)
        state.clear(cfg, client)
    state.mark(cfg, client, "replay")
    sup = Supervisor(children(cfg, spec, env))
    t0 = time.perf_counter()
    th = threading.Thread(target=sup.run, kwargs={"until_feed_done": False}, daemon=True)
    th.start()
    feed = next(c for c in sup.children if c.name == "feed")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if watch is not None:
            watch(sup, client)
        if sup.config_error is not None or (feed.finished and drained(cfg, client)):
            break
    else:
        log.error("replay did not drain before the timeout")
    failed: BaseException | None = None
    try:
        if on_drained is not None and sup.config_error is None:
            on_drained()
    except BaseException as exc:  # noqa: BLE001 - stop the workers first, then re-raise
        failed = exc
    sup.stop.set()
    th.join(60)
    if sup.config_error is not None:
        raise UsageError(f"the replay stopped: {sup.config_error}")
    if failed is not None:
        raise failed
    out = summary(cfg, client)
    out["wall_s"] = round(time.perf_counter() - t0, 2)
    out["restarts"] = {c.name: c.restarts for c in sup.children if c.restarts}
    return out


def summary(cfg: LiveConfig, client: redis.Redis) -> dict[str, Any]:
    """Latency percentiles and signal counts from the scorer's per-boundary records."""
    entries = client.xrange(cfg.key("signals", "boundaries"))
    lat = np.array([float(f[b"latency_ms"]) for _, f in entries])
    scored = sum(int(f[b"scored"]) for _, f in entries)
    act = sum(int(f[b"actionable"]) for _, f in entries)

    def pct(q: float) -> float | None:
        return round(float(np.percentile(lat, q)), 3) if lat.size else None

    parts = {}
    for k in ("until_scorer_ms", "read_ms", "vol_ms", "models_ms", "breaker_ms", "decide_ms",
              "publish_ms"):
        v = np.array([float(f[k.encode()]) for _, f in entries if k.encode() in f])
        if v.size:
            parts[k] = {
                "p50": round(float(np.median(v)), 3),
                "p99": round(float(np.percentile(v, 99)), 3),
            }
    return {
        "boundaries": len(entries),
        "parts": parts,
        "rows_scored": scored,
        "signals": act,
        "close_to_signal_ms": {
            "p50": pct(50),
            "p90": pct(90),
            "p99": pct(99),
            "max": round(float(lat.max()), 3) if lat.size else None,
        },
    }
