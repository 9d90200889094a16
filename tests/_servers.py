"""Start a real server process for a test: free loopback port, wait until it answers, stop
its whole process group afterwards (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A loopback port that is free now, below the kernel's ephemeral range and never the same
    twice in this process. A port from ``bind(0)`` is ephemeral: between picking it and the
    server binding it, an outgoing connection (a scrape, a Redis or PostgreSQL client of a
    concurrent run) can land on it and keep it for minutes; CI once lost a replay to that."""
    low, _ = _ephemeral_range()
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        port = rng.randrange(20000, max(20001, min(low, 32768)))
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")


@contextmanager
def running(
    argv: Sequence[str],
    ready: str | Callable[[], bool],
    log: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120.0,
    cwd: Path | None = None,
    stop_s: float = 10.0,
) -> Iterator[subprocess.Popen]:
    """Run ``argv`` (its stderr into ``log``) until the block ends; yields once the server is
    ready: ``ready`` is a URL that answers GET with 200, or a probe that returns True (an HTTP
    error or a malformed answer from a half-started server counts as not yet). A server that
    exits first fails at once with the end of its log. Stopped with SIGTERM, then after
    ``stop_s`` SIGKILL."""
    probe = ready if callable(ready) else lambda: httpx.get(ready, timeout=2).status_code == 200
    proc = subprocess.Popen(
        list(argv), env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
        stderr=log.open("wb"), start_new_session=True, cwd=cwd,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if probe():
                    break
            except (httpx.HTTPError, ValueError):
                pass
            assert proc.poll() is None, f"{argv[0]} exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{argv[0]} not ready within {timeout_s} s"
            time.sleep(0.3)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=stop_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def graphql(base: str, query: str) -> dict:
    """The ``data`` of a GraphQL query to a Dagster webserver (empty when it has none)."""
    resp = httpx.post(f"{base}/graphql", json={"query": query}, timeout=5)
    return resp.json().get("data") or {}


@contextmanager
def dagster_dev(home: Path, timeout_s: float = 120.0) -> Iterator[str]:
    """`dagster dev -w workspace.yaml` of the project on a free port, its instance in ``home``
    (telemetry off, schedules stopped, workdir ``home/w``); yields the base URL once GraphQL
    serves the asset graph (the code location is loaded)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    base = f"http://127.0.0.1:{free_port()}"
    # `dagster dev` runs in a child process: its settings are this environment, with these
    # (an empty TICKML_SCHEDULES counts as unset: schedules stay stopped locally)
    env = {"DAGSTER_HOME": str(home), "TICKML_WORKDIR": str(home / "w"), "TICKML_SCHEDULES": ""}
    argv = [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml",
            "-h", "127.0.0.1", "-p", base.rsplit(":", 1)[1]]

    def serves_assets() -> bool:
        return bool(graphql(base, "{ assetNodes { assetKey { path } } }").get("assetNodes"))

    log = home / "dagster-dev.log"
    with running(argv, serves_assets, log, env, timeout_s, cwd=REPO, stop_s=30):
        yield base
