"""Streaming feature engine throughput: one Python call per tick, as a live materializer makes.

``value``: ticks per second through :meth:`StreamingFeatureEngine.update` for a real
symbol-day (AIG 2013-10-08, every tick, in time order, values as Python scalars) plus a
:meth:`snapshot_arrays` of all the features at every 1-minute boundary: the live pattern. One
core, median of ``repeats`` after an untimed warm-up (numba compile or cache load, reported
as ``first_call_s``).

Baseline, measured in the same run: the reference design's approach, which keeps the last 180
ticks and recomputes the tick-window features with pandas on every tick (40 statistics over the
20/60/180-tick windows; ``baseline_ticks`` ticks, default 3,000). ``ratio`` = value / baseline.
For the same work as the baseline (every feature after every tick) the engine's figure is
``update_and_snapshot_every_tick_per_s``; ``update_only_per_s`` is the update alone.

A second row, ``features-stream-snapshot``, is the latency of writing one row for each of
``universe`` symbols at a boundary (``snapshot_arrays``), p50/p99 over ``snapshot_repeats``.
"""

from __future__ import annotations

import datetime as dt
import statistics
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmarks.common import equity_root

TARGET = 100_000.0
COLS = ("bid", "ask", "bid_size", "ask_size", "price", "size")


def baseline_pandas(rows: list[tuple], n: int) -> float:
    """Seconds for n ticks of: append to a 180-tick window, recompute 40 stats with pandas."""
    win: deque[tuple[float, ...]] = deque(maxlen=180)
    last_lm = np.nan
    t0 = time.perf_counter()
    for row in rows[:n]:
        _ts, bid, ask, bsz, asz, price, size = row
        mid = (bid + ask) / 2
        lm = np.log(mid)
        r = 0.0 if last_lm != last_lm else lm - last_lm
        last_lm = lm
        sign = 0.0 if price != price else (1.0 if price > mid else -1.0)
        win.append((lm, r, size, sign * size, (ask - bid) / mid * 1e4, (bsz - asz) / (bsz + asz)))
        df = pd.DataFrame(list(win), columns=["lm", "r", "vol", "svq", "spread", "imb"])
        feats = {}
        for w in (20, 60, 180):
            d = df.tail(w)
            feats[f"ret{w}"] = d["lm"].iloc[-1] - d["lm"].iloc[0]
            feats[f"std{w}"] = d["r"].std()
            feats[f"mean_r{w}"] = d["r"].mean()
            feats[f"range{w}"] = d["lm"].max() - d["lm"].min()
            feats[f"z{w}"] = (d["lm"].iloc[-1] - d["lm"].mean()) / d["lm"].std()
            feats[f"slope{w}"] = (
                np.polyfit(np.arange(len(d)), d["lm"].to_numpy(), 1)[0] if len(d) > 1 else np.nan
            )
            feats[f"flow{w}"] = d["svq"].sum() / d["vol"].sum() if d["vol"].sum() else 0.0
            feats[f"vol{w}"] = d["vol"].sum()
            feats[f"spread{w}"] = d["spread"].mean()
            feats[f"imb{w}"] = d["imb"].mean()
            feats[f"up{w}"] = (d["r"] > 0).mean()
            feats[f"eff{w}"] = abs(d["r"].sum()) / d["r"].abs().sum() if d["r"].abs().sum() else 0.0
            feats[f"skew{w}"] = d["r"].skew()
        feats["spread_last"] = df["spread"].iloc[-1]
    return time.perf_counter() - t0


def _replay(
    cfg: Any,
    symbol: str,
    rows: list[tuple],
    step: int,
    day_start: int,
    every_tick: bool = False,
    snapshots: bool = True,
) -> float:
    from tickml.features import StreamingFeatureEngine

    eng = StreamingFeatureEngine(cfg, [symbol])
    update, snap = eng.update, eng.snapshot_arrays
    next_b = day_start + ((rows[0][0] - day_start) // step + 1) * step
    t0 = time.perf_counter()
    if every_tick:  # features after every tick (rows stamped at the tick)
        for row in rows:
            update(symbol, *row)
            snap(row[0])
    elif snapshots:
        for row in rows:
            if row[0] > next_b:
                while next_b < row[0]:
                    snap(next_b)
                    next_b += step
            update(symbol, *row)
    else:
        for row in rows:
            update(symbol, *row)
    return time.perf_counter() - t0


def _snapshot_latency(
    cfg: Any, universe: int, ts: np.ndarray, cols: list[np.ndarray], b: int, repeats: int
) -> tuple[list[float], int]:
    """ms per snapshot_arrays(b) of `universe` symbols that all hold the same ticks."""
    from tickml.features import StreamingFeatureEngine

    eng = StreamingFeatureEngine(cfg, [f"S{i:04d}" for i in range(universe)])
    for s in eng.symbols:
        eng.update_many(s, ts, *cols)
    lat = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        syms, vals, _last = eng.snapshot_arrays(b)
        lat.append((time.perf_counter() - t0) * 1e3)
    assert len(syms) == universe and vals.shape == (universe, len(eng.names))
    return lat, (eng.program.nf + eng.program.ni) * 8


def run(
    root: Path | str | None = None,
    day: str | dt.date = "2013-10-08",
    symbol: str = "AIG",
    repeats: int = 3,
    baseline_ticks: int = 3000,
    universe: int = 1000,
    snapshot_repeats: int = 50,
) -> list[dict[str, Any]]:
    from tickml.features import FeatureConfig, feature_names
    from tickml.readers.equity import read_equity_day

    root = Path(root) if root is not None else equity_root()
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    ticks = read_equity_day(root, day, [symbol]).ticks
    ts = ticks["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64).tolist()
    rows = list(zip(ts, *(ticks[c].to_numpy(dtype=float).tolist() for c in COLS), strict=True))
    cfg = FeatureConfig()
    step, day_start = cfg.interval_ns, cfg.market.day_of(ts[0])[0]

    t0 = time.perf_counter()
    _replay(cfg, symbol, rows[:2000], step, day_start)  # compile or load the numba cache
    first_call = time.perf_counter() - t0
    times = [_replay(cfg, symbol, rows, step, day_start) for _ in range(repeats)]
    upd = [_replay(cfg, symbol, rows, step, day_start, snapshots=False) for _ in range(repeats)]
    # same work as the baseline: every feature after every tick, on the session's first ticks
    open_ns = cfg.market.day_of(ts[0])[2]
    sess = [r for r in rows if r[0] > open_ns and r[1] == r[1] and r[2] == r[2]]
    n_every = min(len(sess), 50_000)
    every = _replay(cfg, symbol, sess[:n_every], step, day_start, every_tick=True)
    base_n = min(baseline_ticks, len(sess))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # flat windows give 0/0 z-scores
        base = baseline_pandas(sess, base_n)

    value = len(rows) / statistics.median(times)
    baseline_value = base_n / base
    out = [
        {
            "name": "features-stream",
            "value": round(value),
            "unit": "ticks/s per core",
            "baseline_value": round(baseline_value),
            "ratio": round(value / baseline_value, 1),
            "baseline": f"pandas recompute of 40 tick-window stats (20/60/180) on every tick, "
            f"{base_n} ticks",
            "target": TARGET,
            "meets_target": value >= TARGET,
            "data": f"equity-ticks-2013 {day} {symbol}, {len(rows)} ticks, all in time order",
            "features": len(feature_names(cfg)),
            "update_only_per_s": round(len(rows) / statistics.median(upd)),
            "update_and_snapshot_every_tick_per_s": round(n_every / every),
            "ratio_same_work": round((n_every / every) / baseline_value, 1),
            "us_per_tick": round(statistics.median(times) / len(rows) * 1e6, 3),
            "first_call_s": round(first_call, 2),
            "threads": 1,
        }
    ]

    # snapshot latency for a universe: `universe` symbols holding AIG's first 20k session ticks
    block = np.array(sess[:20_000])
    tsa = block[:, 0].astype(np.int64)
    arr = [np.ascontiguousarray(block[:, 1 + j]) for j in range(len(COLS))]
    b = day_start + ((int(tsa[-1]) - day_start) // step + 1) * step
    lat, nf = _snapshot_latency(cfg, universe, tsa, arr, b, snapshot_repeats)
    names = feature_names(cfg)
    picked = FeatureConfig(features=tuple(names[::3][:70]))  # a model-sized selection
    lat70, _ = _snapshot_latency(picked, universe, tsa, arr, b, snapshot_repeats)
    p50 = float(np.percentile(lat, 50))
    out.append(
        {
            "name": "features-stream-snapshot",
            "value": round(p50, 3),
            "unit": f"ms per boundary, {universe} symbols, {len(names)} features",
            "p50_ms": round(p50, 3),
            "p99_ms": round(float(np.percentile(lat, 99)), 3),
            "us_per_symbol": round(p50 * 1e3 / universe, 2),
            "p50_ms_70_features": round(float(np.percentile(lat70, 50)), 3),
            "p99_ms_70_features": round(float(np.percentile(lat70, 99)), 3),
            "state_kib_per_symbol": round(nf / 1024, 1),
            "threads": 1,
            "gc": "default",
        }
    )
    return out


if __name__ == "__main__":
    import json

    for r in run():
        print(json.dumps(r))
