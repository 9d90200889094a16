"""The scorer -> shadow ledger contract: one stream entry per scorer and boundary.

Fields: ``b`` (the boundary, UTC ns), ``shards`` (the bus shards the scorer owns), the
champion's ``model_version``, ``symbols`` (newline-joined, sorted: the boundary's fresh rows),
``decision`` and ``gate`` (int8) and :data:`FLOAT_FIELDS` (float64), packed little-endian.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

FLOAT_FIELDS = ("score", "mid", "spread", "bid_size", "ask_size", "ret", "vol")


def encode_record(
    b: int,
    shards: list[int],
    symbols: list[str],
    decision: np.ndarray,
    gate: np.ndarray,
    floats: dict[str, np.ndarray],
    model_version: str,
) -> dict[str, Any]:
    """One scorer's rows of boundary ``b`` as a stream entry (packed little-endian arrays)."""
    rec: dict[str, Any] = {
        "b": b,
        "shards": ",".join(map(str, shards)),
        "model_version": model_version,
        "symbols": "\n".join(symbols),
        "decision": np.ascontiguousarray(decision, dtype="<i1").tobytes(),
        "gate": np.ascontiguousarray(gate, dtype="<i1").tobytes(),
    }
    for k in FLOAT_FIELDS:
        rec[k] = np.ascontiguousarray(floats[k], dtype="<f8").tobytes()
    return rec


@dataclass
class Rows:
    """A boundary's rows (from one record, or merged from several)."""

    b: int
    shards: set[int]
    symbols: list[str]
    decision: np.ndarray
    gate: np.ndarray
    f: dict[str, np.ndarray]
    version: np.ndarray

    @classmethod
    def decode(cls, fields: dict[bytes, bytes]) -> Rows:
        syms = fields[b"symbols"].decode()
        symbols = syms.split("\n") if syms else []
        shards = fields[b"shards"].decode()
        return cls(
            b=int(fields[b"b"]),
            shards={int(s) for s in shards.split(",")} if shards else set(),
            symbols=symbols,
            decision=np.frombuffer(fields[b"decision"], dtype="<i1").astype(np.int8),
            gate=np.frombuffer(fields[b"gate"], dtype="<i1").astype(np.int8),
            f={k: np.frombuffer(fields[k.encode()], dtype="<f8").copy() for k in FLOAT_FIELDS},
            version=np.full(len(symbols), fields[b"model_version"].decode(), dtype=object),
        )

    @classmethod
    def merge(cls, parts: list[Rows]) -> Rows:
        """Every scorer's rows of one boundary, sorted by symbol."""
        symbols = [s for p in parts for s in p.symbols]
        order = np.argsort(np.asarray(symbols, dtype=object), kind="stable")

        def cat(get: Any) -> np.ndarray:
            return np.concatenate([get(p) for p in parts])[order]

        return cls(
            b=parts[0].b,
            shards=set().union(*(p.shards for p in parts)),
            symbols=[symbols[i] for i in order],
            decision=cat(lambda p: p.decision),
            gate=cat(lambda p: p.gate),
            f={k: cat(lambda p, k=k: p.f[k]) for k in FLOAT_FIELDS},
            version=cat(lambda p: p.version),
        )
