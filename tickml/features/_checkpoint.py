"""The streaming engine's checkpoint format: an ``.npz`` of numeric arrays (no pickle).

``F`` (float state), ``I`` (int state), ``larr`` (the leader's bar closes) and ``meta`` (JSON
as bytes: feature config, symbols, leader row, day end, late-tick count).
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np


def pack_state(F: np.ndarray, I: np.ndarray, larr: np.ndarray, meta: dict[str, Any]) -> bytes:  # noqa: N803, E741
    buf = io.BytesIO()
    np.savez(
        buf,
        F=F,
        I=I,
        larr=larr,
        meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8),
    )
    return buf.getvalue()


def unpack_state(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """(F float64, I int64, larr, meta) of :func:`pack_state`'s bytes."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        meta = json.loads(z["meta"].tobytes().decode("utf-8"))
        return (
            np.array(z["F"], dtype=np.float64),
            np.array(z["I"], dtype=np.int64),
            np.array(z["larr"]),
            meta,
        )
