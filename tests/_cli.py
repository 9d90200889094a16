"""Running the command lines as a user does (a subprocess, under a timeout) and judging errors."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

TICKML = str(Path(sys.executable).with_name("tickml"))
LIVE = [sys.executable, "-m", "live"]


def run(
    argv: Sequence[str | Path],
    env: dict[str, str] | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """``argv`` with ``env`` on top of this environment (a hang fails the test: TimeoutExpired)."""
    full = {**os.environ, "TICKML_LOG_LEVEL": "WARNING", **(env or {})}
    full.pop("TICKML_DEBUG", None)
    return subprocess.run(
        [str(a) for a in argv], env=full, capture_output=True, text=True, timeout=timeout,
        cwd=cwd,
    )


def error_line(proc: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """The one error line of a failed command: exactly one line on stderr says ``error:``,
    no traceback anywhere, the exit status is ``code``; returns the line."""
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ": error: " in ln]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    for f in fragments:
        assert f in errors[0], (f, errors[0])
    return errors[0]
