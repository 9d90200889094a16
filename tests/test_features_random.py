"""Properties on random ticks (hypothesis): no look-ahead, batch/stream parity, NaN policy.

The generator makes a trades-only leader and a quoted symbol with timestamp ties, a book that
is missing or one-sided at first, quote-only and trade events, and (sometimes) ticks on both
sides of a local midnight, so day resets, warm-ups and every-n tie handling are exercised.
Small windows keep every feature family active on a few hundred ticks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickml.features import FeatureConfig, StreamingFeatureEngine, compute_features, feature_defs

SMALL = dict(
    tick_windows=(3, 8),
    trade_windows=(2, 5),
    time_windows_s=(2, 7),
    n_blocks=3,
    block_size=2,
    interval="5s",
    session_open=None,
    session_close=None,
    leader="AAA",
    leader_lags=(1, 2),
    corr_bars=3,
    atr_bars=2,
    volume_z_bars=3,
    fracdiff_width=4,
    fracdiff_tick_width=5,
    profile_bins=51,
    large_trade_mult=1.5,
)
CONFIGS = {
    "interval": FeatureConfig(**SMALL),
    "every_n": FeatureConfig(**SMALL, every_n_ticks=7),
    "session": FeatureConfig(**{**SMALL, "session_open": "23:59:30", "session_close": "23:59:55"}),
}
COLS = ("bid", "ask", "bid_size", "ask_size", "price", "size")
MIDNIGHT = pd.Timestamp("2013-10-09", tz="America/New_York").value


def random_ticks(seed: int, n: int, start_s: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for sym in ("AAA", "BBB"):
        k = int(rng.integers(n // 2, n + 1))
        gaps = np.where(rng.random(k) < 0.25, 0, rng.exponential(400, k)).astype(np.int64)
        ts = MIDNIGHT + start_s * 10**9 + np.cumsum(gaps) * 10**6
        bid_c = 1000 + np.cumsum(rng.choice([-1, 0, 0, 1], k))
        ask_c = bid_c + rng.choice([1, 1, 2, 3], k)
        bid, ask = bid_c / 100.0, ask_c / 100.0
        bsz = rng.integers(1, 20, k) * 100.0
        asz = rng.integers(1, 20, k) * 100.0
        trade = rng.random(k) < 0.4
        price = np.where(trade, np.where(rng.random(k) < 0.5, bid, ask), np.nan)
        size = np.where(trade, rng.integers(1, 30, k) * 100.0, 0.0)
        if sym == "AAA":  # trades only, like SPY
            keep = trade.copy()
            keep[0] = True
            price[0], size[0] = bid[0], 100.0
            bid = ask = bsz = asz = np.full(k, np.nan)
        else:
            keep = np.ones(k, bool)
            nb = int(rng.integers(0, 6))
            bid[:nb], bsz[:nb] = np.nan, np.nan  # no book, then one-sided
            ask[: nb // 2], asz[: nb // 2] = np.nan, np.nan
            price[:nb], size[:nb] = np.where(rng.random(nb) < 0.3, 10.0, np.nan), 0.0
            size[:nb] = np.where(np.isnan(price[:nb]), 0.0, 100.0)
            keep[:nb] = ~(np.isnan(bid[:nb]) & np.isnan(ask[:nb]) & np.isnan(price[:nb]))
        f = pd.DataFrame(
            {
                "symbol": sym,
                "ts": pd.to_datetime(ts, utc=True),
                "seq": np.arange(k),
                "bid": bid,
                "ask": ask,
                "bid_size": bsz,
                "ask_size": asz,
                "price": price,
                "size": size,
            }
        )
        parts.append(f[keep])
    return pd.concat(parts, ignore_index=True)


def replay(cfg: FeatureConfig, ticks: pd.DataFrame, warm_seed: int | None = None) -> pd.DataFrame:
    """``warm_seed``: between ticks, at random, the engine computes ring moments ahead of the
    boundary (``warm()``, all symbols or one), as an idle live materializer does."""
    rng = np.random.default_rng(warm_seed) if warm_seed is not None else None
    ev = ticks.sort_values(["ts", "seq"], kind="stable")
    ts = ev["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    engine = StreamingFeatureEngine(cfg, ["AAA", "BBB"])
    step, frames = cfg.interval_ns, []
    grid = MIDNIGHT - 86_400 * 10**9  # any local midnight: the grid is aligned to it
    next_b = grid + -(-(int(ts[0]) - grid) // step) * step
    for i, row in enumerate(ev[["symbol", *COLS]].itertuples(index=False)):
        while not cfg.every_n_ticks and next_b < ts[i]:
            frames.append(engine.snapshot(next_b))
            next_b += step
        engine.update(row[0], int(ts[i]), *row[1:])
        if rng is not None and rng.random() < 0.3:
            engine.warm(None if rng.random() < 0.5 else 1)
    if cfg.every_n_ticks:
        engine.flush()
        return engine.drain()
    end = ts[-1] + step
    if cfg.session_only and cfg.has_session:  # batch rows run to the close: go there, skipping
        _, _, opens, end = cfg.market.day_of(int(ts[-1]))  # boundaries that cannot have rows
        next_b = max(next_b, opens)
    while next_b <= end:
        frames.append(engine.snapshot(next_b))
        next_b += step
    return pd.concat(frames, ignore_index=True)


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if not a[["symbol", "event_timestamp", "last_tick_ts"]].equals(
        b[["symbol", "event_timestamp", "last_tick_ts"]]
    ):
        return False
    x, y = a.iloc[:, 2:-1].to_numpy(), b.iloc[:, 2:-1].to_numpy()
    return bool(((x == y) | (np.isnan(x) & np.isnan(y))).all())


def upto(frame: pd.DataFrame, t: pd.Timestamp, keep=None) -> pd.DataFrame:
    part = frame[frame["event_timestamp"] <= t]
    if keep is not None:
        part = part[keep(part)]
    return part.sort_values(["symbol", "event_timestamp"]).reset_index(drop=True)


SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(20, 250)
starts = st.integers(-90, 30)  # seconds around the local midnight


@pytest.mark.unit
@pytest.mark.parametrize("mode", sorted(CONFIGS))
@SETTINGS
@given(seed=seeds, n=sizes, start=starts, frac=st.floats(0.0, 1.0))
def test_no_lookahead_random(mode: str, seed: int, n: int, start: int, frac: float) -> None:
    cfg = CONFIGS[mode]
    ticks = random_ticks(seed, n, start)
    lo, hi = ticks["ts"].min(), ticks["ts"].max()
    t = lo + (hi - lo) * frac
    if frac > 0.5:  # half the time cut exactly at a tick's timestamp
        t = ticks["ts"].iloc[int(frac * (len(ticks) - 1))]
    base = compute_features(ticks, cfg)
    late = ticks["ts"] > t
    pert = ticks.copy()
    pert.loc[late, "price"] *= 1.05
    pert.loc[late, ["bid", "ask"]] += 0.03
    pert.loc[late, ["bid_size", "ask_size"]] *= 2
    pert.loc[late, "size"] *= 3
    assert same(upto(base, t), upto(compute_features(pert, cfg), t))
    cut = ticks[~late]
    trunc = compute_features(cut, cfg)
    assert set(map(tuple, upto(trunc, t)[["symbol", "event_timestamp"]].to_numpy())) <= set(
        map(tuple, upto(base, t)[["symbol", "event_timestamp"]].to_numpy())
    )
    # rows up to the symbol's last remaining tick exist in both and are identical
    last = cut.groupby("symbol")["ts"].max()
    keep = lambda p: p["event_timestamp"] <= p["symbol"].map(last)  # noqa: E731
    assert same(upto(base, t, keep), upto(trunc, t, keep))


@pytest.mark.unit
@pytest.mark.parametrize("mode", sorted(CONFIGS))
@SETTINGS
@given(seed=seeds, n=sizes, start=starts, warm=st.booleans())
def test_parity_random(mode: str, seed: int, n: int, start: int, warm: bool) -> None:
    """Stream rows equal batch rows bit for bit, with or without ring moments warmed ahead
    of the boundaries at random moments."""
    cfg = CONFIGS[mode]
    ticks = random_ticks(seed, n, start)
    batch = compute_features(ticks, cfg)
    stream = replay(cfg, ticks, seed if warm else None)
    key = ["symbol", "event_timestamp"]
    stream = stream.merge(batch[key], on=key).sort_values(key).reset_index(drop=True)
    assert same(batch.sort_values(key).reset_index(drop=True), stream)
    # NaN only where the definition says so, never inf
    vals = batch.iloc[:, 2:-1]
    assert not np.isinf(vals.to_numpy()).any()
    for d in feature_defs(cfg):
        if not d.nan_when:
            assert vals[d.name].notna().all(), d.name


@pytest.mark.unit
@pytest.mark.parametrize("mode", sorted(CONFIGS))
@SETTINGS
@given(seed=seeds, n=sizes, start=starts, cut=st.integers(1, 40))
def test_update_groups_equals_update_many_per_symbol(
    mode: str, seed: int, n: int, start: int, cut: int
) -> None:
    """A materializer batch in one compiled call (``update_groups``) leaves the engine exactly
    where ``update_many`` of each symbol's ticks in turn does: across midnight (day resets),
    every-n rows, late ticks from an earlier day, a symbol seen first inside a batch."""
    cfg = CONFIGS[mode]
    ticks = random_ticks(seed, n, start).sort_values(["ts", "seq"], kind="stable")
    late = ticks.iloc[[-1]].assign(ts=ticks["ts"].iloc[0] - pd.Timedelta(days=1), symbol="BBB")
    ticks = pd.concat([ticks, late], ignore_index=True)  # an earlier day's tick, dropped
    ts = ticks["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    a = StreamingFeatureEngine(cfg, ["AAA"])  # BBB is added inside a batch
    b = StreamingFeatureEngine(cfg, ["AAA"])
    for lo in range(0, len(ticks), cut):  # batches of `cut` ticks, grouped by symbol
        part = ticks.iloc[lo : lo + cut]
        uniq, inv = np.unique(part["symbol"].to_numpy(str), return_inverse=True)
        order = np.argsort(inv, kind="stable")
        bounds = np.searchsorted(inv[order], np.arange(len(uniq) + 1))
        cols = [part[c].to_numpy(np.float64)[order] for c in COLS]
        t = ts[lo : lo + cut][order]
        for g, sym in enumerate(uniq):
            s = slice(bounds[g], bounds[g + 1])
            a.update_many(str(sym), t[s], *(c[s] for c in cols))
        b.update_groups(uniq.tolist(), bounds, t, *cols)
    assert a.symbols == b.symbols and a.dropped_late == b.dropped_late >= 1
    if cfg.every_n_ticks:
        a.flush(), b.flush()
        assert same(a.drain(), b.drain())
    assert a.state_bytes() == b.state_bytes()
    with pytest.raises(ValueError, match="bounds"):
        b.update_groups(["AAA"], np.array([0, 2, 1]), t[:1], *(c[:1] for c in cols))
