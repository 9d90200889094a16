"""`python -m live run`: the supervisor restarts a killed worker and stops everything on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _children(pid: int) -> dict[str, psutil.Process]:
    out = {}
    for c in psutil.Process(pid).children():
        try:
            argv = c.cmdline()
        except psutil.Error:  # a killed child not reaped yet (zombie)
            continue
        if "live" in argv:
            role = argv[argv.index("live") + 1]
            name = role + (argv[argv.index("--consumer") + 1] if "--consumer" in argv else "")
            out[name] = c
    return out


def test_supervisor_restarts_and_stops_gracefully(redis_url: str, tmp_path: Path) -> None:
    # the workers run in child processes: their settings are this environment
    env = {
        **os.environ,
        "TICKML_REDIS_URL": redis_url,
        "TICKML_WORKDIR": str(tmp_path),
        "TICKML_LOG_LEVEL": "INFO",
    }
    env.pop("TICKML_PG_URL", None)
    logf = tmp_path / "sup.log"
    sup = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "live",
            "run",
            "--shards",
            "2",
            "--source",
            "simulator",
            "--sim-symbols",
            "4",
            "--day",
            "2024-03-05",
            "--speed",
            "60",
            "--registry",
            str(tmp_path / "none"),
        ],
        env=env,
        stderr=logf.open("wb"),
    )
    client = redis.Redis.from_url(redis_url)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_children(sup.pid)) < 5:
            time.sleep(0.2)
        kids = _children(sup.pid)
        assert {"feed", "scorer", "ledger", "materializermat-0", "materializermat-1"} <= set(kids)
        # wait for some scored boundaries, then kill -9 one materializer
        while time.monotonic() < deadline and client.xlen("tickml:signals:boundaries") < 3:
            time.sleep(0.2)
        assert client.xlen("tickml:signals:boundaries") >= 3
        victim = kids["materializermat-0"]
        victim.kill()
        at_kill = int(client.hget("tickml:progress", "done:0") or -1)
        while time.monotonic() < deadline:
            now = _children(sup.pid).get("materializermat-0")
            if now is not None and now.pid != victim.pid:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the killed materializer was not restarted")

        # the restarted materializer resumes its shard (from its checkpoint)
        def progress() -> int:
            return int(client.hget("tickml:progress", "done:0") or -1)

        while time.monotonic() < deadline and progress() <= at_kill + 60 * 10**9:
            time.sleep(0.2)
        assert progress() > at_kill + 60 * 10**9
        pids = [p.pid for p in _children(sup.pid).values()]
        sup.send_signal(signal.SIGTERM)
        assert sup.wait(60) == 0
        assert not any(
            psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids
        )
    finally:
        if sup.poll() is None:
            for c in _children(sup.pid).values():
                c.kill()
            sup.kill()
    logs = [json.loads(x) for x in logf.read_text().splitlines() if x.startswith("{")]
    assert any(
        r["msg"] == "child exited; restarting" and r.get("child") == "materializer-0" for r in logs
    )
    assert any(r["msg"] == "restored checkpoint" for r in logs)
    assert any(r["msg"] == "supervisor stopped" for r in logs)


def test_workers_do_not_outlive_a_killed_supervisor(redis_url: str, tmp_path: Path) -> None:
    # the workers run in child processes: their settings are this environment
    env = {**os.environ, "TICKML_REDIS_URL": redis_url, "TICKML_WORKDIR": str(tmp_path)}
    env.pop("TICKML_PG_URL", None)
    sup = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "live",
            "run",
            "--shards",
            "1",
            "--source",
            "simulator",
            "--sim-symbols",
            "2",
            "--day",
            "2024-03-05",
            "--speed",
            "10",
            "--registry",
            str(tmp_path / "none"),
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_children(sup.pid)) < 4:
            time.sleep(0.2)
        pids = [p.pid for p in _children(sup.pid).values()]
        assert len(pids) >= 4  # materializer, scorer, ledger, feed
        sup.kill()  # kill -9: no chance to forward anything
        sup.wait(10)

        def alive() -> list[int]:
            out = []
            for p in pids:
                try:
                    if psutil.Process(p).status() != psutil.STATUS_ZOMBIE:
                        out.append(p)
                except psutil.NoSuchProcess:
                    pass
            return out

        while time.monotonic() < deadline and alive():
            time.sleep(0.2)
        assert not alive(), "workers outlived their supervisor"
    finally:
        for p in psutil.Process().children(recursive=True):
            try:
                if "live" in " ".join(p.cmdline()):
                    p.kill()
            except psutil.Error:
                pass
