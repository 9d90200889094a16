"""Batch feature engine throughput: canonical ticks in, 1-minute feature rows out, one core.

``value`` is input ticks per second through :func:`tickml.features.compute_features` with every
family on (default config, all features) for one real symbol-day plus its cross-asset leader
(AIG + SPY, 2013-10-08: both symbols' ticks count), median of ``repeats`` after an untimed
warm-up; numba runs single-threaded, so this is per core. Numba compile time is excluded and
reported separately: ``first_call_s`` (first call in this process: compile, or load of the
on-disk cache) and ``cold_compile_s`` (a fresh process with an empty numba cache).

Baseline, same run, same ticks: the straightforward vectorized pandas way for the tick-window
part only (31 statistics over the 20/60/180-tick windows: rolling sums/means/stds/min/max over
every tick, then sampled at the row times). It computes a subset of the features, so the ratio
understates the difference.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import equity_root

TARGET = 1_000_000.0

_COLD = """
import time, numpy as np, pandas as pd
t0 = time.perf_counter()
from tickml.features import FeatureConfig, StreamingFeatureEngine, compute_features
ts = pd.Timestamp("2013-10-08 14:00", tz="UTC") + pd.to_timedelta(np.arange(500), unit="s")
t = pd.DataFrame({"symbol": "X", "ts": ts, "seq": np.arange(500), "bid": 10.0, "ask": 10.01,
                  "bid_size": 100.0, "ask_size": 200.0, "price": 10.0, "size": 100.0})
compute_features(t)
e = StreamingFeatureEngine(FeatureConfig(), ["X"])
e.update("X", int(ts[0].value), 10.0, 10.01, 100.0, 200.0, 10.0, 100.0)
e.snapshot(int(ts[60].value))
print(time.perf_counter() - t0)
"""


def cold_compile_seconds() -> float:
    """Import + compile every kernel in a fresh interpreter with an empty numba cache."""
    with tempfile.TemporaryDirectory() as tmp:
        # a child interpreter with this environment and an empty numba cache (not a setting)
        env = {**os.environ, "NUMBA_CACHE_DIR": tmp}
        out = subprocess.run(
            [sys.executable, "-c", _COLD], env=env, capture_output=True, text=True, check=True
        )
    return float(out.stdout.strip().splitlines()[-1])


def pandas_tick_windows(ticks: pd.DataFrame, rows_ts: np.ndarray) -> pd.DataFrame:
    """Baseline: 31 tick-window statistics with pandas rolling over every tick, sampled."""
    out = {}
    for _sym, t in ticks.groupby("symbol", sort=False):
        ok = t["bid"].notna() & t["ask"].notna()
        mid = ((t["bid"] + t["ask"]) / 2).where(ok).ffill()
        ref = mid.fillna(t["price"].ffill())
        lm = np.log(ref)
        r = lm.diff().fillna(0.0)
        vol = t["size"]
        sign = pd.Series(np.sign(t["price"] - mid.shift(1)), index=t.index).fillna(0.0)
        svq = sign * vol
        spread = (t["ask"] - t["bid"]) / mid * 1e4
        imb = (t["bid_size"] - t["ask_size"]) / (t["bid_size"] + t["ask_size"])
        cols: dict[str, pd.Series] = {}
        for w in (20, 60, 180):
            std = r.rolling(w).std()
            rs = r.rolling(w).sum()
            hi, lo = lm.rolling(w).max(), lm.rolling(w).min()
            cols[f"ret_t{w}"] = lm - lm.shift(w)
            cols[f"std_t{w}"] = std
            cols[f"range_t{w}"] = hi - lo
            cols[f"rangepos_t{w}"] = (lm - lo) / (hi - lo)
            cols[f"zprice_t{w}"] = (lm - lm.rolling(w).mean()) / lm.rolling(w).std()
            cols[f"tstat_t{w}"] = rs / (std * np.sqrt(w))
            cols[f"effratio_t{w}"] = rs.abs() / r.abs().rolling(w).sum()
            cols[f"updown_t{w}"] = np.sign(r).rolling(w).mean()
            cols[f"svq_t{w}"] = svq.rolling(w).sum() / vol.rolling(w).sum()
            cols[f"spread_t{w}"] = spread.rolling(w).mean()
            cols[f"imb_t{w}"] = imb.rolling(w).mean()
        cols["skew_t180"] = r.rolling(180).skew()
        frame = pd.DataFrame(cols)
        ts = t["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        pos = np.searchsorted(ts, rows_ts, side="right") - 1
        out[_sym] = frame.iloc[pos[pos >= 0]]
    return pd.concat(out)


def run(
    root: Path | str | None = None,
    day: str | dt.date = "2013-10-08",
    symbol: str = "AIG",
    leader: str | None = "SPY",
    repeats: int = 3,
    cold_compile: bool = True,
) -> list[dict[str, Any]]:
    from tickml.features import FeatureConfig, compute_features, feature_names
    from tickml.readers.equity import read_equity_day

    root = Path(root) if root is not None else equity_root()
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    symbols = [symbol] + ([leader] if leader and leader != symbol else [])
    ticks = read_equity_day(root, day, symbols).ticks
    cfg = FeatureConfig(leader=leader)
    t0 = time.perf_counter()
    rows = compute_features(ticks, cfg)  # warm-up: compile or load the numba cache
    first_call = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        rows = compute_features(ticks, cfg)
        times.append(time.perf_counter() - t0)
    rows_ts = np.unique(rows["event_timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64))
    base_times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        pandas_tick_windows(ticks, rows_ts)
        base_times.append(time.perf_counter() - t0)
    n = len(ticks)
    value = n / statistics.median(times)
    baseline = n / statistics.median(base_times)
    return [
        {
            "name": "features-batch",
            "value": round(value),
            "unit": "ticks/s per core",
            "baseline_value": round(baseline),
            "ratio": round(value / baseline, 2),
            "baseline": "pandas rolling over every tick, 31 tick-window statistics only",
            "target": TARGET,
            "meets_target": value >= TARGET,
            "data": f"equity-ticks-2013 {day} {'+'.join(symbols)}",
            "ticks": n,
            "ticks_by_symbol": ticks["symbol"].value_counts().to_dict(),
            "rows": len(rows),
            "features": len(feature_names(cfg)),
            "seconds_median": round(statistics.median(times), 4),
            "first_call_s": round(first_call, 2),
            "cold_compile_s": round(cold_compile_seconds(), 1) if cold_compile else None,
            "threads": 1,
        }
    ]


if __name__ == "__main__":
    import json

    for r in run():
        print(json.dumps(r))
