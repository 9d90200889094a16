"""The position book: one cross-section at a time -> marks, exits, entries, fills, P&L.

See :mod:`tickml.execution` for the rules. State is per symbol slot (numpy arrays) plus the
returns window of the risk limit; :meth:`PositionBook.to_bytes` stores it as an ``.npz`` of
numeric arrays (no pickle) and :meth:`PositionBook.from_bytes` continues exactly.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tickml.execution import sizing as sz
from tickml.execution.config import ExecutionConfig
from tickml.execution.records import (
    EOD,
    HORIZON,
    OPEN,
    REVERSE,
    SLOT_FIELDS,
    STOP_LOSS,
    TAKE_PROFIT,
    Cross,
    Position,
    Step,
    append,
    column,
)
from tickml.slots import SymbolSlots


class PositionBook:
    """Positions of a universe under one :class:`ExecutionConfig` (see the package doc)."""

    def __init__(self, config: ExecutionConfig | None = None) -> None:
        self.cfg = config or ExecutionConfig()
        self.slots = SymbolSlots()
        self.s = {k: np.zeros(0, dtype=dt) for k, (dt, _) in SLOT_FIELDS.items()}
        self.window = sz.ReturnWindow(self.cfg.var_window)
        self.next_pos_id = 0
        self.day = -1  # local day key of the last step (the risk window covers one day)
        self.traded_value = 0.0

    # -- symbols -------------------------------------------------------------------------------
    @property
    def symbols(self) -> list[str]:
        return self.slots.symbols

    def resolve(self, symbols: Sequence[str] | np.ndarray) -> np.ndarray:
        idx, added = self.slots.resolve(symbols)
        if added:
            for k, (dt, empty) in SLOT_FIELDS.items():
                self.s[k] = np.r_[self.s[k], np.full(added, empty, dtype=dt)]
            self.window.grow(len(self.slots))
        return idx

    # -- views -----------------------------------------------------------------------------------
    def held_values(self) -> np.ndarray:
        """Signed value of every slot at its mark (0 when flat)."""
        s = self.s
        return s["side"] * s["qty"] * s["mark"]

    def exposure(self) -> tuple[float, float]:
        v = self.held_values()
        return float(np.abs(v).sum()), float(v.sum())

    def var(self) -> float | None:
        return sz.book_var(self.cfg, self.window.rows(), self.held_values())

    def open_positions(self) -> list[Position]:
        """The open positions, typed, in slot order."""
        s = self.s
        return [
            Position(
                symbol=self.symbols[i],
                position_id=int(s["pos_id"][i]),
                side=int(s["side"][i]),
                qty=float(s["qty"][i]),
                value=float(s["value"][i]),
                entry_ts=int(s["entry_ts"][i]),
                entry_mid=float(s["entry_mid"][i]),
                entry_vol=float(s["entry_vol"][i]),
                exit_due=int(s["exit_due"][i]),
                stop_px=float(s["stop_px"][i]),
                take_px=float(s["take_px"][i]),
                mark=float(s["mark"][i]),
            )
            for i in np.flatnonzero(s["side"] != 0)
        ]

    # -- one cross-section -----------------------------------------------------------------------
    def step(
        self,
        ts_ns: int,
        symbols: Sequence[str] | np.ndarray,
        decision: np.ndarray,
        mid: np.ndarray,
        spread: np.ndarray,
        *,
        vol: np.ndarray | None = None,
        strength: np.ndarray | None = None,
        returns: np.ndarray | None = None,
        bid_size: np.ndarray | None = None,
        ask_size: np.ndarray | None = None,
        eod: np.ndarray | None = None,
        day: int | None = None,
    ) -> Step:
        """Process one timestamp's rows (see the package doc for the order of operations).
        ``day``: the local day number (:func:`tickml.market.day_numbers`); a new day restarts
        the risk limit's returns window."""
        cfg, s = self.cfg, self.s
        n = len(symbols)
        c = self.resolve(symbols)
        x = Cross(
            ts_ns, c, column(mid, n), column(spread, n), column(bid_size, n), column(ask_size, n)
        )
        mid = x.mid
        want = np.asarray(decision, dtype=np.int8)
        eod_a = np.zeros(n, bool) if eod is None else np.asarray(eod, dtype=bool)
        out = Step(np.zeros(n), np.zeros(n, np.int8), np.full(n, sz.G_NONE, np.int8))
        rows = np.arange(n)
        ex = np.isfinite(mid) & (mid > 0) & np.isfinite(x.spread) & (x.spread >= 0)
        if day is not None and day != self.day:
            self.window.reset()
            self.day = day
        if cfg.var_limit is not None:
            self.window.push(c, column(returns, n) * cfg.returns_unit)
        held = s["side"][c] != 0
        mtm = held & ex
        if mtm.any():
            cc = c[mtm]
            out.pnl[mtm] += s["side"][cc] * s["qty"][cc] * (mid[mtm] - s["mark"][cc])
            s["mark"][cc] = mid[mtm]
        # marks of every executable row (also where flat: a later flatten uses the last one)
        s["mark_ts"][c[ex]] = ts_ns
        s["mark_spread"][c[ex]] = x.spread[ex]
        s["mark_depth_bid"][c[ex]] = x.bid_size[ex]
        s["mark_depth_ask"][c[ex]] = x.ask_size[ex]
        # exits, on the mid, the first that applies names it: stop, take, time
        side_c = s["side"][c]
        stop_px, take_px = s["stop_px"][c], s["take_px"][c]
        stop = mtm & (((side_c > 0) & (mid <= stop_px)) | ((side_c < 0) & (mid >= stop_px)))
        take = mtm & ~stop & (((side_c > 0) & (mid >= take_px)) | ((side_c < 0) & (mid <= take_px)))
        due = mtm & ~stop & ~take & (ts_ns >= s["exit_due"][c])
        self._close(out, rows[stop], x, STOP_LOSS)
        self._close(out, rows[take], x, TAKE_PROFIT)
        self._close(out, rows[due], x, HORIZON)
        # signals: extend, reverse, open
        act = (want != 0) & ex
        out.gate[(want != 0) & ~ex] = sz.G_NOT_EXECUTABLE
        cur = s["side"][c]
        same = act & (cur == want)
        s["exit_due"][c[same]] = ts_ns + self._horizon_ns
        out.gate[same] = sz.G_EXTENDED
        self._close(out, rows[act & (cur == -want) & (cur != 0)], x, REVERSE)
        new = rows[act & (s["side"][c] == 0)]
        if new.size:
            self._open(out, new, x, want, column(vol, n), strength)
        self._close(out, rows[eod_a & (s["side"][c] != 0) & ex], x, EOD)
        out.position[:] = s["side"][c]
        return out

    def flatten(self, reason: int = EOD) -> Step:
        """Close every open position at its last mark (time, mid, spread and depth of the
        symbol's last executable row): the live ledger's end of day for symbols that had no
        executable row at the close."""
        s = self.s
        held = np.flatnonzero(s["side"] != 0)
        out = Step(np.zeros(held.size), np.zeros(held.size, np.int8), np.zeros(held.size, np.int8))
        if held.size:
            x = Cross(
                s["mark_ts"][held], held, s["mark"][held], s["mark_spread"][held],
                s["mark_depth_bid"][held], s["mark_depth_ask"][held],
            )  # fmt: skip
            self._close(out, np.arange(held.size), x, reason)
        return out

    # -- internals ---------------------------------------------------------------------------------
    @property
    def _horizon_ns(self) -> int:
        return int(pd.Timedelta(self.cfg.horizon).value)

    def _costs(
        self, qty: np.ndarray, m: np.ndarray, spread: np.ndarray, depth: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per fill: total cost (half spread + fee + slippage) and the slippage part."""
        cost = qty * (spread / 2 + m * (self.cfg.fee_bps * 1e-4))
        if self.cfg.slippage_bps == 0.0:
            return cost, np.zeros(qty.size)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(np.isfinite(depth) & (depth > 0), qty / depth, 1.0)
        slip = qty * m * (self.cfg.slippage_bps * 1e-4) * ratio
        return cost + slip, slip

    def _close(self, out: Step, rows: np.ndarray, x: Cross, reason: int) -> None:
        """Close the positions of ``rows`` (indices into the cross-section ``x``) at its mids."""
        if rows.size == 0:
            return
        s = self.s
        k = x.slots[rows]
        m = x.mid[rows]
        side = s["side"][k].copy()
        qty = s["qty"][k].copy()
        depth = np.where(side > 0, x.bid_size[rows], x.ask_size[rows])  # a long sells the bid
        cost, slip = self._costs(qty, m, x.spread[rows], depth)
        out.pnl[rows] -= cost
        t = np.broadcast_to(np.asarray(x.ts, dtype=np.int64), x.slots.shape)[rows].copy()
        append(
            out.fills, slot=k, ts=t, side=-side, qty=qty, price=m, cost=cost, slippage=slip,
            reason=np.full(rows.size, reason), pos_id=s["pos_id"][k], value=s["value"][k],
        )  # fmt: skip
        append(
            out.trades, slot=k, side=side, entry_ts=s["entry_ts"][k], exit_ts=t,
            entry_mid=s["entry_mid"][k], exit_mid=m, qty=qty, value=s["value"][k],
            gross=side * qty * (m - s["entry_mid"][k]), costs=s["entry_cost"][k] + cost,
            reason=np.full(rows.size, reason, np.int8), pos_id=s["pos_id"][k],
            entry_vol=s["entry_vol"][k],
        )  # fmt: skip
        traded = float((qty * m).sum())
        out.traded_value += traded
        self.traded_value += traded
        s["side"][k] = 0
        s["qty"][k] = 0.0
        s["value"][k] = 0.0

    def _open(
        self,
        out: Step,
        rows: np.ndarray,
        x: Cross,
        want: np.ndarray,
        vol: np.ndarray,
        strength: np.ndarray | None,
    ) -> None:
        """Size and open the new positions of ``rows`` (see the package doc)."""
        cfg, s = self.cfg, self.s
        k = x.slots[rows]
        v_rows = vol[rows]
        st = None if strength is None else np.asarray(strength, dtype=np.float64)[rows]
        value, gate = sz.target_values(cfg, v_rows, st, rows.size)
        side = want[rows].astype(np.int8)
        wanted = np.zeros(len(self.symbols))
        wanted[k] = side * np.where(gate == sz.G_REFUSED_NO_VOL, 0.0, value)
        held = self.held_values()
        k_gross, k_net = sz.exposure_scales(cfg, held, wanted)
        scales = (k_gross, k_net, sz.risk_scale(cfg, self.window.rows(), held, wanted))
        scale = min(scales)
        if scale < 1.0:
            which = int(np.argmin(scales))  # gross, net, risk
            if cfg.risk_action == "refuse":
                scale = 0.0
            value = value * scale
            ok = gate != sz.G_REFUSED_NO_VOL
            small = value <= cfg.min_position_value
            gate[ok & small] = sz.G_REFUSED_GROSS + which
            gate[ok & ~small] = sz.G_SCALED_GROSS + which
        out.gate[rows] = gate
        go = (gate != sz.G_REFUSED_NO_VOL) & (gate < sz.G_REFUSED_GROSS)
        rows, k, side, value, v_rows = rows[go], k[go], side[go], value[go], v_rows[go]
        if rows.size == 0:
            return
        m = x.mid[rows]
        q = value / m
        depth = np.where(side > 0, x.ask_size[rows], x.bid_size[rows])  # a buy lifts the ask
        cost, slip = self._costs(q, m, x.spread[rows], depth)
        out.pnl[rows] -= cost
        ids = self.next_pos_id + np.arange(rows.size, dtype=np.int64)
        self.next_pos_id += int(rows.size)
        ts_ns = int(x.ts)
        append(
            out.fills, slot=k, ts=np.full(rows.size, ts_ns, dtype=np.int64), side=side, qty=q,
            price=m, cost=cost, slippage=slip, reason=np.full(rows.size, OPEN), pos_id=ids,
            value=value,
        )  # fmt: skip
        s["side"][k], s["qty"][k], s["value"][k] = side, q, value
        s["entry_ts"][k], s["entry_mid"][k], s["entry_cost"][k] = ts_ns, m, cost
        s["entry_vol"][k], s["pos_id"][k] = v_rows, ids
        s["exit_due"][k] = ts_ns + self._horizon_ns
        s["mark"][k] = m
        dist_unit = 1.0 if cfg.exit_unit == "points" else v_rows * cfg.returns_unit * m
        for name, d, sign in (("stop_px", cfg.stop_loss, -1), ("take_px", cfg.take_profit, 1)):
            s[name][k] = np.nan if d is None else m + sign * side * d * dist_unit
        traded = float(value.sum())
        out.traded_value += traded
        self.traded_value += traded

    # -- persistence -------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The whole state as an ``.npz`` of numeric arrays (no pickle)."""
        buf = io.BytesIO()
        arrays: dict[str, Any] = {
            "symbols": np.array(self.symbols, dtype=np.str_),
            "meta": np.array([self.next_pos_id, self.day], dtype=np.int64),
            "traded_value": np.array([self.traded_value]),
            "config": np.frombuffer(self.cfg.model_dump_json().encode(), dtype=np.uint8),
            **{f"slot_{k}": v for k, v in self.s.items()},
            **self.window.arrays(),
        }
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, config: ExecutionConfig | None = None) -> PositionBook:
        """Restore a book; ``config`` (when given) must equal the stored one."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            stored = ExecutionConfig.model_validate_json(z["config"].tobytes().decode())
            if config is not None and config != stored:
                raise ValueError("the stored book was run with another execution config")
            book = cls(stored)
            book.slots = SymbolSlots(z["symbols"])
            book.s = {k: z[f"slot_{k}"].astype(dt) for k, (dt, _) in SLOT_FIELDS.items()}
            book.next_pos_id, book.day = (int(v) for v in z["meta"])
            book.traded_value = float(z["traded_value"][0])
            book.window = sz.ReturnWindow.from_arrays(z)
        if any(v.size != len(book.symbols) for v in book.s.values()):
            raise ValueError("book state arrays do not match its symbols")
        return book
