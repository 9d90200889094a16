"""The fracdiff orders are chosen on the engine's own per-day series (bars and ticks)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tickml.features import FeatureConfig, compute_features
from tickml.features.fracdiff import fracdiff_weights
from tickml.features.fracdiff_choice import (
    choose_fracdiff_orders,
    engine_series,
    reference_log_price,
)
from tickml.market import utc_ns
from tickml.readers.equity import read_equity_day

NY = "America/New_York"


def _quotes(day: str, symbol: str, level: float, seed: int, n: int = 6000) -> pd.DataFrame:
    """Quotes every ~4 s over a New York day's session and its edges, mid a random walk."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(f"{day} 09:00", tz=NY).value
    ts = t0 + np.sort(rng.integers(0, 8 * 3600 * 10**9, size=n))
    mid = level * np.exp(np.cumsum(rng.normal(0, 2e-4, size=n)))
    return pd.DataFrame(
        {
            "symbol": symbol,
            "ts": pd.to_datetime(ts, utc=True),
            "seq": np.arange(n),
            "bid": mid - 0.01,
            "ask": mid + 0.01,
            "bid_size": 100.0,
            "ask_size": 100.0,
            "price": np.nan,
            "size": np.nan,
        }
    )


@pytest.mark.unit
def test_reference_price_carries_the_last_valid_book_else_the_last_trade() -> None:
    t = pd.DataFrame(
        {
            "bid": [np.nan, np.nan, 10.0, 0.0, 11.0, np.nan],
            "ask": [np.nan, np.nan, 10.2, 10.4, 10.9, np.nan],  # row 4: crossed, invalid
            "bid_size": [np.nan, np.nan, 5, 5, 5, np.nan],
            "ask_size": [np.nan, np.nan, 5, 5, 5, np.nan],
            "price": [np.nan, 9.9, np.nan, np.nan, np.nan, 10.5],
            "size": [np.nan, 100, np.nan, np.nan, np.nan, 100],
        }
    )
    got = reference_log_price(t)
    want = np.log([np.nan, 9.9, 10.1, 10.1, 10.1, 10.1])
    np.testing.assert_allclose(got, want, equal_nan=True)


@pytest.mark.unit
def test_series_reset_every_day_and_the_choice_is_the_smallest_passing_d() -> None:
    cfg = FeatureConfig(fracdiff_width=10, fracdiff_tick_width=20)
    ticks = pd.concat(
        [
            _quotes("2024-03-04", "AAA", 50.0, 1),
            _quotes("2024-03-05", "AAA", 80.0, 2),  # another level: must not mix with day 1
            _quotes("2024-03-04", "BBB", 20.0, 3),
        ],
        ignore_index=True,
    )
    series = engine_series(ticks, cfg)
    assert [(s.symbol, str(s.day)) for s in series] == [
        ("AAA", "2024-03-04"),
        ("BBB", "2024-03-04"),
        ("AAA", "2024-03-05"),
    ]
    day2 = series[2]
    assert day2.bar_lags.shape[1] == 10 and day2.tick_lags.shape[1] == 20
    assert np.all(np.abs(day2.bar_lags - np.log(80.0)) < 0.2)  # nothing of day 1 (log 50)
    assert np.all(np.abs(day2.tick_lags - np.log(80.0)) < 0.2)
    # rows on the 1-minute grid inside the session; the first bar row needs 10 bars of the day
    open_ns = pd.Timestamp("2024-03-05 09:30", tz=NY).value
    assert day2.bar_rows[0] == open_ns + 60 * 10**9 and len(day2.bar_rows) == 390
    np.testing.assert_allclose(day2.fracdiff_bar(1.0), day2.bar_lags[:, 0] - day2.bar_lags[:, 1])
    choice = choose_fracdiff_orders(series, grid=(0.0, 0.3, 0.6, 1.0))
    for variant, d in (("bar", choice.d_bar), ("tick", choice.d_tick)):
        n_pass, n = choice.passes(variant, d)
        assert n == 3 and n_pass == 3  # every symbol-day passes at the chosen d
        smaller = [x for x in (0.0, 0.3, 0.6, 1.0) if x < d]
        assert all(choice.passes(variant, x)[0] < 3 for x in smaller)
    assert choice.passes("bar", 0.0)[0] < 3  # a random walk's level does not pass
    lenient = choose_fracdiff_orders(series, grid=(0.0, 0.3, 0.6, 1.0), min_share=0.3)
    assert lenient.d_bar <= choice.d_bar and lenient.d_tick <= choice.d_tick
    assert set(lenient.to_dict()) == {"d_bar", "d_tick", "min_share", "table"}
    # a constant fracdiff (no price change at all) is stationary: it passes, counted apart
    flat = _quotes("2024-03-06", "CCC", 30.0, 4).assign(bid=29.99, ask=30.01)
    flat_choice = choose_fracdiff_orders(engine_series(flat, cfg), grid=(0.0, 0.5))
    assert flat_choice.d_bar == 0.0
    assert int(flat_choice.table["n_constant"].min()) == 1


@pytest.mark.slow
def test_series_equal_the_engine_features_on_a_real_day(equity_root) -> None:
    """The rebuilt inputs give the engine's fracdiff_b30 and fracdiff_t180 at every row, for
    orders other than the defaults (IBM, 2013-10-08, the real tick files)."""
    ticks = read_equity_day(equity_root, dt.date(2013, 10, 8), symbols=["IBM"]).ticks
    cfg = FeatureConfig(families=("stationarity",), fracdiff_d=0.6, fracdiff_tick_d=0.45)
    feats = compute_features(ticks, cfg).set_index("event_timestamp")
    (s,) = engine_series(ticks, cfg)
    at = utc_ns(pd.Series(feats.index))
    for col, rows, values in (
        ("fracdiff_b30", s.bar_rows, s.fracdiff_bar(0.6)),
        ("fracdiff_t180", s.tick_rows, s.fracdiff_tick(0.45)),
    ):
        engine = pd.Series(feats[col].to_numpy(), index=at).dropna()
        ours = pd.Series(values, index=rows)
        assert len(engine) == 390 and engine.index.equals(ours.index), col
        np.testing.assert_allclose(ours.to_numpy(), engine.to_numpy(), rtol=1e-12, atol=1e-14)
    # the weights the values are made of are the engine's own
    assert s.bar_lags.shape[1] == 30 and s.tick_lags.shape[1] == 180
    np.testing.assert_allclose(
        s.fracdiff_tick(0.45), s.tick_lags @ fracdiff_weights(0.45, 180), rtol=0, atol=0
    )


@pytest.mark.slow
def test_the_command_line_recomputes_the_orders_on_chosen_days(equity_root) -> None:
    from _cli import TICKML, error_line, run

    args = [TICKML, "fracdiff-d", "--ticks", equity_root, "--symbols", "IBM,SPY"]
    proc = run([*args, "--end", "2013-10-07"], timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "bar pass (of 2)" in proc.stdout and "tick pass (of 2)" in proc.stdout
    assert "on 1 days 2013-10-07..2013-10-07, 2 symbol-days" in proc.stdout
    assert "fracdiff_d: " in proc.stdout and "fracdiff_tick_d: " in proc.stdout
    proc = run([*args, "--start", "2013-10-09", "--end", "2013-10-08"])
    error_line(proc, 2, "no days")
    # without --end the choice could see test days: refused, one error line
    proc = run([*args, "--start", "2013-10-07"])
    error_line(proc, 2, "--end is required", "training days")
