"""The AlgoSeek/Lean equity reader against the real vendor files (and damaged copies of them).

Expected values below were worked out by hand from the raw rows, read with
``unzip -p aig/20131008_quote.zip | sed -n 'A,Bp'``; each test shows the rows it relies on.
Prices are deci-cents (/10,000); 2013-10-07..11 is EDT, so UTC = New York + 4 h.
"""

from __future__ import annotations

import bisect
import datetime as dt
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickml.readers.equity import (
    EquityReadResult,
    list_equity_days,
    list_equity_symbols,
    parse_equity_files,
    read_equity,
    read_equity_day,
)
from tickml.schema import REJECT_REASONS, TICK_COLUMNS

OCT8 = dt.date(2013, 10, 8)
OCT10 = dt.date(2013, 10, 10)
DAYS = [dt.date(2013, 10, d) for d in range(7, 12)]


def _member(path: Path) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(zf.namelist()[0])


def _lines(path: Path) -> list[bytes]:
    return _member(path).split(b"\n")


def _utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def _at(ticks: pd.DataFrame, ts: pd.Timestamp) -> pd.DataFrame:
    return ticks[ticks["ts"] == ts]


def _quote_at(ticks: pd.DataFrame, ts: pd.Timestamp) -> pd.Series:
    rows = _at(ticks, ts)
    rows = rows[rows["price"].isna()]
    assert len(rows) == 1, rows
    return rows.iloc[0]


def _accounting_ok(res: EquityReadResult) -> bool:
    row_records = int((res.quarantine["position"] > 0).sum())
    rows_in = sum(res.rows_in.values())
    return rows_in == len(res.ticks) + row_records + sum(res.merged.values())


@pytest.fixture(scope="module")
def aig_oct8(equity_root: Path) -> EquityReadResult:
    return read_equity_day(equity_root, OCT8, ["aig"])


# ---------------------------------------------------------------------------------------------
# directory API
# ---------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_lists_days_and_symbols(equity_root: Path) -> None:
    assert list_equity_days(equity_root) == DAYS
    assert list_equity_symbols(equity_root) == ["AIG", "BAC", "IBM", "SPY"]


# ---------------------------------------------------------------------------------------------
# NBBO by hand
# ---------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_quote_event_applies_all_rows_of_its_millisecond(aig_oct8: EquityReadResult) -> None:
    # aig/20131008_quote lines 94333-94340:
    #   36000033,488100,700,0,0,N,1,0      bid 48.81 x 700
    #   36000033,0,0,488200,100,Q,1,0      ask 48.82 x 100
    #   36000034,488100,700,0,0,N,1,0      bid 48.81 x 700
    #   36000034,0,0,488300,600,Q,1,0      ask 48.83 x 600
    #   36000034,488100,800,0,0,Q,1,0      bid 48.81 x 800
    #   36000034,0,0,488300,600,Q,1,0      ask 48.83 x 600
    #   36000034,488200,100,0,0,Z,1,0      bid 48.82 x 100
    #   36000034,0,0,488300,600,Q,1,0      ask 48.83 x 600
    # 36000034 ms = 10:00:00.034 EDT = 14:00:00.034 UTC: ONE event, state after all six rows.
    ticks = aig_oct8.ticks
    prev = _quote_at(ticks, _utc("2013-10-08 14:00:00.033"))
    assert (prev["bid"], prev["bid_size"], prev["ask"], prev["ask_size"]) == (
        48.81,
        700.0,
        48.82,
        100.0,
    )
    ev = _quote_at(ticks, _utc("2013-10-08 14:00:00.034"))
    assert (ev["bid"], ev["bid_size"], ev["ask"], ev["ask_size"]) == (48.82, 100.0, 48.83, 600.0)
    assert np.isnan(ev["price"]) and ev["size"] == 0.0
    assert ev["symbol"] == "AIG"
    # no trade in that ms, so k = 0: seq = UTC epoch ms * 1000
    assert ev["seq"] == 1381240800034 * 1000


@pytest.mark.unit
def test_same_ms_bid_ask_pair_is_never_a_crossed_event(aig_oct8: EquityReadResult) -> None:
    # aig/20131008_quote lines 21375-21384 (09:43:50 EDT):
    #   35030595,486100,400,0,0,P,1,0      bid 48.61 x 400
    #   35030595,0,0,486100,300,W,1,0      ask 48.61 x 300   -> event: locked 48.61/48.61
    #   35030601,486200,100,0,0,Z,1,0      bid 48.62 x 100   (row by row: 48.62 > 48.61 crossed)
    #   35030601,0,0,486100,300,W,1,0
    #   35030601,486200,200,0,0,Z,1,0      (crossed)
    #   35030601,0,0,486100,300,W,1,0
    #   35030601,486200,100,0,0,Z,1,0      (crossed)
    #   35030601,0,0,486100,300,W,1,0
    #   35030601,486100,400,0,0,P,1,0      bid 48.61 x 400
    #   35030601,0,0,486100,300,W,1,0      ask 48.61 x 300   -> event: locked again (kept)
    ticks = aig_oct8.ticks
    ts = _utc("2013-10-08 13:43:50.601")
    assert len(_at(ticks, ts)) == 1
    ev = _quote_at(ticks, ts)
    assert (ev["bid"], ev["bid_size"], ev["ask"], ev["ask_size"]) == (48.61, 400.0, 48.61, 300.0)
    assert not (aig_oct8.quarantine["ts"] == ts).any()
    assert not (ticks["bid"] > ticks["ask"]).any()


@pytest.mark.unit
def test_trade_carries_book_of_previous_ms_and_comes_before_its_quote_event(
    aig_oct8: EquityReadResult,
) -> None:
    # quote lines 94663-94676:
    #   36001454,488100,1100,0,0,N,1,0 / 36001454,0,0,488200,200,Z,1,0
    #   36001454,488100,1100,0,0,N,1,0 / 36001454,0,0,488200,100,P,1,0  -> 48.81x1100 / 48.82x100
    #   36001612,488100,1100,0,0,N,1,0 / 36001612,0,0,488200,100,Z,1,0
    #   36001612,488100,1200,0,0,Q,1,0 / 36001612,0,0,488200,100,Z,1,0
    #   36001612,488100,1300,0,0,Q,1,0 / 36001612,0,0,488200,100,Z,1,0
    #   36001612,488100,1300,0,0,Q,1,0 / 36001612,0,0,488200,100,P,1,0
    #   36001612,488100,1300,0,0,Q,1,0 / 36001612,0,0,488300,500,Q,1,0  -> 48.81x1300 / 48.83x500
    # trade lines 3706-3708:
    #   36001612,488200,100,Q,1,0 / 36001612,488200,100,P,20000020,0 / ...,P,20000020,0
    # 36001612 ms = 14:00:01.612 UTC: three trades (book of 36001454), then the quote event.
    rows = _at(aig_oct8.ticks, _utc("2013-10-08 14:00:01.612"))
    assert len(rows) == 4
    trades, quote = rows.iloc[:3], rows.iloc[3]
    assert trades["price"].tolist() == [48.82] * 3
    assert trades["size"].tolist() == [100.0] * 3
    assert trades["bid"].tolist() == [48.81] * 3
    assert trades["bid_size"].tolist() == [1100.0] * 3
    assert trades["ask"].tolist() == [48.82] * 3
    assert trades["ask_size"].tolist() == [100.0] * 3
    assert np.isnan(quote["price"])
    assert (quote["bid"], quote["bid_size"], quote["ask"], quote["ask_size"]) == (
        48.81,
        1300.0,
        48.83,
        500.0,
    )
    base = 1381240801612 * 1000
    assert rows["seq"].tolist() == [base, base + 1, base + 2, base + 3]


@pytest.mark.unit
def test_crossed_event_quarantined_and_its_trades_kept_with_null_book(
    aig_oct8: EquityReadResult,
) -> None:
    # quote lines 180523-180550 (10:19:26 EDT):
    #   37166884,489800,1200,0,0,Z,1,0 / 37166884,0,0,489800,100,W,1,0   -> locked 48.98/48.98
    #   37166885,...                      last bid row 180537: 489900,600,P  (48.99 x 600)
    #   37166885,0,0,489800,100,W,1,0     last ask row 180538: 48.98 x 100 -> CROSSED 48.99 > 48.98
    #   37166886,489900,700,0,0,Z,1,0 ... 37166886,0,0,490000,5100,K,1,0 (row 180544)
    #   37166886,489900,1000,0,0,Z,1,0 (180549) / 37166886,0,0,490000,5100,K,1,0 (180550)
    # trade lines 6304-6310: seven trades at 37166885 (48.99); 6311-6321: eleven at 37166886.
    q = aig_oct8.quarantine
    crossed = q[q["ts"] == _utc("2013-10-08 14:19:26.885")]
    assert crossed[["source", "position", "reason"]].values.tolist() == [
        ["aig/20131008_quote", 180538, "crossed_book"]
    ]
    ticks = aig_oct8.ticks
    # trades at .885 carry the (locked, kept) book of .884
    t885 = _at(ticks, _utc("2013-10-08 14:19:26.885"))
    assert len(t885) == 7 and t885["price"].notna().all()
    assert (t885["bid"] == 48.98).all() and (t885["ask"] == 48.98).all()
    assert (t885["bid_size"] == 1200).all() and (t885["ask_size"] == 100).all()
    # trades at .886 would carry the crossed book of .885: kept, with a null book
    r886 = _at(ticks, _utc("2013-10-08 14:19:26.886"))
    t886, q886 = r886[r886["price"].notna()], r886[r886["price"].isna()]
    assert len(t886) == 11 and (t886["price"] == 48.99).all()
    assert t886[["bid", "ask", "bid_size", "ask_size"]].isna().all().all()
    # and the carried book moved on from the raw updates: .886 is uncrossed again
    assert q886[["bid", "bid_size", "ask", "ask_size"]].values.tolist() == [
        [48.99, 1000.0, 49.0, 5100.0]
    ]


@pytest.mark.unit
def test_utc_conversion_and_pre_post_market_kept(aig_oct8: EquityReadResult) -> None:
    # first quote rows: 14400135,481800,100,0,0,P,1,0 / 14400135,0,0,491000,300,P,1,0
    # 14400135 ms = 04:00:00.135 EDT = 08:00:00.135 UTC (pre-market, kept)
    first = aig_oct8.ticks.iloc[0]
    assert first["ts"] == _utc("2013-10-08 08:00:00.135")
    assert (first["bid"], first["bid_size"], first["ask"], first["ask_size"]) == (
        48.18,
        100.0,
        49.10,
        300.0,
    )
    assert aig_oct8.ticks["ts"].max() > _utc("2013-10-08 20:00:00")  # post-market kept
    assert str(aig_oct8.ticks["ts"].dtype) == "datetime64[ns, UTC]"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("day", "ms", "expected"),
    [
        (dt.date(2013, 12, 2), 34200000, "2013-12-02 14:30:00"),  # EST: +5 h
        (dt.date(2013, 3, 10), 34200000, "2013-03-10 13:30:00"),  # DST began 02:00 that day
        (dt.date(2013, 3, 10), 3600000, "2013-03-10 06:00:00"),  # 01:00 was still EST
        (dt.date(2013, 11, 3), 34200000, "2013-11-03 14:30:00"),  # DST ended 02:00 that day
        (dt.date(2013, 10, 8), 0, "2013-10-08 04:00:00"),
    ],
)
def test_utc_offset_of_the_day(day: dt.date, ms: int, expected: str) -> None:
    row = f"{ms},1000000,100,0,0,P,1,0\n{ms},0,0,1000100,200,P,1,0".encode()
    res = parse_equity_files(row, None, "AIG", day, "x")
    assert res.ticks["ts"].tolist() == [_utc(expected)]


@pytest.mark.unit
def test_first_side_alone_is_null_until_the_other_is_seen() -> None:
    # the real first row of aig/20131008_quote alone: a bid without any ask yet
    res = parse_equity_files(b"14400135,481800,100,0,0,P,1,0", None, "aig", OCT8, "x")
    t = res.ticks.iloc[0]
    assert (t["bid"], t["bid_size"]) == (48.18, 100.0)
    assert np.isnan(t["ask"]) and np.isnan(t["ask_size"])


def _reference(quote: bytes, trade: bytes, day: dt.date) -> list[tuple]:
    """The rules in plain Python, row by row: the test oracle for a window of the real file."""
    offset_ms = 4 * 3_600_000  # EDT
    midnight = int(pd.Timestamp(day, tz="UTC").value // 1_000_000)
    book: dict[str, float | None] = {"bid": None, "bsz": None, "ask": None, "asz": None}
    events: list[tuple[int, int, tuple]] = []  # (ms, kind 0 trade / 1 quote, values)
    qrows = [r.split(b",") for r in quote.split(b"\n") if r]
    trows = [r.split(b",") for r in trade.split(b"\n") if r]
    quote_ms: list[int] = []
    quote_states: list[tuple] = []
    i = 0
    while i < len(qrows):
        ms = int(qrows[i][0])
        while i < len(qrows) and int(qrows[i][0]) == ms:
            r = qrows[i]
            if int(r[7]) == 0:
                if int(r[1]) > 0:
                    book["bid"], book["bsz"] = int(r[1]) / 10_000, float(r[2])
                if int(r[3]) > 0:
                    book["ask"], book["asz"] = int(r[3]) / 10_000, float(r[4])
            i += 1
        state = (book["bid"], book["ask"], book["bsz"], book["asz"])
        quote_ms.append(ms)
        quote_states.append(state)
        events.append((ms, 1, (*state, None, 0.0)))
    for r in trows:
        if int(r[5]) != 0:
            continue
        ms = int(r[0])
        n_prior = bisect.bisect_left(quote_ms, ms)  # quote events strictly before this ms
        state = quote_states[n_prior - 1] if n_prior else (None, None, None, None)
        if state[0] is not None and state[1] is not None and state[0] > state[1]:
            state = (None, None, None, None)
        events.append((ms, 0, (*state, int(r[1]) / 10_000, float(r[2]))))
    events.sort(key=lambda e: (e[0], e[1]))  # stable: file order within (ms, kind)
    out = []
    k: dict[int, int] = {}
    for ms, _kind, vals in events:
        utc_ms = midnight + ms + offset_ms
        seq = utc_ms * 1000 + k.get(ms, 0)
        k[ms] = k.get(ms, 0) + 1
        bid, ask = vals[0], vals[1]
        if bid is not None and ask is not None and bid > ask:
            continue  # crossed quote event: quarantined
        out.append((utc_ms, seq, *vals))
    return out


@pytest.mark.unit
def test_matches_row_by_row_reference_on_half_an_hour_of_real_rows(equity_root: Path) -> None:
    # 10:00-10:30 EDT of AIG 2013-10-08 (~45k quote rows, ~1.3k trades), oracle in plain Python
    q = [
        r
        for r in _lines(equity_root / "aig/20131008_quote.zip")
        if 36000000 <= int(r[:8]) < 37800000
    ]
    t = [
        r
        for r in _lines(equity_root / "aig/20131008_trade.zip")
        if 36000000 <= int(r[:8]) < 37800000
    ]
    qb, tb = b"\n".join(q), b"\n".join(t)
    expected = _reference(qb, tb, OCT8)
    res = parse_equity_files(qb, tb, "AIG", OCT8, "aig/20131008")
    got = res.ticks
    assert len(got) == len(expected) > 10_000
    exp = pd.DataFrame(
        expected, columns=["ms", "seq", "bid", "ask", "bid_size", "ask_size", "price", "size"]
    )
    assert (got["ts"].astype("int64").to_numpy() // 1_000_000 == exp["ms"].to_numpy()).all()
    assert (got["seq"].to_numpy() == exp["seq"].to_numpy()).all()
    for c in ["bid", "ask", "bid_size", "ask_size", "price", "size"]:
        np.testing.assert_array_equal(got[c].to_numpy(), exp[c].to_numpy(dtype=float), err_msg=c)
    assert _accounting_ok(res)


# ---------------------------------------------------------------------------------------------
# suspicious rows, trades-only symbols, counts, determinism
# ---------------------------------------------------------------------------------------------


@pytest.mark.unit
def test_suspicious_quote_row_dropped_and_does_not_touch_the_book(equity_root: Path) -> None:
    # last lines of aig/20131010_quote (1424677-1424680):
    #   72000126,490000,100,0,0,Q,1,0      bid 49.00 x 100
    #   72000126,0,0,494900,200,P,1,0      ask 49.49 x 200
    #   72000138,481000,500,0,0,P,1,1      suspicious: dropped, bid stays 49.00 x 100
    #   72000138,0,0,494900,200,P,1,0      ask 49.49 x 200
    # 72000138 ms = 20:00:00.138 EDT = 2013-10-11 00:00:00.138 UTC
    res = read_equity_day(equity_root, OCT10, ["AIG"])
    q = res.quarantine[res.quarantine["reason"] == "vendor_suspicious"]
    assert q[["source", "position", "raw"]].values.tolist() == [
        ["aig/20131010_quote", 1424679, "72000138,481000,500,0,0,P,1,1"]
    ]
    assert q["ts"].tolist() == [_utc("2013-10-11 00:00:00.138")]
    last = res.ticks.iloc[-1]
    assert last["ts"] == _utc("2013-10-11 00:00:00.138")
    assert (last["bid"], last["bid_size"], last["ask"], last["ask_size"]) == (
        49.0,
        100.0,
        49.49,
        200.0,
    )
    assert res.counts == {"crossed_book": 23, "vendor_suspicious": 1}


@pytest.mark.unit
def test_spy_trades_only_null_book_and_suspicious_trades(equity_root: Path) -> None:
    # spy/20131010_trade: 460,032 rows, 10 flagged suspicious, the first at line 453114:
    #   57749465,1655900,250629,D,20002000,1   (16:02:29.465 EDT = 20:02:29.465 UTC)
    res = read_equity_day(equity_root, OCT10, ["SPY"])
    assert res.counts == {"vendor_suspicious": 10}
    assert res.rows_in == {"SPY": 460032} and len(res.ticks) == 460022
    ticks = res.ticks
    assert ticks[["bid", "ask", "bid_size", "ask_size"]].isna().all().all()
    assert ticks["price"].notna().all() and (ticks["size"] > 0).all()
    q = res.quarantine
    assert q["position"].iloc[0] == 453114
    assert q["raw"].iloc[0] == "57749465,1655900,250629,D,20002000,1"
    assert q["ts"].iloc[0] == _utc("2013-10-10 20:02:29.465")
    assert not (_at(ticks, _utc("2013-10-10 20:02:29.465"))["size"] == 250629).any()


@pytest.mark.unit
def test_quarantine_counts_and_exact_accounting(aig_oct8: EquityReadResult) -> None:
    # AIG 2013-10-08: 1,118,140 quote + 43,342 trade rows; no suspicious rows that day
    assert aig_oct8.rows_in == {"AIG": 1_161_482}
    assert aig_oct8.counts == {"crossed_book": 51}
    assert set(aig_oct8.quarantine["source"]) == {"aig/20131008_quote"}
    assert aig_oct8.merged == {"AIG": 843_303}
    assert len(aig_oct8.ticks) == 318_128
    assert 1_161_482 == 318_128 + 51 + 843_303
    assert _accounting_ok(aig_oct8)
    assert list(aig_oct8.ticks.columns) == list(TICK_COLUMNS)
    assert set(aig_oct8.quarantine["reason"]) <= set(REJECT_REASONS)


@pytest.mark.unit
def test_seq_deterministic_unique_and_increasing(equity_root: Path) -> None:
    a = read_equity_day(equity_root, OCT8, ["IBM"])
    b = read_equity_day(equity_root, OCT8, ["IBM"])
    pd.testing.assert_frame_equal(a.ticks, b.ticks)
    pd.testing.assert_frame_equal(a.quarantine, b.quarantine)
    seq = a.ticks["seq"].to_numpy()
    assert (np.diff(seq) > 0).all()
    ms = a.ticks["ts"].astype("int64").to_numpy() // 1_000_000
    assert (seq // 1000 == ms).all()


@pytest.mark.unit
def test_read_equity_range_with_progress(equity_root: Path) -> None:
    calls: list[tuple[int, int]] = []
    res = read_equity(
        equity_root, days=DAYS[3:], symbols=["ibm"], progress=lambda i, n: calls.append((i, n))
    )
    assert calls == [(1, 2), (2, 2)]
    one = read_equity_day(equity_root, DAYS[3], ["IBM"])
    two = read_equity_day(equity_root, DAYS[4], ["IBM"])
    assert len(res.ticks) == len(one.ticks) + len(two.ticks)
    assert res.rows_in == {"IBM": one.rows_in["IBM"] + two.rows_in["IBM"]}
    expected = {k: one.counts.get(k, 0) + two.counts.get(k, 0) for k in one.counts | two.counts}
    assert res.counts == expected
    assert _accounting_ok(res)
    assert res.ticks["ts"].is_monotonic_increasing


# ---------------------------------------------------------------------------------------------
# malformed input
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def window(equity_root: Path) -> tuple[list[bytes], list[bytes]]:
    """Real rows around 10:00:01 EDT: 200 quote lines and 40 trade lines."""
    q = _lines(equity_root / "aig/20131008_quote.zip")[94500:94700]
    t = _lines(equity_root / "aig/20131008_trade.zip")[3680:3720]
    return q, t


@pytest.mark.unit
def test_bad_rows_quarantined_with_line_numbers_good_rows_kept(
    window: tuple[list[bytes], list[bytes]],
) -> None:
    q, t = window
    clean = parse_equity_files(b"\n".join(q), b"\n".join(t), "AIG", OCT8, "aig/20131008")
    bad_q = list(q)
    bad_q.insert(10, b"36001000,48x100,100,0,0,P,1,0")  # line 11: non-numeric price
    bad_q.insert(20, b"36001000,481000,100,0,0,P,1")  # line 21: 7 fields
    bad_q.insert(30, b"\xff\xfe\x00garbage")  # line 31: binary garbage
    bad_q.insert(40, b"")  # line 41: blank (not a row)
    bad_q.insert(50, b"36001000,nan,100,0,0,P,1,0")  # line 51: NaN price
    bad_q.insert(60, b"36001000,-481000,100,0,0,P,1,0")  # line 61: negative price
    bad_q.insert(70, b"36001000,0,0,0,0,P,1,0")  # line 71: updates nothing
    bad_q.insert(80, b"99999999999,481000,100,0,0,P,1,0")  # line 81: not a time of day
    bad_t = [b"36000000,,100,P,1,0", *t, b"3600"]  # empty price; truncated last line
    res = parse_equity_files(b"\n".join(bad_q), b"\n".join(bad_t), "AIG", OCT8, "aig/20131008")
    pd.testing.assert_frame_equal(res.ticks, clean.ticks)
    got = res.quarantine[["source", "position", "reason"]].values.tolist()
    assert got == [
        ["aig/20131008_quote", 11, "wrong_type"],
        ["aig/20131008_quote", 21, "unparseable"],
        ["aig/20131008_quote", 31, "unparseable"],
        ["aig/20131008_quote", 51, "nan_or_inf"],
        ["aig/20131008_quote", 61, "non_positive"],
        ["aig/20131008_quote", 71, "empty_event"],
        ["aig/20131008_quote", 81, "wrong_type"],
        ["aig/20131008_trade", 1, "wrong_type"],
        ["aig/20131008_trade", 42, "unparseable"],
    ]
    assert res.quarantine["raw"].iloc[0] == "36001000,48x100,100,0,0,P,1,0"
    assert res.quarantine["raw"].iloc[2] == "\\xff\\xfe\x00garbage"
    assert res.rows_in["AIG"] == clean.rows_in["AIG"] + 9
    assert _accounting_ok(res)


@pytest.mark.unit
def test_line_endings_and_blank_lines_do_not_change_ticks(
    window: tuple[list[bytes], list[bytes]],
) -> None:
    q, t = window
    qb, tb = b"\n".join(q), b"\n".join(t)
    clean = parse_equity_files(qb, tb, "AIG", OCT8, "s")
    for variant in (qb.replace(b"\n", b"\r\n"), qb + b"\n\n\n", qb.replace(b"\n", b"\r")):
        res = parse_equity_files(variant, tb, "AIG", OCT8, "s")
        pd.testing.assert_frame_equal(res.ticks, clean.ticks)
        assert res.quarantine.empty
    blank_first = parse_equity_files(b"\n" + qb, tb, "AIG", OCT8, "s")
    pd.testing.assert_frame_equal(blank_first.ticks, clean.ticks)


@pytest.mark.unit
@pytest.mark.parametrize("payload", [None, b"", b"\n\n", b"\x00" * 10, b"PK\x03\x04junk"])
def test_empty_or_garbage_files_never_raise(payload: bytes | None) -> None:
    res = parse_equity_files(payload, payload, "AIG", OCT8, "x")
    assert res.ticks.empty
    assert _accounting_ok(res)


@pytest.mark.unit
def test_whole_day_with_one_bad_line_takes_robust_path_and_keeps_every_tick(
    equity_root: Path, aig_oct8: EquityReadResult
) -> None:
    lines = _lines(equity_root / "aig/20131008_quote.zip")
    lines.insert(500_000, b"36001000,4x,100,0,0,P,1,0")
    trade = _member(equity_root / "aig/20131008_trade.zip")
    res = parse_equity_files(b"\n".join(lines), trade, "AIG", OCT8, "aig/20131008")
    pd.testing.assert_frame_equal(res.ticks, aig_oct8.ticks)
    bad = res.quarantine[res.quarantine["reason"] == "wrong_type"]
    assert bad["position"].tolist() == [500_001]
    assert res.counts == {"crossed_book": 51, "wrong_type": 1}


@pytest.mark.unit
def test_out_of_order_row_judged_by_tolerance(window: tuple[list[bytes], list[bytes]]) -> None:
    q, t = window
    t = list(t)
    ms, rest = t[20].split(b",", 1)
    t[20] = str(int(ms) - 2000).encode() + b"," + rest  # a trade 2 s behind its neighbours
    strict = parse_equity_files(b"\n".join(q), b"\n".join(t), "AIG", OCT8, "x")
    assert strict.counts == {"out_of_order": 1}
    assert strict.quarantine[["source", "position"]].values.tolist() == [["x_trade", 21]]
    loose = parse_equity_files(
        b"\n".join(q), b"\n".join(t), "AIG", OCT8, "x", out_of_order_tolerance="5s"
    )
    assert loose.quarantine.empty and len(loose.ticks) == len(strict.ticks) + 1
    assert loose.ticks["ts"].is_monotonic_increasing


def _day_dir(tmp_path: Path, equity_root: Path, quote_zip: bytes) -> Path:
    root = tmp_path / "equity"
    (root / "aig").mkdir(parents=True)
    (root / "aig" / "20131008_quote.zip").write_bytes(quote_zip)
    (root / "aig" / "20131008_trade.zip").write_bytes(
        (equity_root / "aig/20131008_trade.zip").read_bytes()
    )
    return root


def _zip_of(data: bytes | None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if data is not None:
            zf.writestr("20131008_aig_Quote_Tick.csv", data)
    return buf.getvalue()


@pytest.mark.unit
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda real: _member(real), "not a readable zip"),  # the CSV itself, not zipped
        (lambda real: _zip_of(None), "zip has no member"),
    ],
)
def test_unreadable_quote_zip_keeps_the_trades(
    tmp_path: Path, equity_root: Path, make: Callable[[Path], bytes], message: str
) -> None:
    root = _day_dir(tmp_path, equity_root, make(equity_root / "aig/20131008_quote.zip"))
    res = read_equity_day(root, OCT8, ["AIG"])
    q = res.quarantine
    assert q[["source", "position", "reason"]].values.tolist() == [
        ["aig/20131008_quote", 0, "unparseable"]
    ]
    assert q["raw"].iloc[0].startswith(message)
    assert len(res.ticks) == 43_342  # every trade, with a null book
    assert res.ticks["bid"].isna().all()
    assert _accounting_ok(res)


@pytest.mark.unit
def test_truncated_zip_is_salvaged(
    tmp_path: Path, equity_root: Path, aig_oct8: EquityReadResult
) -> None:
    real = (equity_root / "aig/20131008_quote.zip").read_bytes()
    root = _day_dir(tmp_path, equity_root, real[: len(real) // 2])
    res = read_equity_day(root, OCT8, ["AIG"])
    full = aig_oct8.ticks
    q = res.quarantine
    assert q["position"].iloc[0] == 0 and q["raw"].iloc[0].startswith("damaged zip")
    assert (q["reason"] == "unparseable").sum() == 2  # the file, and its cut last line
    quotes = res.ticks[res.ticks["price"].isna()].reset_index(drop=True)
    full_quotes = full[full["price"].isna()].reset_index(drop=True)
    assert len(quotes) > 100_000  # about half the day's quote events survive
    # every salvaged quote event but the last (its ms may have lost rows) is exactly right
    pd.testing.assert_frame_equal(quotes.iloc[:-1], full_quotes.iloc[: len(quotes) - 1])
    assert _accounting_ok(res)


@pytest.mark.unit
def test_corrupted_member_never_raises(tmp_path: Path, equity_root: Path) -> None:
    real = bytearray((equity_root / "ibm/20131008_quote.zip").read_bytes())
    for i in range(len(real) // 2, len(real) // 2 + 64):
        real[i] ^= 0x5A
    root = tmp_path / "equity"
    (root / "ibm").mkdir(parents=True)
    (root / "ibm" / "20131008_quote.zip").write_bytes(bytes(real))
    res = read_equity_day(root, OCT8)
    assert res.quarantine["raw"].iloc[0].startswith("damaged member")
    assert len(res.ticks) > 10_000
    assert _accounting_ok(res)


# ---------------------------------------------------------------------------------------------
# fuzzing
# ---------------------------------------------------------------------------------------------

_NEVER_VALID = ["", "x", "1.2.3", "--1", "0x10", "nan", "inf", "-inf", "-5", "1,2"]

garbage_line = st.one_of(
    st.binary(max_size=80).map(lambda b: b"\xff" + b.replace(b"\n", b"")),
    st.text(max_size=80).map(lambda s: ("x" + s.replace("\n", "")).encode("utf-8", "replace")),
    st.lists(st.sampled_from([b"1", b"2", b",", b"\r", b" ", b"a"]), max_size=30).map(
        lambda parts: b"#" + b"".join(parts)
    ),
)


@st.composite
def damaged_window(draw: st.DrawFn, rows: list[bytes]) -> tuple[list[bytes], list[int]]:
    """Real rows with garbage or broken copies of real rows inserted; 1-based bad line nos."""
    out = list(rows)
    n_bad = draw(st.integers(1, 12))
    for _ in range(n_bad):
        at = draw(st.integers(0, len(out)))
        if draw(st.booleans()):
            bad = draw(garbage_line)
        else:  # a real row with one numeric field replaced by something never valid
            fields = draw(st.sampled_from(rows)).split(b",")
            numeric = [i for i in range(len(fields)) if i not in (len(fields) - 3, len(fields) - 2)]
            i = draw(st.sampled_from(numeric))
            fields[i] = draw(st.sampled_from(_NEVER_VALID)).encode()
            bad = b",".join(fields)
        out.insert(at, bad)
    marks = [False] * len(out)
    # recover where the bad lines ended up: the good rows keep their relative order
    j = 0
    for k, line in enumerate(out):
        if j < len(rows) and line == rows[j]:
            j += 1
        else:
            marks[k] = True
    return out, [k + 1 for k, m in enumerate(marks) if m]


@pytest.mark.unit
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_inserted_garbage_never_loses_good_rows(
    data: st.DataObject, window: tuple[list[bytes], list[bytes]]
) -> None:
    q, t = window
    clean = parse_equity_files(b"\n".join(q), b"\n".join(t), "AIG", OCT8, "f")
    bad_q, q_lines = data.draw(damaged_window(q))
    bad_t, t_lines = data.draw(damaged_window(t))
    res = parse_equity_files(b"\n".join(bad_q), b"\n".join(bad_t), "AIG", OCT8, "f")
    pd.testing.assert_frame_equal(res.ticks, clean.ticks)
    rec = res.quarantine
    assert rec[rec["source"] == "f_quote"]["position"].tolist() == q_lines
    assert rec[rec["source"] == "f_trade"]["position"].tolist() == t_lines
    assert _accounting_ok(res)


@pytest.mark.unit
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_mutated_bytes_never_raise(
    data: st.DataObject, window: tuple[list[bytes], list[bytes]]
) -> None:
    q, t = window
    blobs = []
    for rows in (q, t):
        blob = bytearray(b"\n".join(rows))
        for _ in range(data.draw(st.integers(0, 20))):
            at = data.draw(st.integers(0, len(blob)))
            op = data.draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
            if op == "flip" and at < len(blob):
                blob[at] = data.draw(st.integers(0, 255))
            elif op == "insert":
                blob[at:at] = data.draw(st.binary(max_size=8))
            elif op == "delete":
                del blob[at : at + data.draw(st.integers(1, 20))]
            elif op == "cut":
                del blob[at:]
        blobs.append(bytes(blob))
    res = parse_equity_files(blobs[0], blobs[1], "AIG", OCT8, "f")
    assert _accounting_ok(res)
    ticks = res.ticks
    assert not (ticks["bid"] > ticks["ask"]).any()
    assert ticks["seq"].is_unique
    assert set(res.quarantine["reason"]) <= set(REJECT_REASONS)


# ---------------------------------------------------------------------------------------------
# the whole week
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_whole_week_row_accounting(equity_root: Path) -> None:
    res = read_equity(equity_root)
    ticks, q = res.ticks, res.quarantine
    assert set(q["reason"]) == {"crossed_book", "vendor_suspicious"}
    for sym in ["AIG", "BAC", "IBM", "SPY"]:
        raw_rows = raw_susp = 0
        for day in DAYS:
            for kind in ("quote", "trade"):
                path = equity_root / sym.lower() / f"{day:%Y%m%d}_{kind}.zip"
                if path.is_file():
                    rows = [r for r in _member(path).splitlines() if r.strip()]
                    raw_rows += len(rows)
                    raw_susp += sum(not r.endswith(b",0") for r in rows)
        n_ticks = int((ticks["symbol"] == sym).sum())
        n_quarantined = int((q["symbol"] == sym).sum())
        # rows in = ticks out + quarantined rows + quote rows merged into same-ms events
        assert raw_rows == res.rows_in[sym] == n_ticks + n_quarantined + res.merged[sym], sym
        assert int(((q["symbol"] == sym) & (q["reason"] == "vendor_suspicious")).sum()) == raw_susp
    assert res.rows_in["SPY"] == 1_887_460 and res.merged["SPY"] == 0
    # aig 10/10 (1 quote), ibm 10/07, 10/08, 10/10 (1 quote each), spy 10/10 (10 trades)
    assert res.counts["vendor_suspicious"] == 14
    # days concatenated in order, each sorted by symbol, ts, seq
    day = ticks["ts"].dt.tz_convert("America/New_York").dt.date
    assert day.is_monotonic_increasing
