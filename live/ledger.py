"""Paper-trading ledger (shadow mode): positions and P&L from the live decisions.

A LONG (SHORT) decision on a flat symbol opens one unit at the ask (bid) of the boundary's
book; the position is closed after ``paper_hold_bars`` boundaries at the bid (ask), so the
spread is paid both ways. P&L is in basis points of the entry price. Open positions live in
Redis (a restart keeps them); closed round trips go to PostgreSQL ``paper_fills``.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import redis

from live.config import LiveConfig
from live.sinks import SignalStore
from tickml.decision import Decisions

log = logging.getLogger(__name__)


class PaperLedger:
    def __init__(
        self,
        config: LiveConfig,
        client: redis.Redis,
        store: SignalStore | None,
        key: str | None = None,
    ) -> None:
        self.cfg, self.r, self.store = config, client, store
        self.key = key or config.key("ledger")  # one ledger per scorer (its own symbols)
        raw = client.get(self.key)
        data = json.loads(raw) if raw else {}
        #: symbol -> [side (+1/-1), open_ts, open_px, boundaries held, model_version]
        self.positions: dict[str, list] = data.get("positions", {})
        self.realized_bps: float = float(data.get("realized_bps", 0.0))
        self.round_trips: int = int(data.get("round_trips", 0))

    def step(
        self,
        b: int,
        symbols: list[str],
        d: Decisions,
        mid: np.ndarray,
        spread: np.ndarray,
        model_version: str | None,
    ) -> list[tuple]:
        """Age and close positions, open new ones; returns the round trips closed at ``b``."""
        import pandas as pd

        idx = {s: i for i, s in enumerate(symbols)}
        half = np.where(np.isfinite(spread), spread / 2, 0.0)
        fills: list[tuple] = []
        for s, pos in list(self.positions.items()):
            pos[3] += 1
            i = idx.get(s)
            if pos[3] < self.cfg.paper_hold_bars or i is None or not np.isfinite(mid[i]):
                continue
            side, open_ts, open_px = pos[0], pos[1], pos[2]
            close_px = float(mid[i] - side * half[i])
            pnl = side * (close_px - open_px) / open_px * 1e4
            fills.append(
                (
                    s,
                    "LONG" if side > 0 else "SHORT",
                    pd.Timestamp(open_ts, tz="UTC").to_pydatetime(),
                    open_px,
                    pd.Timestamp(b, tz="UTC").to_pydatetime(),
                    close_px,
                    pnl,
                    pos[4],
                )
            )
            self.realized_bps += pnl
            self.round_trips += 1
            del self.positions[s]
        for i in np.flatnonzero(d.decision != 0).tolist():
            s = symbols[i]
            if s in self.positions or not np.isfinite(mid[i]):
                continue
            side = int(d.decision[i])
            self.positions[s] = [side, b, float(mid[i] + side * half[i]), 0, model_version or ""]
        self.r.set(
            self.key,
            json.dumps(
                {
                    "positions": self.positions,
                    "realized_bps": self.realized_bps,
                    "round_trips": self.round_trips,
                }
            ),
        )
        if fills and self.store is not None:
            self.store.write_fills(fills)
        return fills
