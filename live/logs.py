"""Structured (JSON lines) logging for the live workers.

Every text that reaches a log line (message, ``extra=`` values, the traceback) passes through
:func:`tickml.redact.redact`: a connection string quoted anywhere never shows its password."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

from tickml.redact import redact

_STD = set(vars(logging.makeLogRecord({})))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, worker, logger, msg and any ``extra=`` fields."""

    def __init__(self, worker: str) -> None:
        super().__init__()
        self.worker = worker

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "worker": self.worker,
            "pid": os.getpid(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for k, v in vars(record).items():
            if k not in _STD and k not in out:
                keep = isinstance(v, int | float | bool | None)
                out[k] = v if keep else redact(v)
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out)


def setup(worker: str, level: str = "INFO") -> None:
    """JSON logs on stderr for this process (level: the settings' TICKML_LOG_LEVEL)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(worker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
