"""The book's records: exit reasons, the per-symbol state fields, fills and round trips, typed
positions, and one step's outcome."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

EXIT_REASONS: tuple[str, ...] = ("horizon", "reverse", "eod", "stop_loss", "take_profit")
HORIZON, REVERSE, EOD, STOP_LOSS, TAKE_PROFIT = range(len(EXIT_REASONS))
OPEN = -1  # reason code of an opening fill

SLOT_FIELDS = {  # per-symbol state: name -> (dtype, empty value)
    "side": (np.int8, 0),
    "qty": (np.float64, 0.0),
    "value": (np.float64, 0.0),
    "entry_ts": (np.int64, 0),
    "entry_mid": (np.float64, 0.0),
    "entry_cost": (np.float64, 0.0),
    "entry_vol": (np.float64, np.nan),
    "exit_due": (np.int64, 0),
    "stop_px": (np.float64, np.nan),
    "take_px": (np.float64, np.nan),
    "pos_id": (np.int64, -1),
    "mark": (np.float64, 0.0),
    "mark_ts": (np.int64, 0),
    "mark_spread": (np.float64, 0.0),
    "mark_depth_bid": (np.float64, np.nan),
    "mark_depth_ask": (np.float64, np.nan),
}
FILL_FIELDS = (
    "slot",
    "ts",
    "side",
    "qty",
    "price",
    "cost",
    "slippage",
    "reason",
    "pos_id",
    "value",
)
TRADE_FIELDS = (
    "slot", "side", "entry_ts", "exit_ts", "entry_mid", "exit_mid", "qty", "value", "gross",
    "costs", "reason", "pos_id", "entry_vol",
)  # fmt: skip


@dataclass(frozen=True)
class Position:
    """One open position (times in UTC ns; NaN stop / take levels: none)."""

    symbol: str
    position_id: int
    side: int  # +1 long, -1 short
    qty: float
    value: float  # at entry, in notional units
    entry_ts: int
    entry_mid: float
    entry_vol: float  # the recent volatility known at entry (NaN: unknown)
    exit_due: int  # the time exit: the first row at or after this
    stop_px: float
    take_px: float
    mark: float  # the last mid it was marked at


@dataclass
class Step:
    """What one cross-section did: per row (aligned with the call's symbols) and the fills.

    ``fills``: one entry per side (``side`` +1 buy / -1 sell, ``reason`` OPEN or an exit
    reason); ``trades``: one per closed round trip. ``traded_value``: sum of qty x price of the
    fills, accumulated in the book's order."""

    pnl: np.ndarray
    position: np.ndarray
    gate: np.ndarray
    fills: dict[str, list[np.ndarray]] = field(default_factory=dict)
    trades: dict[str, list[np.ndarray]] = field(default_factory=dict)
    traded_value: float = 0.0

    def __post_init__(self) -> None:
        self.fills = {k: [] for k in FILL_FIELDS}
        self.trades = {k: [] for k in TRADE_FIELDS}


@dataclass(frozen=True)
class Cross:
    """One cross-section as the book executes it: fill time(s), slots, market columns."""

    ts: Any  # int (a step) or per-row int64 (a flatten at the marks)
    slots: np.ndarray
    mid: np.ndarray
    spread: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray


def append(parts: dict[str, list[np.ndarray]], **cols: Any) -> None:
    """Record one batch of fills / trades (copies: the state arrays change afterwards)."""
    for name, v in cols.items():
        parts[name].append(np.array(v, copy=True))


def column(values: object, n: int, fill: float = np.nan) -> np.ndarray:
    if values is None:
        return np.full(n, fill)
    a = np.asarray(values, dtype=np.float64)
    if a.shape != (n,):
        raise ValueError(f"expected shape ({n},), got {a.shape}")
    return a
