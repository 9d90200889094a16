"""Symbol rules, plausibility bounds and the relative-jump check (tickml.validation)."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tickml.readers.binance import read_binance_capture
from tickml.readers.equity import read_equity_day
from tickml.schema import TICK_COLUMNS, validate_ticks
from tickml.validation import (
    SYMBOL_MAX_LEN,
    ValidationConfig,
    check_symbol,
    price_jump_mask,
    symbol_error,
)

BASE = pd.Timestamp("2024-01-02 15:00", tz="UTC")


def _frame(prices, symbol="AAA", bid=None):
    rows = []
    for i, p in enumerate(prices):
        b = p - 0.01 if bid is None else bid
        rows.append((symbol, BASE + pd.Timedelta(seconds=i), i, b, p + 0.01, 1.0, 1.0, p, 5.0))
    return pd.DataFrame(rows, columns=list(TICK_COLUMNS))


@pytest.mark.unit
@pytest.mark.parametrize(
    "symbol", ["AIG", "BRK.B", "BF-B", "BTCUSDT", "ES=F", "^GSPC", "BTC-PERP", "X" * 32]
)
def test_real_symbol_forms_are_allowed(symbol):
    assert symbol_error(symbol) is None
    assert check_symbol(symbol) == symbol


@pytest.mark.unit
@pytest.mark.parametrize(
    "symbol",
    ["A/B", "a\\b", "..", "A..B", "../../EVIL", "A\x00B", "A B", "x'); DROP TABLE t;--",
     "X" * (SYMBOL_MAX_LEN + 1), "", "-X", "ÄBC", "lower", "TAB\t", None, 5],
)
def test_hostile_symbols_are_refused(symbol):
    assert symbol_error(symbol) is not None
    with pytest.raises(ValueError):
        check_symbol(symbol)


@pytest.mark.unit
def test_absurd_values_are_out_of_range_and_bounds_are_configurable():
    f = _frame([10.0] * 6)
    f.loc[1, "price"] = 1e300
    f.loc[2, "ask_size"] = 1e20
    f.loc[3, "ts"] = pd.Timestamp("1975-01-01", tz="UTC")
    f.loc[4, "ts"] = pd.Timestamp.now(tz="UTC") + pd.Timedelta(days=3)  # from the future
    res = validate_ticks(f, "t")
    assert res.counts == {"out_of_range": 4}
    loose = ValidationConfig(max_price=1e301, max_size=1e21, min_date=dt.date(1970, 1, 1),
                             max_ts_ahead="10d", jump_factor=None)
    assert validate_ticks(f, "t", rules=loose).counts.get("out_of_range", 0) == 0


@pytest.mark.unit
def test_price_jumps_single_runs_and_a_bad_first_tick():
    prices = [48.0] * 20
    prices[5] = 0.48  # decimal-shifted print
    prices[10:13] = [4800.0] * 3  # a run of three fat-fingered ticks
    prices[0] = 4800.0  # the very first tick is the bad one
    res = validate_ticks(_frame(prices), "t")
    q = res.quarantine
    assert sorted(q["position"]) == [0, 5, 10, 11, 12]
    assert set(q["reason"]) == {"price_jump"}
    # a real collapse over many ticks is followed, not rejected (each step < the factor)
    slide = list(np.geomspace(10.0, 0.1, 60))
    assert validate_ticks(_frame(slide), "t").n_rejected == 0
    # too few ticks to judge: nothing is rejected
    assert validate_ticks(_frame([10.0, 1000.0]), "t").n_rejected == 0


@pytest.mark.unit
def test_jump_mask_symbols_are_judged_apart():
    ref = np.array([10.0, 500.0, 10.0, 500.0, 10.0, 500.0, 10.0, 500.0])
    codes = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    assert not price_jump_mask(codes, ref, np.ones(8, bool)).any()


@pytest.mark.slow
@pytest.mark.integration
def test_real_data_loses_nothing_to_the_new_rules(equity_root, binance_root):
    """The plausibility rules reject no real tick: the equity day keeps exactly the rejects
    it had (crossed books, vendor flags) and the Binance captures none."""
    new = {"bad_symbol", "out_of_range", "price_jump"}
    eq = read_equity_day(equity_root, dt.date(2013, 10, 8))
    assert not new & set(eq.counts), eq.counts
    assert set(eq.counts) <= {"crossed_book", "vendor_suspicious"}
    for f in sorted(binance_root.glob("*.gz")):
        assert read_binance_capture(f).n_rejected == 0
