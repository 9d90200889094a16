"""Materializer faults: kill -9 mid-day and Redis unavailable for seconds (real processes).

A simulated day (6 symbols, ~150k ticks) is on the bus; a materializer PROCESS consumes it.
In both tests the rows it pushed (its offline log) must equal ``compute_features`` on the same
ticks bit for bit, with no boundary missing or doubled, and the online store must hold the last
boundary's vectors: a restart resumes from the checkpoint plus the pending entries; an outage
is ridden out with backoff and logged.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from _netproxy import TcpProxy
from _servers import free_port

from live.bus import TickBus
from live.config import LiveConfig
from live.feeds import Clock, ReplayFeed
from live.layout import VectorLayout, declare
from live.online import read_vectors
from live.replay import drained
from tickml.features import FeatureConfig, compute_features, feature_names
from tickml.simulator import SimConfig, simulate_day

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY = dt.date(2024, 3, 5)
KEY = ["symbol", "event_timestamp"]


@pytest.fixture(scope="module")
def day_ticks() -> pd.DataFrame:
    return simulate_day(SimConfig(n_symbols=6), DAY).ticks


def _publish(cfg: LiveConfig, ticks: pd.DataFrame) -> None:
    client = redis.Redis.from_url(cfg.redis_url)
    bus = TickBus(client, cfg, leader=FeatureConfig().leader)
    for ev in ReplayFeed(ticks, FeatureConfig()):
        if isinstance(ev, Clock):
            bus.publish_clock(ev.t_ns, ev.wall_ns)
        else:
            bus.publish(ev.frame)
    # no scorer or ledger here: drained() ignores them
    client.mset({cfg.key("scorer", "last"): 2**62, cfg.key("ledger", "last"): 2**62})


def _start(redis_url: str, workdir: Path, log: Path, *extra: str) -> subprocess.Popen:
    # the workers run in child processes: their settings are this environment
    env = {
        **os.environ,
        "TICKML_REDIS_URL": redis_url,
        "TICKML_WORKDIR": str(workdir),
        "TICKML_LOG_LEVEL": "INFO",
    }
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "live",
            "materializer",
            "--shards",
            "1",
            "--own",
            "0",
            "--consumer",
            "mat-0",
            *extra,
        ],
        env=env,
        stderr=log.open("ab"),
    )


def _wait(cond, timeout: float = 120.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


#: a layout holding every feature (declared like a scorer's), so the check covers all of them
FULL = VectorLayout((*feature_names(FeatureConfig()), "mid", "spread"))


def _done(client: redis.Redis, cfg: LiveConfig) -> int:
    v = client.hget(cfg.key("progress"), "done:0")
    return int(v) if v else -1


def _check_rows(workdir: Path, ticks: pd.DataFrame, client: redis.Redis) -> None:
    fc = FeatureConfig()
    names = feature_names(fc)
    want = compute_features(ticks, fc).sort_values(KEY).reset_index(drop=True)
    logs = (workdir / "lake" / "online_log").rglob("*.parquet")
    got = pd.concat(pd.read_parquet(p) for p in logs)
    got = got.sort_values(KEY).reset_index(drop=True)
    assert len(got) == len(want) == 6 * 390
    pd.testing.assert_frame_equal(got[KEY + names], want[KEY + names], check_exact=True)
    syms = sorted(ticks["symbol"].unique())
    vec, ev = read_vectors(client, "tickml", FULL.view, "vector", syms)
    last = want.groupby("symbol").tail(1).set_index("symbol").loc[syms]
    np.testing.assert_array_equal(vec[:, : len(names)], last[names].to_numpy())
    assert (ev == last["event_timestamp"].astype("int64").to_numpy()).all()


def test_kill9_materializer_resumes_exactly(
    day_ticks: pd.DataFrame, redis_url: str, tmp_path: Path
) -> None:
    cfg = LiveConfig(redis_url=redis_url, shards=1, stream_maxlen=1_000_000)
    client = redis.Redis.from_url(redis_url)
    declare(client, cfg.prefix, "test", FULL)  # as a scorer would: every feature packed
    _publish(cfg, day_ticks)
    logf = tmp_path / "mat.log"
    proc = _start(redis_url, tmp_path, logf)
    mid_day = int(pd.Timestamp(f"{DAY} 12:00", tz="America/New_York").value)
    _wait(lambda: _done(client, cfg) >= mid_day)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL
    killed_at = _done(client, cfg)
    assert killed_at < int(pd.Timestamp(f"{DAY} 16:00", tz="America/New_York").value)
    proc = _start(redis_url, tmp_path, logf)
    try:
        _wait(lambda: drained(cfg, client))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0  # graceful: checkpoint, ack, exit 0
    lines = [json.loads(x) for x in logf.read_text().splitlines() if x.startswith("{")]
    assert any(r["msg"] == "restored checkpoint" for r in lines)
    _check_rows(tmp_path, day_ticks, client)


def test_redis_outage_is_ridden_out(
    day_ticks: pd.DataFrame, redis_url: str, tmp_path: Path
) -> None:
    cfg = LiveConfig(redis_url=redis_url, shards=1, stream_maxlen=1_000_000)
    client = redis.Redis.from_url(redis_url)
    declare(client, cfg.prefix, "test", FULL)  # as a scorer would: every feature packed
    _publish(cfg, day_ticks)
    db = redis_url.rsplit("/", 1)[1]
    with TcpProxy("127.0.0.1", 6379) as proxy:
        logf = tmp_path / "mat.log"
        port = free_port()
        proc = _start(
            f"redis://127.0.0.1:{proxy.port}/{db}", tmp_path, logf, "--metrics-port", str(port)
        )
        try:
            mid_day = int(pd.Timestamp(f"{DAY} 11:00", tz="America/New_York").value)
            _wait(lambda: _done(client, cfg) >= mid_day)
            proxy.pause()
            time.sleep(3)
            assert proc.poll() is None, "the materializer died during the outage"
            proxy.resume()
            _wait(lambda: drained(cfg, client))
            scrape = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    lines = [json.loads(x) for x in logf.read_text().splitlines() if x.startswith("{")]
    assert any(r["msg"] == "redis unavailable, retrying" for r in lines)
    assert any(r["msg"] == "redis reachable again" for r in lines)
    errors = [
        ln
        for ln in scrape.splitlines()
        if ln.startswith('tickml_worker_errors_total{kind="redis",worker="mat-0"}')
    ]
    assert errors and float(errors[0].split()[-1]) >= 1
    assert 'tickml_dependency_up{dependency="redis",worker="mat-0"} 1.0' in scrape
    assert "tickml_ticks_total" in scrape and "tickml_online_write_seconds_bucket" in scrape
    _check_rows(tmp_path, day_ticks, client)
