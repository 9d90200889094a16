"""The tick writer against real Redis and PostgreSQL: exactly once through crashes and outages."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from _netproxy import TcpProxy
from prometheus_client import REGISTRY

from live.bus import TickBatch, TickBus, decode_entry
from live.config import LiveConfig
from live.writer import TickWriter
from tickml.schema import TICK_COLUMNS
from tickml.simulator import SimConfig, simulate_day
from tickml.store.postgres import TickStore

REPO = Path(__file__).resolve().parents[1]
DAY = dt.date(2024, 1, 8)
SYMBOLS = ["SPY", "AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG"]


def sim_ticks(close: dt.time = dt.time(10, 0)) -> pd.DataFrame:
    cfg = SimConfig(symbols=SYMBOLS, leader="SPY", session_close=close)
    t = simulate_day(cfg, DAY).ticks
    return t.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


def expected(ticks: pd.DataFrame) -> pd.DataFrame:
    out = ticks[list(TICK_COLUMNS)].copy()
    out["ts"] = out["ts"].dt.ceil("us")  # the store keeps microseconds, rounded up
    return out.sort_values(["symbol", "ts", "seq"], kind="stable").reset_index(drop=True)


def assert_exactly_once(pg_url: str, ticks: pd.DataFrame) -> None:
    with TickStore(pg_url) as store:
        got = store.read(DAY)
        assert store.count() == len(ticks)
    assert not got.duplicated(["symbol", "seq"]).any()
    pd.testing.assert_frame_equal(got, expected(ticks))


def group_state(r: redis.Redis, cfg: LiveConfig, group: str = "writer") -> tuple[int, int]:
    """(pending, undelivered) summed over the shards; -1 while unknown."""
    pending = lag = 0
    for s in range(cfg.shards):
        try:
            groups = r.xinfo_groups(cfg.stream(s))
        except redis.ResponseError:
            return -1, -1
        g = [g for g in groups if g["name"] == group.encode()]
        if not g or g[0]["lag"] is None:
            return -1, -1
        pending += g[0]["pending"]
        lag += g[0]["lag"]
    return pending, lag


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def publish_slowly(
    bus: TickBus, ticks: pd.DataFrame, parts: int, pause_s: float
) -> threading.Thread:
    def go() -> None:
        for idx in np.array_split(np.arange(len(ticks)), parts):
            bus.publish(ticks.iloc[idx], src="sim")
            bus.publish_clock(int(ticks["ts"].iloc[idx[-1]].value))
            time.sleep(pause_s)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


def stored(pg_url: str) -> int:
    try:
        with TickStore(pg_url) as store:
            return store.count()
    except Exception:  # noqa: BLE001 - schema not created yet
        return 0


@pytest.fixture()
def r(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.integration
def test_writer_end_to_end_exactly_once(r, redis_url, fresh_pg_url) -> None:
    cfg = LiveConfig(redis_url=redis_url, pg_url=fresh_pg_url, batch_ticks=500)
    ticks = sim_ticks()
    bus = TickBus(r, cfg, leader="SPY")
    bus.publish(ticks)
    bus.publish_clock(int(ticks["ts"].iloc[-1].value))
    before = metric("tickml_ticks_total", worker="writer")
    writer = TickWriter(cfg, block_ms=10)
    inserted = 0
    while group_state(r, cfg) != (0, 0):
        inserted += writer.step()
    assert inserted == len(ticks)
    # the leader was broadcast to 4 shards but is stored once (from its owner shard)
    assert metric("tickml_ticks_total", worker="writer") - before == len(ticks)
    # a replay of the whole day (feed reconnect) changes nothing
    bus.publish(ticks)
    while group_state(r, cfg) != (0, 0):
        inserted += writer.step()
    writer.close()
    assert inserted == len(ticks)
    assert_exactly_once(fresh_pg_url, ticks)


def _spawn(redis_url: str, pg_url: str, *args: str) -> subprocess.Popen:
    # the workers run in child processes: their settings are this environment
    env = {**os.environ, "TICKML_REDIS_URL": redis_url, "TICKML_PG_URL": pg_url}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", "live.writer", "--consumer", "writer-0", *args],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )


def _pending_of(r: redis.Redis, cfg: LiveConfig, consumer: str) -> int:
    total = 0
    for s in range(cfg.shards):
        for c in r.xinfo_consumers(cfg.stream(s), "writer"):
            if c["name"] == consumer.encode():
                total += c["pending"]
    return total


@pytest.mark.integration
@pytest.mark.slow
def test_writer_killed_mid_stream_restarts_exactly_once(r, redis_url, fresh_pg_url) -> None:
    cfg = LiveConfig(redis_url=redis_url, pg_url=fresh_pg_url)
    ticks = sim_ticks(close=dt.time(11, 0))
    proc = _spawn(redis_url, fresh_pg_url)
    try:
        wait_for(lambda: group_state(r, cfg)[0] == 0, 30, "the writer's consumer group")
        pub = publish_slowly(TickBus(r, cfg), ticks, parts=40, pause_s=0.05)
        wait_for(lambda: stored(fresh_pg_url) > 0, 30, "the first ticks in the store")
        # freeze the writer until it holds un-acknowledged entries, then kill -9 it
        for _ in range(500):
            proc.send_signal(signal.SIGSTOP)
            if _pending_of(r, cfg, "writer-0") > 0:
                break
            proc.send_signal(signal.SIGCONT)
            time.sleep(0.003)
        held = _pending_of(r, cfg, "writer-0")
        proc.kill()
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        assert held > 0 and pub.is_alive()  # killed mid-stream, with entries in flight
        assert stored(fresh_pg_url) < len(ticks)
        proc = _spawn(redis_url, fresh_pg_url)
        pub.join(30)
        wait_for(lambda: group_state(r, cfg) == (0, 0), 30, "the bus to drain")
        wait_for(lambda: stored(fresh_pg_url) == len(ticks), 10, "every tick stored")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err[-2000:]
    assert_exactly_once(fresh_pg_url, ticks)


@pytest.mark.integration
@pytest.mark.slow
def test_sigterm_stops_gracefully_with_nothing_pending(r, redis_url, fresh_pg_url) -> None:
    cfg = LiveConfig(redis_url=redis_url, pg_url=fresh_pg_url, batch_ticks=200)
    ticks = sim_ticks(close=dt.time(11, 0))
    proc = _spawn(redis_url, fresh_pg_url)
    wait_for(lambda: group_state(r, cfg)[0] == 0, 30, "the writer's consumer group")
    pub = publish_slowly(TickBus(r, cfg), ticks, parts=40, pause_s=0.05)
    wait_for(lambda: stored(fresh_pg_url) > 0, 30, "the first ticks in the store")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    pub.join(30)
    assert proc.returncode == 0, err[-2000:]
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(rec["msg"] == "signal SIGTERM: stopping" for rec in lines)
    assert any(rec["msg"] == "writer stopped" and rec["worker"] == "writer" for rec in lines)
    assert _pending_of(r, cfg, "writer-0") == 0
    # the store holds exactly the ticks of the entries delivered to the writer (all acked)
    delivered = []
    for s in range(cfg.shards):
        last = [g for g in r.xinfo_groups(cfg.stream(s)) if g["name"] == b"writer"][0]
        for entry_id, fields in r.xrange(cfg.stream(s), max=last["last-delivered-id"]):
            e = decode_entry(s, entry_id, fields)
            if e.kind == "t":
                own = np.array([cfg.shard_of(x) == s for x in e.batch.symbols])
                delivered.append(e.batch.take(own))
    got = TickBatch.concat(delivered).to_frame()
    assert 0 < len(got) < len(ticks)  # stopped mid-stream
    assert_exactly_once(fresh_pg_url, got)


def _run_with_outage(
    r: redis.Redis, cfg: LiveConfig, writer_cfg: LiveConfig, proxy: TcpProxy, dep: str
) -> pd.DataFrame:
    ticks = sim_ticks()
    writer = TickWriter(writer_cfg, block_ms=20, count=4)
    stop = threading.Event()
    worker = threading.Thread(target=writer.run, args=(stop,), daemon=True)
    worker.start()
    pub = publish_slowly(TickBus(r, cfg), ticks, parts=50, pause_s=0.06)
    wait_for(lambda: stored(cfg.pg_url) > 0, 20, "the first ticks in the store")
    proxy.pause()
    paused_at = stored(cfg.pg_url)
    time.sleep(3.0)
    assert stored(cfg.pg_url) == paused_at or dep == "redis"  # nothing written via a dead link
    assert metric("tickml_dependency_up", worker="writer", dependency=dep) == 0
    proxy.resume()
    pub.join(30)
    wait_for(lambda: group_state(r, cfg) == (0, 0), 30, "the bus to drain")
    stop.set()
    worker.join(20)
    assert not worker.is_alive()
    assert metric("tickml_dependency_up", worker="writer", dependency=dep) == 1
    return ticks


@pytest.mark.integration
@pytest.mark.slow
def test_postgres_outage_is_survived(r, redis_url, fresh_pg_url, caplog) -> None:
    with TcpProxy("127.0.0.1", 5432) as proxy:
        host = fresh_pg_url.split("@", 1)[1].split("/", 1)[0]
        via_proxy = fresh_pg_url.replace(f"@{host}/", f"@{proxy.url_host}/")
        cfg = LiveConfig(redis_url=redis_url, pg_url=fresh_pg_url, batch_ticks=300)
        errors = metric("tickml_worker_errors_total", worker="writer", kind="postgres")
        with caplog.at_level(logging.INFO, logger="live.writer"):
            ticks = _run_with_outage(
                r, cfg, cfg.model_copy(update={"pg_url": via_proxy}), proxy, "postgres"
            )
    assert metric("tickml_worker_errors_total", worker="writer", kind="postgres") > errors
    down = [x for x in caplog.records if x.getMessage().startswith("postgres unavailable")]
    assert down and all(x.dependency == "postgres" and x.retry_in_s <= 5 for x in down)
    assert [x.retry_in_s for x in down[:3]] == [0.1, 0.2, 0.4]  # back-off doubles
    up = [x for x in caplog.records if x.getMessage() == "postgres recovered"]
    assert len(up) == 1 and up[0].outage_s >= 2.5
    assert_exactly_once(fresh_pg_url, ticks)


@pytest.mark.integration
@pytest.mark.slow
def test_redis_outage_is_survived(r, redis_url, fresh_pg_url, caplog) -> None:
    with TcpProxy("127.0.0.1", 6379) as proxy:
        via_proxy = redis_url.replace("127.0.0.1:6379", proxy.url_host)
        assert via_proxy != redis_url
        cfg = LiveConfig(redis_url=redis_url, pg_url=fresh_pg_url, batch_ticks=300)
        errors = metric("tickml_worker_errors_total", worker="writer", kind="redis")
        with caplog.at_level(logging.INFO, logger="live.writer"):
            ticks = _run_with_outage(
                r, cfg, cfg.model_copy(update={"redis_url": via_proxy}), proxy, "redis"
            )
    assert metric("tickml_worker_errors_total", worker="writer", kind="redis") > errors
    down = [x for x in caplog.records if x.getMessage().startswith("redis unavailable")]
    assert down and all(x.dependency == "redis" for x in down)
    up = [x for x in caplog.records if x.getMessage() == "redis recovered"]
    assert len(up) == 1 and up[0].outage_s >= 2.5
    assert_exactly_once(fresh_pg_url, ticks)


@pytest.mark.unit
def test_writer_needs_a_postgres_url() -> None:
    with pytest.raises(ValueError, match="TICKML_PG_URL"):
        TickWriter(LiveConfig(pg_url=None))
