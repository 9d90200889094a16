"""Start a real server process for a test: free loopback port, wait until it answers, stop
its whole process group afterwards (SIGTERM, then SIGKILL)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(
    argv: Sequence[str],
    ready_url: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 120.0,
    ready: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
) -> Iterator[subprocess.Popen]:
    """Run ``argv`` until the block ends; yields once GET ``ready_url`` satisfies ``ready``."""
    proc = subprocess.Popen(
        list(argv), env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
        stderr=log.open("wb"), start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if ready(httpx.get(ready_url, timeout=2)):
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, f"{argv[0]} exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{argv[0]} not ready within {timeout_s} s"
            time.sleep(0.3)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
