"""The market columns the book executes against, written once for the live path and batch.

Per symbol at a row's time: the top of book of its last tick with both a bid and an ask at or
before that time (a tick stamped exactly at the row's time belongs to it, as in the features):
``mid`` = (bid + ask) / 2, ``spread`` = ask - bid, ``bid_size``, ``ask_size`` (the displayed
depth slippage is measured against). The materializer keeps the book tick by tick and packs
:func:`market_values` into each model vector; :func:`book_at` computes the same numbers from a
day's ticks for the backtest of the same rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MARKET_COLUMNS: tuple[str, ...] = ("mid", "spread", "bid_size", "ask_size")
#: the raw top of book behind them (what the materializer keeps per symbol)
BOOK_FIELDS: tuple[str, ...] = ("bid", "ask", "bid_size", "ask_size")


def market_values(book: np.ndarray) -> np.ndarray:
    """``(n, 4)`` bid, ask, bid_size, ask_size -> ``(n, 4)`` in :data:`MARKET_COLUMNS` order."""
    b = np.asarray(book, dtype=np.float64).reshape(-1, len(BOOK_FIELDS))
    return np.column_stack([(b[:, 0] + b[:, 1]) / 2, b[:, 1] - b[:, 0], b[:, 2], b[:, 3]])


def book_at(ticks: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """:data:`MARKET_COLUMNS` for each row (``symbol``, ``event_timestamp``) from canonical
    ticks (any order; ties in time are taken in ``seq`` order); NaN without a two-sided book."""
    quotes = ticks.loc[
        ticks["bid"].notna() & ticks["ask"].notna(), ["symbol", "ts", "seq", *BOOK_FIELDS]
    ]
    quotes = quotes.sort_values(["ts", "seq"], kind="stable")
    quotes = quotes.assign(symbol=quotes["symbol"].astype(str))
    left = pd.DataFrame(
        {
            "symbol": rows["symbol"].astype(str).to_numpy(),
            "ts": pd.to_datetime(rows["event_timestamp"], utc=True).to_numpy(),
            "_pos": np.arange(len(rows)),
        }
    ).sort_values("ts", kind="stable")
    right = quotes.assign(ts=pd.to_datetime(quotes["ts"], utc=True).to_numpy())
    joined = pd.merge_asof(
        left, right[["symbol", "ts", *BOOK_FIELDS]], on="ts", by="symbol", direction="backward"
    ).sort_values("_pos")
    values = market_values(joined[list(BOOK_FIELDS)].to_numpy(np.float64))
    return pd.DataFrame(values, columns=list(MARKET_COLUMNS), index=rows.index)
