"""Vendor equity ticks -> canonical ticks, end to end (zip on disk in, validated ticks out).

``value`` is vendor rows per second (quote + trade CSV rows of one symbol-day, median of
``repeats``), through :func:`tickml.readers.equity.read_equity_day`: unzip, CSV parse, NBBO
build, trade merge, UTC conversion, seq, validation, quarantine.

Baseline, measured in the same run on the same files: the straightforward pandas way
(``pd.read_csv`` on the zips, ``where``/``ffill`` for the carried book, ``groupby(ms).last()``
for the one-event-per-millisecond rule, ``merge_asof`` for the trades' book, tz_localize /
tz_convert, ``groupby.cumcount`` for seq), without validation or quarantine. The baseline's
events are compared with ours (``baseline_agrees``) so the comparison is between two
implementations of the same thing. ``baseline_validated_value`` / ``ratio_validated``: the
baseline followed by the same ``validate_ticks`` call ours makes (like for like).
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import equity_root
from tickml.readers.equity import read_equity_day
from tickml.schema import TICK_COLUMNS, validate_ticks

QUOTE_NAMES = ["ms", "bid", "bid_size", "ask", "ask_size", "exchange", "condition", "suspicious"]
TRADE_NAMES = ["ms", "price", "size", "exchange", "condition", "suspicious"]


def naive_pandas(quote_zip: Path | None, trade_zip: Path, day: dt.date) -> pd.DataFrame:
    """The straightforward pandas implementation (no validation, no quarantine)."""
    t = pd.read_csv(trade_zip, header=None, names=TRADE_NAMES, compression="zip")
    t = t[t["suspicious"] == 0]
    trades = pd.DataFrame(
        {"ms": t["ms"], "price": t["price"] / 10_000, "size": t["size"].astype(float)}
    )
    if quote_zip is not None:
        q = pd.read_csv(quote_zip, header=None, names=QUOTE_NAMES, compression="zip")
        q = q[q["suspicious"] == 0].copy()
        has_bid, has_ask = q["bid"] > 0, q["ask"] > 0
        q["bid"] = (q["bid"] / 10_000).where(has_bid).ffill()
        q["bid_size"] = q["bid_size"].astype(float).where(has_bid).ffill()
        q["ask"] = (q["ask"] / 10_000).where(has_ask).ffill()
        q["ask_size"] = q["ask_size"].astype(float).where(has_ask).ffill()
        book = q.groupby("ms", sort=False)[["bid", "ask", "bid_size", "ask_size"]].last()
        book = book.reset_index()
        trades = pd.merge_asof(trades, book, on="ms", allow_exact_matches=False)
        crossed = trades["bid"] > trades["ask"]
        trades.loc[crossed, ["bid", "ask", "bid_size", "ask_size"]] = np.nan
        quotes = book.assign(price=np.nan, size=0.0)
    else:
        trades = trades.assign(bid=np.nan, ask=np.nan, bid_size=np.nan, ask_size=np.nan)
        quotes = trades.iloc[:0].copy()
    trades["kind"], quotes["kind"] = 0, 1
    ev = pd.concat([trades, quotes], ignore_index=True).sort_values(["ms", "kind"], kind="stable")
    local = pd.Timestamp(day) + pd.to_timedelta(ev["ms"], unit="ms")
    ev["ts"] = local.dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    ev["seq"] = (ev["ts"].astype("int64") // 1_000_000) * 1000 + ev.groupby("ms").cumcount()
    return ev.reset_index(drop=True)


def naive_pandas_validated(
    quote_zip: Path | None, trade_zip: Path, day: dt.date, symbol: str
) -> pd.DataFrame:
    """The baseline plus the same validate_ticks call ours makes: the like-for-like figure."""
    ev = naive_pandas(quote_zip, trade_zip, day)
    ev["symbol"] = symbol.upper()
    return validate_ticks(ev[list(TICK_COLUMNS)], "baseline").ticks


def _agrees(ours: pd.DataFrame, base: pd.DataFrame, ours_quarantined_seq: np.ndarray) -> bool:
    base = base[~base["seq"].isin(ours_quarantined_seq)]
    if len(base) != len(ours):
        return False
    cols = ["seq", "bid", "ask", "bid_size", "ask_size", "price", "size"]
    a = ours[cols].to_numpy(dtype=float)
    b = base.sort_values("seq")[cols].to_numpy(dtype=float)
    return bool(np.array_equal(a, b, equal_nan=True))


def run(
    root: Path | str | None = None,
    symbol: str = "AIG",
    day: str | dt.date = "2013-10-08",
    repeats: int = 3,
) -> list[dict[str, Any]]:
    root = Path(root) if root is not None else equity_root()
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    sym_dir = root / symbol.lower()
    quote_zip = sym_dir / f"{day:%Y%m%d}_quote.zip"
    trade_zip = sym_dir / f"{day:%Y%m%d}_trade.zip"

    # alternate ours and the baseline so that load from other processes hits both alike;
    # one untimed warm-up of each (imports, page cache)
    times: list[float] = []
    base_times: list[float] = []
    result = read_equity_day(root, day, [symbol])
    base = naive_pandas(quote_zip if quote_zip.is_file() else None, trade_zip, day)
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = read_equity_day(root, day, [symbol])
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        base = naive_pandas(quote_zip if quote_zip.is_file() else None, trade_zip, day)
        base_times.append(time.perf_counter() - t0)
    val_times: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        naive_pandas_validated(quote_zip if quote_zip.is_file() else None, trade_zip, day, symbol)
        val_times.append(time.perf_counter() - t0)
    n_rows = sum(result.rows_in.values())
    med = statistics.median(times)
    base_med = statistics.median(base_times)
    val_med = statistics.median(val_times)
    # the baseline does not validate: leave out the events our validator quarantined
    q = result.quarantine
    vq = q[q["reason"] == "crossed_book"]
    quarantined_seq = _baseline_seq_of(vq, base)

    value = n_rows / med
    baseline_value = n_rows / base_med
    return [
        {
            "name": "parse",
            "value": round(value, 1),
            "unit": "ticks/s",
            "n_rows": n_rows,
            "n_ticks": len(result.ticks),
            "n_quarantined": len(result.quarantine),
            "seconds_median": round(med, 4),
            "seconds_all": [round(t, 4) for t in times],
            "baseline_seconds_all": [round(t, 4) for t in base_times],
            "baseline": "naive pandas: read_csv + where/ffill + groupby(ms).last + merge_asof",
            "baseline_value": round(baseline_value, 1),
            "baseline_seconds_median": round(base_med, 4),
            "baseline_agrees": _agrees(result.ticks, base, quarantined_seq),
            "ratio": round(value / baseline_value, 2),
            "baseline_validated_value": round(n_rows / val_med, 1),
            "ratio_validated": round(value / (n_rows / val_med), 2),
            "symbol": symbol.upper(),
            "day": day.isoformat(),
            "repeats": repeats,
        }
    ]


def _baseline_seq_of(quarantine: pd.DataFrame, base: pd.DataFrame) -> np.ndarray:
    """The baseline seq of the quote events our validator quarantined (same ms, last event)."""
    if quarantine.empty:
        return np.empty(0, dtype=np.int64)
    ts = set(quarantine["ts"].astype("int64").tolist())
    quotes = base[base["kind"] == 1]
    hit = quotes[quotes["ts"].astype("int64").isin(ts)]
    return hit["seq"].to_numpy()


if __name__ == "__main__":
    import json

    for row in run():
        print(json.dumps(row))
