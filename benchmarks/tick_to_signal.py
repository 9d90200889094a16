"""Tick to signal through the live path (real Redis, real worker processes), paced as live.

Rows:

- ``tick-to-signal`` per universe size (default 20, 500, 5,000 symbols): a simulated session
  replayed **paced** (``speed`` x real time: the interval's ticks arrive spread over the
  interval, as live; the speeds are ones the materializers sustain here; the
  :data:`CLOSE_REAL_S` market seconds on each side of every close at real time, so the close
  is met and scored under the arrival rate live operation has: at 20x throughout, the second
  before a close arrived in its last 50 ms of wall time, the materializers met every close
  with 20x the live backlog, and the next interval's 20x ticks competed with the scorer) through
  feed -> bus -> materializer processes -> scorer process (the
  pipeline's default champion, :func:`benchmarks.cross_section.champion_registry`, compiled
  runtime) -> signals. ``p50_ms``/``p99_ms``: from the interval close (the feed's clock marker)
  to the boundary's signals published, over every boundary with rows; ``parts``: ``queued``
  (close -> the slowest shard starts the boundary: the ticks still to apply), the
  materializers' snapshot and online write, ``announce`` (close -> the last shard's
  announcement: snapshot + write + announce, and any backlog: this is the proof the interval's
  ticks were consumed before the close), then the scorer's read, recent volatility, inference,
  decision, publish; ``per_symbol_us``: p50 / symbols. Workers start (and warm up) before the
  first tick.
- ``materializer-throughput`` per number of materializer processes (1, 2): a session's ticks
  are on the bus first (2 shards), then the processes drain it as fast as they can (decode,
  dedup, features, snapshots, online writes to both views, offline log, checkpoints);
  ``value`` = ticks/s.

Redis: ``TICKML_BENCH_REDIS_URL`` (default db 13; flushed).
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

from tickml.settings import Settings

DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
#: symbols -> (session minutes, speed x real time): paces the materializers sustain on 2 cores
PLAN = {20: (30, 60.0), 500: (40, 20.0), 5000: (12, 4.0)}
#: market seconds on each side of every close replayed at real time (ReplayFeed.close_real_s)
CLOSE_REAL_S = 1.0


def _pct(v: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(v, q)), 3) if v.size else None


def _stats(v: list[float]) -> dict[str, float | None]:
    a = np.asarray(v, dtype=np.float64)
    return {"p50": _pct(a, 50), "p99": _pct(a, 99)}


def _parts(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Per boundary: the materializers' parts (the slowest shard) and the scorer's parts."""
    ann: dict[int, list[dict[bytes, bytes]]] = {}
    for _, f in client.xrange(f"{prefix}:boundaries"):
        if int(f[b"rows"]):
            ann.setdefault(int(f[b"b"]), []).append(f)
    mat: dict[str, list[float]] = {"queued": [], "snapshot": [], "online_write": [],
                                   "announce": []}  # fmt: skip
    for shards in ann.values():
        mat["queued"].append(max(float(f.get(b"queued_ms", 0)) for f in shards))
        mat["snapshot"].append(max(float(f.get(b"snapshot_ms", 0)) for f in shards))
        mat["online_write"].append(max(float(f.get(b"write_ms", 0)) for f in shards))
        mat["announce"].append(
            max((int(f[b"done_wall"]) - int(f[b"close_wall"])) / 1e6 for f in shards)
        )
    out = {k: _stats(v) for k, v in mat.items()}
    recs = [f for _, f in client.xrange(f"{prefix}:signals:boundaries")]
    for k, name in (("read_ms", "read"), ("vol_ms", "recent_vol"), ("models_ms", "inference"),
                    ("decide_ms", "decide"), ("publish_ms", "publish"),
                    ("until_scorer_ms", "close_to_scorer")):
        out[name] = _stats([float(f[k.encode()]) for f in recs if k.encode() in f])
    return out


def paced(url: str, registry: Path, n: int, minutes: int, speed: float, shards: int,
          materializers: int, workdir: str, close_real_s: float = CLOSE_REAL_S) -> dict[str, Any]:
    from live.config import LiveConfig
    from live.replay import ReplaySpec, replay

    redis.Redis.from_url(url).flushdb()
    cfg = LiveConfig(redis_url=url, pg_url=None, shards=shards, online_log_dir=workdir)
    out = replay(
        cfg,
        ReplaySpec(source="simulator", day="2024-03-05", registry=str(registry), speed=speed,
                   lockstep=False, materializers=materializers, sim_symbols=n,
                   sim_minutes=minutes, workdir=workdir, close_real_s=close_real_s),
        timeout_s=minutes * (60 / speed + 2 * close_real_s) + 600,
    )
    client = redis.Redis.from_url(url)
    lat = out["close_to_signal_ms"]
    runtimes = {f.get(b"runtime", b"").decode()
                for _, f in client.xrange(cfg.key("signals", "boundaries"))}
    return {
        "name": "tick-to-signal",
        "value": lat["p50"],
        "unit": f"ms, interval close -> signals, {n} symbols, paced {speed:g}x real time "
        f"({close_real_s:g} s on each side of every close at 1x)",
        "symbols": n,
        "p50_ms": lat["p50"],
        "p99_ms": lat["p99"],
        "max_ms": lat["max"],
        "per_symbol_us": round(lat["p50"] / n * 1e3, 3) if lat["p50"] else None,
        "parts_ms": _parts(client, cfg.prefix),
        "boundaries": out["boundaries"],
        "rows_scored": out["rows_scored"],
        "signals": out["signals"],
        "speed": speed,
        "session_minutes": minutes,
        "shards": shards,
        "materializers": materializers,
        "scorers": 1,
        "runtime": sorted(runtimes),
        "restarts": out["restarts"],
        "wall_s": out["wall_s"],
        "target_p99_ms": 20 if n <= 500 else 50,
        "close_real_s": close_real_s,
        "mode": "paced replay (clock markers at each close, ticks spread over the interval; the "
        "close_real_s market seconds on each side of every close at real time, as live "
        "meets and scores it)",
    }


def throughput(url: str, n: int, minutes: int, procs: int, shards: int,
               workdir: str) -> dict[str, Any]:
    """Ticks/s of ``procs`` materializer processes draining a session from the bus."""
    from live.bus import TickBus
    from live.config import LiveConfig
    from live.feeds import ReplayFeed
    from live.replay import drained
    from tickml.features import FeatureConfig
    from tickml.ingest import SourceSpec, load_day

    client = redis.Redis.from_url(url)
    client.flushdb()
    session = (dt.datetime(2000, 1, 1, 9, 30) + dt.timedelta(minutes=minutes)).time()
    spec = SourceSpec(kind="simulator", sim={"n_symbols": n, "session_close": session})
    ticks = load_day(spec, dt.date(2024, 3, 5)).ticks
    cfg = LiveConfig(redis_url=url, pg_url=None, shards=shards, stream_maxlen=10_000_000,
                     online_log_dir=workdir)
    bus = TickBus(client, cfg, leader=FeatureConfig().leader)
    last_clock = -1
    for ev in ReplayFeed(ticks, FeatureConfig()):
        if hasattr(ev, "frame"):
            bus.publish(ev.frame)
        else:
            bus.publish_clock(ev.t_ns, ev.wall_ns)
            last_clock = ev.t_ns
    # no scorer or ledger in this row
    client.mset({cfg.key("scorer", "last"): 2**62, cfg.key("ledger", "last"): 2**62})
    env = {**os.environ, "TICKML_REDIS_URL": url, "TICKML_LOG_LEVEL": "WARNING",
           "TICKML_WORKDIR": workdir}
    kids = []
    for i in range(procs):
        own = [str(s) for s in range(shards) if s % procs == i]
        kids.append(subprocess.Popen(
            [sys.executable, "-m", "live", "materializer", "--shards", str(shards), "--own", *own,
             "--consumer", f"mat-{i}"], env=env, cwd=workdir))
    try:
        ready = [f"mat:{s}" for s in range(shards)]
        while not all(client.hmget(cfg.key("ready"), ready)):
            time.sleep(0.02)
        t0 = time.perf_counter()
        fields = [f"done:{s}" for s in range(shards)]
        while True:
            done = [int(v) if v else -1 for v in client.hmget(cfg.key("progress"), fields)]
            if min(done) >= last_clock and drained(cfg, client):
                break
            time.sleep(0.005)
        sec = time.perf_counter() - t0
    finally:
        for k in kids:
            k.terminate()
        for k in kids:
            k.wait(60)
    return {
        "name": "materializer-throughput",
        "value": round(len(ticks) / sec),
        "unit": f"ticks/s, {procs} materializer process(es), full speed from the bus",
        "processes": procs,
        "shards": shards,
        "ticks": len(ticks),
        "symbols": n,
        "seconds": round(sec, 3),
        "includes": "bus read+decode, dedup, features, snapshots, both online views, log, "
        "checkpoints",
    }


def run(
    symbols: int | str = "20,500,5000",
    shards: int = 2,
    materializers: int = 2,
    registry: str | None = None,
    throughput_symbols: int = 500,
    throughput_minutes: int = 15,
    sim_days: int = 5,
    sim_symbols: int = 10,
    seed: int = 11,
    speed: float | None = None,
    minutes: int | None = None,
    close_real_s: float = CLOSE_REAL_S,
) -> list[dict[str, Any]]:
    """``speed``/``minutes``: override :data:`PLAN` for every size (a loaded machine's
    materializers may not sustain the default paces: ``materializer_lag`` grows);
    ``close_real_s``: 0 replays every second at ``speed``."""
    from benchmarks.cross_section import champion_registry

    url = Settings.from_env().bench_redis_url or DEFAULT_REDIS
    reg = champion_registry(sim_days, sim_symbols, seed, registry)
    load = [round(v, 2) for v in os.getloadavg()]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tickml-bench-t2s-") as tmp:
        for n in (int(s) for s in str(symbols).split(",")):
            m, v = PLAN.get(n, (10, max(1.0, 20_000 / max(n, 1))))
            rows.append(paced(url, reg, n, minutes or m, speed or v, shards, materializers, tmp,
                              close_real_s))
        for procs in (1, 2):
            rows.append(throughput(url, throughput_symbols, throughput_minutes, procs,
                                   shards, tmp))
    redis.Redis.from_url(url).flushdb()
    one, two = rows[-2]["value"], rows[-1]["value"]
    rows[-1]["scaling_vs_1_process"] = round(two / one, 2)
    for r in rows:
        r["loadavg_at_start"] = load
        r["cpus"] = os.cpu_count()
        r["registry"] = str(Path(reg))
    return rows
