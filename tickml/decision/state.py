"""The decision function's vocabulary and records: the class orders, the gates, the per-symbol
state carried between calls (:class:`DecisionState`, JSON, no pickle) and one call's outcome
(:class:`Decisions`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tickml.decision.config import DayCache

SHORT_CLASSES: tuple[str, ...] = ("UP", "DOWN", "FLAT", "TRAP_UP", "TRAP_DOWN")
LONG_CLASSES: tuple[str, ...] = ("UP", "DOWN", "FLAT")

#: gate names; ``Decisions.gate`` holds indices into this tuple
GATES: tuple[str, ...] = (
    "traded",
    "fallback",
    "stale",
    "no_model",
    "min_confidence",
    "trap",
    "disagree",
    "circuit_breaker",
    "no_trade_window",
    "vol_halt",
    "cooldown",
    "max_trades",
)
(
    TRADED,
    FALLBACK,
    STALE,
    NO_MODEL,
    MIN_CONFIDENCE,
    TRAP,
    DISAGREE,
    CIRCUIT_BREAKER,
    NO_TRADE_WINDOW,
    VOL_HALT,
    COOLDOWN,
    MAX_TRADES,
) = range(len(GATES))

LONG, SHORT, NONE = 1, -1, 0
_DECISION_NAMES = np.array(["NONE", "LONG", "SHORT"])  # indexed by decision % 3
_GATE_NAMES = np.array(GATES)

NEVER = np.iinfo(np.int64).min // 2  # "no trade / no halt yet" (far past, no overflow)


@dataclass(eq=False)
class DecisionState:
    """Per-symbol state carried between calls: last trade, trades today, halts.

    Serialise with :meth:`to_json` / :meth:`from_json` (the live worker persists it).
    """

    symbols: list[str] = field(default_factory=list)
    last_trade_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    halt_until_ns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    trades_today: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    trades_today_total: int = 0
    day_start_ns: int | None = None  # the local day trades_today counts: (start, end]
    day_end_ns: int | None = None
    last_ts_ns: int | None = None
    _index: dict[str, int] = field(default_factory=dict, repr=False)
    _key: Any = field(default=None, repr=False)
    _key_idx: np.ndarray | None = field(default=None, repr=False)
    _day: DayCache | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._index = {s: i for i, s in enumerate(self.symbols)}
        if len(self._index) != len(self.symbols):
            raise ValueError("duplicate symbols in state")

    # -- symbols -------------------------------------------------------------------------------
    def resolve(self, symbols: Sequence[str] | np.ndarray) -> np.ndarray:
        """Indices of ``symbols`` in the state, adding unknown ones. Cached for a repeated
        universe (the live worker and the backtest call with the same symbols every time)."""
        key = self._key
        if key is not None and self._key_idx is not None:
            if isinstance(symbols, np.ndarray):
                if (
                    isinstance(key, np.ndarray)
                    and key.shape == symbols.shape
                    and np.array_equal(key, symbols)
                ):
                    return self._key_idx
            elif isinstance(key, list) and symbols == key:
                return self._key_idx
        names = [str(s) for s in symbols]
        if len(set(names)) != len(names):
            raise ValueError("duplicate symbols in one call")
        new = [s for s in names if s not in self._index]
        if new:
            base = len(self.symbols)
            self.symbols.extend(new)
            self._index.update({s: base + i for i, s in enumerate(new)})
            fill = np.full(len(new), NEVER, dtype=np.int64)
            self.last_trade_ns = np.concatenate([self.last_trade_ns, fill])
            self.halt_until_ns = np.concatenate([self.halt_until_ns, fill])
            self.trades_today = np.concatenate([self.trades_today, np.zeros(len(new), np.int64)])
        idx = np.fromiter((self._index[s] for s in names), dtype=np.int64, count=len(names))
        self._key = symbols.copy() if isinstance(symbols, np.ndarray) else list(symbols)
        self._key_idx = idx
        return idx

    # -- persistence ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def opt(a: np.ndarray) -> list[int | None]:
            return [None if v <= NEVER else int(v) for v in a.tolist()]

        return {
            "version": 1,
            "symbols": list(self.symbols),
            "last_trade_ns": opt(self.last_trade_ns),
            "halt_until_ns": opt(self.halt_until_ns),
            "trades_today": [int(v) for v in self.trades_today.tolist()],
            "trades_today_total": int(self.trades_today_total),
            "day_start_ns": self.day_start_ns,
            "day_end_ns": self.day_end_ns,
            "last_ts_ns": self.last_ts_ns,
            "last_ts": None
            if self.last_ts_ns is None
            else pd.Timestamp(self.last_ts_ns, tz="UTC").isoformat(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DecisionState:
        if data.get("version") != 1:
            raise ValueError(f"unknown DecisionState version {data.get('version')!r}")

        def arr(values: list[int | None]) -> np.ndarray:
            return np.array([NEVER if v is None else v for v in values], dtype=np.int64)

        n = len(data["symbols"])
        state = cls(
            symbols=list(data["symbols"]),
            last_trade_ns=arr(data["last_trade_ns"]),
            halt_until_ns=arr(data["halt_until_ns"]),
            trades_today=np.array(data["trades_today"], dtype=np.int64).reshape(n),
            trades_today_total=int(data["trades_today_total"]),
            day_start_ns=data["day_start_ns"],
            day_end_ns=data["day_end_ns"],
            last_ts_ns=data["last_ts_ns"],
        )
        if not (state.last_trade_ns.size == state.halt_until_ns.size == n):
            raise ValueError("state arrays do not match the symbols")
        return state

    @classmethod
    def from_json(cls, text: str) -> DecisionState:
        return cls.from_dict(json.loads(text))


@dataclass(frozen=True, eq=False)
class Decisions:
    """The decisions of one call, aligned with its ``symbols``."""

    timestamp_ns: int
    symbols: Sequence[str] | np.ndarray
    score: np.ndarray  # P_short(UP) - P_short(DOWN); NaN when not scored
    long_score: np.ndarray  # P_long(UP) - P_long(DOWN); NaN when not available
    decision: np.ndarray  # int8: +1 LONG, -1 SHORT, 0 NONE
    gate: np.ndarray  # int8 index into GATES
    circuit_breaker_tripped: bool = False

    @property
    def decision_names(self) -> np.ndarray:
        return _DECISION_NAMES[self.decision % 3]

    @property
    def gate_names(self) -> np.ndarray:
        return _GATE_NAMES[self.gate]

    def gate_counts(self) -> dict[str, int]:
        counts = np.bincount(self.gate, minlength=len(GATES))
        return {g: int(c) for g, c in zip(GATES, counts, strict=True) if c}

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "symbol": np.asarray(self.symbols, dtype=object),
                "event_timestamp": pd.Timestamp(self.timestamp_ns, tz="UTC"),
                "score": self.score,
                "long_score": self.long_score,
                "decision": self.decision_names,
                "gate": self.gate_names,
            }
        )
