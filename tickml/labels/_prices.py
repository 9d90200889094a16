"""The reference price series of each symbol-day, event lookup, and the known-at-t volatility."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tickml.labels._kernels import grid_vol, reference_prices
from tickml.labels.config import LabelConfig, to_timedelta
from tickml.market import EPOCH, Market, day_numbers, utc_ns

_DAY_BITS = 21  # day numbers (days since 1970) stay far below 2**21


def day_bounds(days: np.ndarray, market: Market) -> dict[str, np.ndarray]:
    """UTC ns of each day number's start (local midnight), end, session open and close
    (:meth:`tickml.market.Market.day_bounds`; without a session, the whole day)."""
    bounds = np.array(
        [market.day_bounds(EPOCH + dt.timedelta(days=int(n))) for n in days.tolist()],
        dtype=np.int64,
    ).reshape(-1, 4)
    return {k: bounds[:, i] for i, k in enumerate(("start", "end", "open", "close"))}


@dataclass
class PreparedPrices:
    """Reference prices of every symbol-day ("segment"), compressed to the points where the
    price changes (a barrier is first touched at such a point, so nothing is lost).

    ``ts``/``p`` hold the points sorted by segment then time; segment ``s`` (key
    ``symbol_code << 21 | day_number``, sorted) spans ``[seg_lo[s], seg_hi[s])`` and its last
    tick of any kind was at ``seg_last_ts[s]``.
    """

    symbols: pd.Index
    ts: np.ndarray
    p: np.ndarray
    seg_key: np.ndarray
    seg_lo: np.ndarray
    seg_hi: np.ndarray
    seg_last_ts: np.ndarray


def prepare_prices(ticks: pd.DataFrame, config: LabelConfig) -> PreparedPrices:
    """Build the reference price series of canonical ticks (any symbols, any days).

    Price of a tick = the mid of the last two-sided book seen that symbol-day (a tick with a
    null book, e.g. a trade during a crossed quote, keeps the last mid); before the first
    two-sided book of the day (and all day for trades-only symbols such as SPY) the last trade
    price. Each local day starts afresh.
    """
    missing = {"symbol", "ts", "bid", "ask", "price"} - set(ticks.columns)
    if missing:
        raise ValueError(f"ticks lack columns {sorted(missing)}")
    codes, uniques = pd.factorize(ticks["symbol"].astype(str), sort=True)
    codes = codes.astype(np.int64)
    ts = utc_ns(ticks["ts"])
    bid = ticks["bid"].to_numpy(dtype=np.float64, na_value=np.nan)
    ask = ticks["ask"].to_numpy(dtype=np.float64, na_value=np.nan)
    trade = ticks["price"].to_numpy(dtype=np.float64, na_value=np.nan)
    n = ts.size
    if n > 1 and not (
        np.all(np.diff(codes) >= 0) and np.all((np.diff(ts) >= 0) | (np.diff(codes) > 0))
    ):
        order = np.lexsort((ts, codes))  # stable: equal times keep their input (seq) order
        codes, ts, bid, ask, trade = codes[order], ts[order], bid[order], ask[order], trade[order]
    seg = (codes << _DAY_BITS) | day_numbers(ts, config.market.tz)
    ref = reference_prices(seg, bid, ask, trade)
    new_seg = np.ones(n, dtype=bool)
    new_seg[1:] = seg[1:] != seg[:-1]
    changed = np.ones(n, dtype=bool)
    changed[1:] = ref[1:] != ref[:-1]
    keep = np.isfinite(ref) & (ref > 0) & (new_seg | changed)
    raw_first = np.flatnonzero(new_seg)
    raw_key = seg[raw_first]
    raw_last = np.append(raw_first[1:], n) - 1
    c_seg = seg[keep]
    lo = np.searchsorted(c_seg, raw_key, side="left").astype(np.int64)
    hi = np.searchsorted(c_seg, raw_key, side="right").astype(np.int64)
    return PreparedPrices(
        symbols=pd.Index(uniques),
        ts=ts[keep],
        p=ref[keep],
        seg_key=raw_key.astype(np.int64),
        seg_lo=lo,
        seg_hi=hi,
        seg_last_ts=ts[raw_last] if n else np.zeros(0, dtype=np.int64),
    )


@dataclass
class EventMap:
    """Per event: its time, segment (index into the PreparedPrices segments, -1 if none), the
    price range of that segment, and the day's bounds."""

    t: np.ndarray
    seg: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    last_ts: np.ndarray
    day_start: np.ndarray
    open: np.ndarray
    close: np.ndarray


def map_events(prices: PreparedPrices, events: pd.DataFrame, config: LabelConfig) -> EventMap:
    missing = {"symbol", "event_timestamp"} - set(events.columns)
    if missing:
        raise ValueError(f"events lack columns {sorted(missing)}")
    t = utc_ns(events["event_timestamp"])
    code = prices.symbols.get_indexer(pd.Index(events["symbol"].astype(str))).astype(np.int64)
    day = day_numbers(t, config.market.tz)
    key = (code << _DAY_BITS) | day
    pos = np.searchsorted(prices.seg_key, key)
    pos_c = np.minimum(pos, max(prices.seg_key.size - 1, 0))
    found = (code >= 0) & (pos < prices.seg_key.size)
    if prices.seg_key.size:
        found &= prices.seg_key[pos_c] == key
    seg = np.where(found, pos, -1).astype(np.int64)
    lo = np.full(t.size, -1, dtype=np.int64)
    hi = np.full(t.size, -1, dtype=np.int64)
    last = np.full(t.size, np.iinfo(np.int64).min, dtype=np.int64)
    lo[found] = prices.seg_lo[seg[found]]
    hi[found] = prices.seg_hi[seg[found]]
    last[found] = prices.seg_last_ts[seg[found]]
    uday, inv = np.unique(day, return_inverse=True)
    b = day_bounds(uday, config.market)
    return EventMap(
        t=t,
        seg=seg,
        lo=lo,
        hi=hi,
        last_ts=last,
        day_start=b["start"][inv],
        open=b["open"][inv],
        close=b["close"][inv],
    )


def sampled_volatility(prices: PreparedPrices, em: EventMap, config: LabelConfig) -> np.ndarray:
    """Per event, the EWMA volatility of one ``vol_sample`` log return known at the event.

    The grid is anchored at the session open (``session_only``) or local midnight; the value
    of an event at time t is the one at the last grid point <= t, which uses only prices at or
    before that point (see :func:`tickml.labels._kernels.grid_vol`). NaN when unknown.
    """
    step = to_timedelta(config.vol_sample).value
    halflife = to_timedelta(config.vol_halflife).value / step
    alpha = 1.0 - math.exp(math.log(0.5) / halflife)
    anchor_ev = em.open if config.session_only else em.day_start
    k = np.where(em.t >= anchor_ev, (em.t - anchor_ev) // step, -1)
    has = (em.seg >= 0) & (k >= 0)
    out = np.full(em.t.size, np.nan)
    if not has.any():
        return out
    useg, inv = np.unique(em.seg[has], return_inverse=True)
    n_grid = np.zeros(useg.size, dtype=np.int64)
    np.maximum.at(n_grid, inv, k[has] + 1)
    anchor = np.zeros(useg.size, dtype=np.int64)
    anchor[inv] = anchor_ev[has]
    offset = np.zeros(useg.size + 1, dtype=np.int64)
    np.cumsum(n_grid, out=offset[1:])
    grid = grid_vol(
        prices.ts,
        prices.p,
        prices.seg_lo[useg],
        prices.seg_hi[useg],
        anchor,
        n_grid,
        offset,
        np.int64(step),
        alpha,
        np.int64(config.vol_min_samples),
    )
    out[has] = grid[offset[inv] + k[has]]
    return out
