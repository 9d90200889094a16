"""Symbol rules, plausibility bounds and the relative-jump check (tickml.validation)."""

import datetime as dt
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tickml.readers.binance import read_binance_capture
from tickml.readers.equity import read_equity_day
from tickml.schema import TICK_COLUMNS, validate_ticks
from tickml.validation import (
    DEFAULT_RULES,
    ROW_CHECKS,
    SYMBOL_MAX_LEN,
    ValidationConfig,
    check_symbol,
    price_jump_mask,
    row_reasons,
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
    [
        "A/B",
        "a\\b",
        "..",
        "A..B",
        "../../EVIL",
        "A\x00B",
        "A B",
        "x'); DROP TABLE t;--",
        "X" * (SYMBOL_MAX_LEN + 1),
        "",
        "-X",
        "ÄBC",
        "lower",
        "TAB\t",
        None,
        5,
    ],
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
    loose = ValidationConfig(
        max_price=1e301,
        max_size=1e21,
        min_date=dt.date(1970, 1, 1),
        max_ts_ahead="10d",
        jump_factor=None,
    )
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


def _row_reason(sym, t, price, size, bid, ask, bsz, asz, rules, now):
    """The row checks of tickml.validation.row_reasons, one tick, as the docs state them."""
    nat = np.iinfo(np.int64).min
    lo = int(pd.Timestamp(rules.min_date, tz="UTC").value)
    hi = now + int(pd.Timedelta(rules.max_ts_ahead).value)
    vals = (price, size, bid, ask, bsz, asz)
    has_p = not math.isnan(price)

    def gt(a, b):  # NaN compares false
        return not (math.isnan(a) or math.isnan(b)) and a > b

    if not isinstance(sym, str) or not sym.strip():
        return "empty_symbol"
    if symbol_error(sym) is not None:
        return "bad_symbol"
    if (
        any(math.isinf(v) for v in vals)
        or (has_p and math.isnan(size))
        or (not has_p and not math.isnan(size) and size != 0)
        or math.isnan(bid) != math.isnan(bsz)
        or math.isnan(ask) != math.isnan(asz)
    ):
        return "nan_or_inf"
    if (
        (has_p and (price <= 0 or size <= 0))
        or size < 0
        or any(v <= 0 for v in (bid, ask, bsz, asz))
    ):
        return "non_positive"
    if (
        any(v < rules.min_price or v > rules.max_price for v in (bid, ask, price))
        or any(v > rules.max_size for v in (bsz, asz, size))
        or (t != nat and (t < lo or t > hi))
    ):
        return "out_of_range"
    if gt(bid, ask):
        return "crossed_book"
    if not has_p and math.isnan(bid) and math.isnan(ask):
        return "empty_event"
    if t == nat:
        return "wrong_type"
    return ""


_ODD = st.one_of(
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, 1e12, 1e300, 100.0, 99.0]),
    st.floats(-10, 2000, allow_nan=False),
)
N = np.nan
_BASES = [  # price, size, bid, ask, bid_size, ask_size: a tick, a locked and a crossed book,
    (100.0, 5.0, 99.99, 100.01, 1.0, 1.0),  # a trade alone, a quote alone, an empty event
    (N, N, 100.0, 100.0, 1.0, 1.0),
    (N, N, 100.02, 100.0, 1.0, 1.0),
    (100.0, 5.0, N, N, N, N),
    (N, N, 99.99, N, 3.0, N),
    (N, N, N, N, N, N),
]
_NUMS = st.sampled_from(_BASES).flatmap(  # some fields made odd
    lambda base: st.tuples(*[st.one_of(*[st.just(v)] * 4, _ODD) for v in base])
)
_TS = st.one_of(
    st.sampled_from([1_700_000_000 * 10**9] * 6 + [np.iinfo(np.int64).min, 0, 2**62]),
    st.integers(-(2**63) + 1, 2**63 - 1),
)


_T0, _NAT = 1_700_000_000 * 10**9, np.iinfo(np.int64).min


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@example(
    [("AAA", _T0, b) for b in _BASES] + [("AAA", _NAT, _BASES[0]), ("AAA", 0, _BASES[0])], True
)
@given(
    st.lists(
        st.tuples(st.sampled_from(["AAA", "AAA", "BB.B", "", " ", "a/b", None]), _TS, _NUMS),
        max_size=30,
    ),
    st.booleans(),
)
def test_row_reasons_match_the_documented_checks(rows, pass_factorization):
    """The compiled row checks (first match wins, NaN compares false) against the rules
    written out one tick at a time; with and without a factorization at hand."""
    now = 1_750_000_000 * 10**9
    rows = [(r[0], r[1], *r[2]) for r in rows]
    syms = np.array([r[0] for r in rows], dtype=object)
    ts = np.array([r[1] for r in rows], dtype=np.int64)
    cols = ["price", "size", "bid", "ask", "bid_size", "ask_size"]
    vals = {c: np.array([r[2 + i] for r in rows], dtype=np.float64) for i, c in enumerate(cols)}
    fact = None
    if pass_factorization:
        codes, uniq = pd.factorize(pd.Series(syms, dtype=object), use_na_sentinel=True)
        fact = (codes, list(uniq))
    got = row_reasons(syms, ts, vals, DEFAULT_RULES, now_ns=now, factorized=fact)
    want = [_row_reason(r[0], r[1], *r[2:], DEFAULT_RULES, now) for r in rows]
    assert got.tolist() == want
    assert set(want) <= set(ROW_CHECKS)
