import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tickml.schema import REJECT_REASONS, out_of_order_mask, validate_ticks

pytestmark = pytest.mark.unit


def _mask(ts, syms=None, tol=0):
    syms = syms or "A" * len(ts)
    return out_of_order_mask(
        np.array(ts, dtype=np.int64), np.array(list(syms), dtype=object),
        np.ones(len(ts), dtype=bool), tol,
    ).tolist()


def test_one_future_typo_costs_one_tick_not_the_rest_of_the_day():
    # a tick stamped far in the future (a typo) is rejected alone
    assert _mask([1, 2, 3, 10**15, 4, 5, 6]) == [False, False, False, True, False, False, False]


def test_one_late_tick_is_rejected_alone():
    assert _mask([1, 2, 3, 0, 4, 5, 6]) == [False, False, False, True, False, False, False]


def test_tolerance_keeps_small_reorderings():
    assert _mask([10, 30, 20, 40], tol=0) == [False, False, True, False]
    assert _mask([10, 30, 20, 40], tol=10) == [False, False, False, False]
    # within tolerance of the neighbour but not of the running max
    assert _mask([100, 50, 0], tol=60) == [False, False, True]


def test_symbols_are_independent_and_interleaved():
    assert _mask([5, 1, 6, 2], syms="ABAB") == [False, False, False, False]
    assert _mask([5, 1, 4, 2], syms="ABAB") == [False, False, True, False]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, 50), min_size=1, max_size=60),
    st.lists(st.sampled_from("AB"), min_size=60, max_size=60),
    st.integers(0, 5),
)
def test_kept_ticks_are_in_order_within_tolerance(ts, syms, tol):
    syms = syms[: len(ts)]
    rej = np.array(_mask(ts, "".join(syms), tol))
    t = np.array(ts)
    for s in "AB":
        kept = t[(np.array(syms) == s) & ~rej]
        if len(kept):
            assert np.all(kept >= np.maximum.accumulate(kept) - tol)


def test_validate_ticks_reports_each_reason_once_and_keeps_valid_rows():
    base = pd.Timestamp("2024-01-02 15:00", tz="UTC")
    rows = [
        ("A", base, 1, 10.0, 10.1, 1.0, 1.0, np.nan, 0.0),       # valid quote
        ("", base, 2, 10.0, 10.1, 1.0, 1.0, np.nan, 0.0),        # empty_symbol
        ("A", base, 3, 10.0, 10.1, 1.0, np.nan, np.nan, 0.0),    # nan_or_inf (size missing)
        ("A", base, 4, 10.0, 10.1, 1.0, 1.0, -1.0, 5.0),         # non_positive
        ("A", base, 5, 10.2, 10.1, 1.0, 1.0, np.nan, 0.0),       # crossed_book
        ("A", base, 6, 10.1, 10.1, 1.0, 1.0, 10.1, 5.0),         # locked: kept
        ("A", base, 6, 10.1, 10.1, 1.0, 1.0, 10.1, 5.0),         # duplicate
        ("A", base, 7, np.nan, np.nan, np.nan, np.nan, np.nan, 0.0),  # empty_event
        ("A", pd.NaT, 8, 10.0, 10.1, 1.0, 1.0, np.nan, 0.0),     # wrong_type (no time)
        ("A", base - pd.Timedelta("1s"), 9, 10.0, 10.1, 1.0, 1.0, np.nan, 0.0),  # out_of_order
        ("A", base, 10, 10.0, 10.1, 1.0, 1.0, np.inf, 5.0),      # nan_or_inf (inf)
    ]
    cols = ["symbol", "ts", "seq", "bid", "ask", "bid_size", "ask_size", "price", "size"]
    res = validate_ticks(pd.DataFrame(rows, columns=cols), "unit")
    assert res.ticks["seq"].tolist() == [1, 6]
    assert res.counts == {
        "crossed_book": 1, "duplicate": 1, "empty_event": 1, "empty_symbol": 1,
        "nan_or_inf": 2, "non_positive": 1, "out_of_order": 1, "wrong_type": 1,
    }
    assert set(res.counts) <= set(REJECT_REASONS)
    assert res.quarantine["position"].tolist() == [1, 2, 3, 4, 6, 7, 8, 9, 10]
