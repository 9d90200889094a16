"""Online/offline consistency: cost of comparing a day of live rows with batch rows.

``value`` is matched rows per second through :func:`tickml.consistency.compare_features` for a
day of 1-minute rows (390 boundaries) x ``symbols`` x ``features`` float64 features, median of
``repeats``, at each universe size in ``sizes`` (how the cost grows). Inputs are synthetic
(normal values, 2% NaN; the online side is the batch side shuffled, with 0.1% of the values
changed and 0.5% of the rows missing), so the comparison does real work on every path.

Baseline, same data, same run: the plain pandas way (an outer ``merge`` on (symbol,
event_timestamp) with suffixes, then per feature ``(a != b) & ~(a.isna() & b.isna())``).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
import pandas as pd


def day_frames(symbols: int, features: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2013-10-08 13:31", periods=390, freq="1min", tz="UTC")
    sym = np.repeat([f"S{i:05d}" for i in range(symbols)], len(ts))
    n = len(sym)
    vals = rng.standard_normal((n, features))
    vals[rng.random((n, features)) < 0.02] = np.nan
    names = [f"f{j:03d}" for j in range(features)]
    batch = pd.DataFrame(vals, columns=names)
    batch.insert(0, "event_timestamp", np.tile(ts, symbols))
    batch.insert(0, "symbol", sym)
    online = batch.sample(frac=1.0, random_state=seed).iloc[: int(n * 0.995)].copy()
    flip = rng.random(online.shape[0] * features) < 0.001
    block = online[names].to_numpy().ravel()
    block[flip] += 1e-9
    online[names] = block.reshape(-1, features)
    return batch, online


def pandas_compare(batch: pd.DataFrame, online: pd.DataFrame, names: list[str]) -> int:
    m = batch.merge(online, on=["symbol", "event_timestamp"], how="outer", suffixes=("_b", "_o"))
    bad = 0
    for f in names:
        a, b = m[f + "_b"], m[f + "_o"]
        bad += int(((a != b) & ~(a.isna() & b.isna())).sum())
    return bad


def run(
    sizes: list[int] | None = None, features: int | None = None, repeats: int = 3
) -> list[dict[str, Any]]:
    """``features``: columns per row (default: as many as the default feature table has)."""
    from tickml.consistency import compare_features
    from tickml.features import feature_names

    features = features or len(feature_names())
    out = []
    for symbols in sizes or [100, 1000]:
        batch, online = day_frames(symbols, features)
        names = [c for c in batch.columns if c.startswith("f")]
        compare_features(batch.head(1000), online.head(1000), names)  # warm-up
        times, base = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            rep = compare_features(batch, online, names)
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            pandas_compare(batch, online, names)
            base.append(time.perf_counter() - t0)
        med, bmed = statistics.median(times), statistics.median(base)
        out.append(
            {
                "name": "consistency",
                "symbols": symbols,
                "rows": len(batch),
                "features": features,
                "value": round(rep["n_matched"] / med),
                "unit": "matched rows/s",
                "seconds_p50": round(med, 3),
                "seconds_max": round(max(times), 3),
                "baseline_value": round(rep["n_matched"] / bmed),
                "baseline": "pandas outer merge + per-feature != with NaN handling",
                "ratio": round(bmed / med, 2),
                "rows_differing": rep["n_rows_differing"],
                "batch_only": rep["n_batch_only"],
            }
        )
    return out


if __name__ == "__main__":
    import json
    import sys

    for row in run():
        sys.stdout.write(json.dumps(row) + "\n")
