"""Tick to signal through the live path (real Redis, real worker processes).

Two rows:

- ``materializer-throughput``: a day of ticks is published to the bus first (one shard), then
  ONE materializer (in this process, the production code path: bus decode, (symbol, seq)
  filter, streaming features, boundary snapshots, online writes, offline log, checkpoints)
  consumes it as fast as it can. ``value`` = ticks/s sustained until drained. Target 50,000.
- ``tick-to-signal``: the same day replayed at full speed in lockstep through feed ->
  bus -> materializer processes -> scorer process (a small LightGBM champion trained on another
  simulated day) -> signals; ``p50_ms``/``p99_ms`` from the interval close (the feed's clock
  marker) to the boundary's signals being published, over every boundary with rows.

Data: a simulated day (default) or a real one (``source=equity-ticks ticks=PATH day=D``).
Redis: ``TICKML_BENCH_REDIS_URL`` (default db 13; that db is flushed).
"""

from __future__ import annotations

import datetime as dt
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import redis

from tickml.settings import Settings

DEFAULT_REDIS = "redis://127.0.0.1:6379/13"


def _ticks(
    source: str, ticks: str | None, day: dt.date, symbols: list[str] | None, sim_symbols: int = 20
) -> Any:
    from tickml.ingest import SourceSpec, load_day

    spec = SourceSpec(
        kind=source,
        path=Path(ticks) if ticks else None,
        symbols=tuple(symbols) if symbols else None,
        sim={"n_symbols": sim_symbols},
    )
    return load_day(spec, day).ticks


def _champion(root: Path, day: dt.date) -> None:
    from tickml.features import FeatureConfig, compute_features, feature_names
    from tickml.labels import CLASSES_3, CLASSES_5, make_labels
    from tickml.models.registry import ModelRegistry
    from tickml.models.train import TrainConfig, train_model

    t = _ticks("simulator", None, day, None, 20)
    f = compute_features(t, FeatureConfig())
    ds = f.merge(make_labels(t, f[["symbol", "event_timestamp"]]), on=["symbol", "event_timestamp"])
    feats = feature_names(FeatureConfig())
    cfg = TrainConfig(n_estimators=100, num_leaves=31)
    h = len(ds) // 2
    models = {
        name: train_model(
            ds[feats][:h],
            ds[f"label_{name}"][:h],
            ds[feats][h:],
            ds[f"label_{name}"][h:],
            cls,
            cfg,
            feats,
        )
        for name, cls in (("short", CLASSES_5), ("long", CLASSES_3))
    }
    reg = ModelRegistry(root)
    reg.set_champion(reg.save(models))


def throughput(redis_url: str, ticks: Any, workdir: str) -> dict[str, Any]:
    from live.bus import TickBus
    from live.config import LiveConfig
    from live.feeds import ReplayFeed
    from live.materializer import run_materializer
    from live.replay import drained
    from tickml.features import FeatureConfig

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    cfg = LiveConfig(
        redis_url=redis_url, pg_url=None, shards=1, stream_maxlen=10_000_000, online_log_dir=workdir
    )
    bus = TickBus(client, cfg, leader=FeatureConfig().leader)
    n, last_clock = 0, -1
    for ev in ReplayFeed(ticks, FeatureConfig()):
        if hasattr(ev, "frame"):
            bus.publish(ev.frame)
            n += len(ev.frame)
        else:
            bus.publish_clock(ev.t_ns, ev.wall_ns)
            last_clock = ev.t_ns
    client.set(cfg.key("scorer", "last"), 2**62)  # no scorer in this row
    stop = threading.Event()
    th = threading.Thread(target=run_materializer, args=(cfg, [0], stop), daemon=True)
    t0 = time.perf_counter()
    th.start()

    def done() -> int:
        v = client.hget(cfg.key("progress"), "done:0")
        return int(v) if v else -1

    while done() < last_clock or not drained(cfg, client):
        time.sleep(0.005)
    sec = time.perf_counter() - t0
    stop.set()
    th.join(30)
    return {
        "name": "materializer-throughput",
        "value": round(n / sec),
        "unit": "ticks/s",
        "ticks": n,
        "seconds": round(sec, 3),
        "target": 50_000,
        "includes": "bus read+decode, dedup, features, snapshots, online writes, log",
    }


def run(
    source: str = "simulator",
    ticks: str | None = None,
    day: str = "2024-03-05",
    symbols: list[str] | None = None,
    sim_symbols: int = 20,
    shards: int = 2,
    materializers: int | None = None,
) -> list[dict[str, Any]]:
    from live.config import LiveConfig
    from live.replay import ReplaySpec, replay

    redis_url = Settings.from_env().bench_redis_url or DEFAULT_REDIS
    d = dt.date.fromisoformat(day)
    frame = _ticks(source, ticks, d, symbols, sim_symbols)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(throughput(redis_url, frame, tmp))
        redis.Redis.from_url(redis_url).flushdb()
        _champion(Path(tmp) / "registry", d - dt.timedelta(days=7))
        cfg = LiveConfig(redis_url=redis_url, pg_url=None, shards=shards)
        out = replay(
            cfg,
            ReplaySpec(
                source=source,
                ticks=ticks,
                day=day,
                symbols=tuple(symbols) if symbols else None,
                registry=str(Path(tmp) / "registry"),
                workdir=tmp,
                materializers=materializers,
                sim_symbols=sim_symbols,
            ),
        )
    lat = out["close_to_signal_ms"]
    rows.append(
        {
            "name": "tick-to-signal",
            "p50_ms": lat["p50"],
            "p99_ms": lat["p99"],
            "max_ms": lat["max"],
            "unit": "ms",
            "boundaries": out["boundaries"],
            "rows_scored": out["rows_scored"],
            "signals": out["signals"],
            "ticks": len(frame),
            "symbols": int(frame["symbol"].nunique()),
            "shards": shards,
            "wall_s": out["wall_s"],
            "budget_p99_ms": 50,
            "mode": "lockstep full-speed replay",
        }
    )
    return rows
