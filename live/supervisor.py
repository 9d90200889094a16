"""Supervisor: runs the live workers as child processes and restarts the ones that die.

Each worker is ``python -m live <role> ...``. SIGTERM/SIGINT to the supervisor is forwarded to
every child (each flushes, acknowledges and exits), then the supervisor exits. A child that
exits non-zero (or is killed) is restarted with a growing delay; the feed is not restarted
once it finished its replay (exit 0). A child that exits with status 2 (a configuration or
usage error: restarting cannot help) stops everything: the supervisor logs which worker and
exits with status 2 itself.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from tickml.errors import EXIT_USAGE

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the supervisor dies, even by kill -9 (Linux
    PR_SET_PDEATHSIG), so no worker outlives its supervisor."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
        except OSError:
            pass


@dataclass
class Child:
    name: str
    argv: list[str]
    restart_on_success: bool = True
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    finished: bool = False
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        # a worker inherits this process's environment (its settings) plus its own variables
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "live", *self.argv], env=env, preexec_fn=_die_with_parent
        )
        log.info("started", extra={"child": self.name, "pid": self.proc.pid})


class Supervisor:
    def __init__(self, children: list[Child], max_delay_s: float = 10.0) -> None:
        self.children = children
        self.max_delay_s = max_delay_s
        self.stop = threading.Event()
        #: set when a child exited with a configuration error (the supervisor then stops)
        self.config_error: str | None = None

    def install_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop.set())

    def run(self, until_feed_done: bool = False, poll_s: float = 0.2) -> int:
        for c in self.children:
            c.start()
        while not self.stop.is_set():
            now = time.monotonic()
            for c in self.children:
                if c.finished or c.proc is None:
                    if not c.finished and now >= c.next_start:
                        c.start()
                    continue
                rc = c.proc.poll()
                if rc is None:
                    continue
                if rc == 0 and not c.restart_on_success:
                    log.info("finished", extra={"child": c.name})
                    c.finished = True
                    continue
                if rc == EXIT_USAGE:
                    self.config_error = (
                        f"worker {c.name} exited with a configuration error (status {rc}; its "
                        "message is above); not restarting it"
                    )
                    log.error("configuration error: stopping", extra={"child": c.name, "rc": rc})
                    c.proc = None
                    c.finished = True
                    self.stop.set()
                    break
                c.restarts += 1
                delay = min(self.max_delay_s, 0.5 * 2 ** min(c.restarts, 5))
                log.warning(
                    "child exited; restarting", extra={"child": c.name, "rc": rc, "delay_s": delay}
                )
                c.proc, c.next_start = None, now + delay
            if until_feed_done and all(
                c.finished for c in self.children if not c.restart_on_success
            ):
                break
            self.stop.wait(poll_s)
        rc = self.shutdown()
        return EXIT_USAGE if self.config_error is not None else rc

    def shutdown(self, timeout_s: float = 30.0) -> int:
        live = [c for c in self.children if c.proc is not None and c.proc.poll() is None]
        for c in live:
            c.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        rc = 0
        deadline = time.monotonic() + timeout_s
        for c in live:
            try:
                c.proc.wait(max(0.1, deadline - time.monotonic()))  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                log.error("child ignored SIGTERM; killing", extra={"child": c.name})
                c.proc.kill()  # type: ignore[union-attr]
                rc = 1
        log.info("supervisor stopped")
        return rc
