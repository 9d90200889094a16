"""Canonical Parquet/CSV reader: every reject reason from a CSV, round trips, fuzzing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickml.readers.binance import read_binance_capture
from tickml.readers.canonical import read_canonical, write_canonical
from tickml.schema import REJECT_REASONS, TICK_COLUMNS, derive_seq

pytestmark = pytest.mark.unit

HEADER = "symbol,ts,seq,bid,ask,bid_size,ask_size,price,size"
GOOD = [
    "AAA,2024-08-09T13:30:00.000000001Z,1,10.0,10.1,100,200,,0",
    "AAA,2024-08-09T13:30:00.5Z,2,10.0,10.1,100,200,10.1,50",
    "AAA,2024-08-09T13:30:01Z,3,10.0,10.2,100,300,,0",
]


def _csv(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _reasons(res) -> dict[int, str]:
    return dict(zip(res.quarantine["position"], res.quarantine["reason"], strict=True))


def test_good_rows_and_zones(tmp_path: Path):
    res = read_canonical(_csv(tmp_path, GOOD))
    assert res.n_valid == 3 and res.n_rejected == 0
    t = res.ticks
    assert list(t.columns) == list(TICK_COLUMNS)
    assert t["ts"].iloc[0] == pd.Timestamp("2024-08-09 13:30:00.000000001", tz="UTC")
    assert t["price"].isna().tolist() == [True, False, True]
    assert t["size"].tolist() == [0.0, 50.0, 0.0]


def test_timestamp_forms_naive_is_utc(tmp_path: Path):
    ns = pd.Timestamp("2024-08-09 13:30:00.25", tz="UTC").value
    rows = [
        "AAA,2024-08-09 13:30:00.25,1,10,10.1,1,1,,0",  # naive: UTC
        "AAA,2024-08-09T15:30:00.25+02:00,2,10,10.1,1,1,,0",  # with offset
        f"AAA,{ns},3,10,10.1,1,1,,0",  # integer ns
        "aaa ,2024-08-09T13:30:00.250Z,4,10,10.1,1,1,,0",  # symbol normalized
    ]
    res = read_canonical(_csv(tmp_path, rows))
    assert res.n_rejected == 0
    assert (res.ticks["ts"].astype("int64") == ns).all()
    assert set(res.ticks["symbol"]) == {"AAA"}


def test_unparseable_wrong_column_count(tmp_path: Path):
    rows = [GOOD[0], "AAA,2024-08-09T13:30:00.6Z,9,10.0", GOOD[1], "AAA,1,2,3,4,5,6,7,8,9", GOOD[2]]
    res = read_canonical(_csv(tmp_path, rows))
    assert _reasons(res) == {3: "unparseable", 5: "unparseable"}
    assert res.n_valid == 3


def test_unparseable_bad_quoting(tmp_path: Path):
    rows = [
        GOOD[0],
        'AAA,2024-08-09T13:30:00.6Z,4,"10.0,10.1,1,1,,0',  # quote left open
        'AAA,2024-08-09T13:30:00.7Z,5,"10"0,10.1,1,1,,0',  # text after a closing quote
        '"AAA","2024-08-09T13:30:00.8Z","6","10.0","10.1","1","1","","0"',  # fine
    ]
    res = read_canonical(_csv(tmp_path, rows))
    assert _reasons(res) == {3: "unparseable", 4: "unparseable"}
    assert res.ticks["seq"].tolist() == [1, 6]


def test_unparseable_invalid_utf8(tmp_path: Path):
    path = tmp_path / "t.csv"
    body = "\n".join([HEADER, GOOD[0], "XX", GOOD[1]]).encode()
    path.write_bytes(body.replace(b"XX", b"A\xff\xfeA,2024-08-09T13:30:00.6Z,9,1,2,1,1,,0"))
    res = read_canonical(path)
    assert _reasons(res) == {3: "unparseable"}
    assert res.n_valid == 2


def test_wrong_type(tmp_path: Path):
    rows = [
        GOOD[0],
        "AAA,2024-08-09T13:30:00.6Z,4,10.0,10.1,1,1,abc,5",  # price 'abc'
        "AAA,yesterday,5,10.0,10.1,1,1,,0",  # ts
        "AAA,2024-08-09T13:30:00.7Z,1.5,10.0,10.1,1,1,,0",  # seq
        "AAA,,7,10.0,10.1,1,1,,0",  # missing ts
        "AAA,2024-08-09T13:30:00.8Z,8,10.0,10.1,1,1 000,,0",  # ask_size '1 000'
    ]
    res = read_canonical(_csv(tmp_path, rows))
    assert _reasons(res) == {n: "wrong_type" for n in (3, 4, 5, 6, 7)}
    assert "abc" in res.quarantine.iloc[0]["raw"]


def test_empty_symbol(tmp_path: Path):
    res = read_canonical(_csv(tmp_path, [GOOD[0], " ,2024-08-09T13:30:00.6Z,4,1,2,1,1,,0"]))
    assert _reasons(res) == {3: "empty_symbol"}


def test_nan_or_inf(tmp_path: Path):
    rows = [
        "AAA,2024-08-09T13:30:00.6Z,4,nan,10.1,1,1,,0",  # bid NaN with a size
        "AAA,2024-08-09T13:30:00.7Z,5,10,inf,1,1,,0",
        "AAA,2024-08-09T13:30:00.8Z,6,10,10.1,1,1,10.1,",  # a trade without size
    ]
    res = read_canonical(_csv(tmp_path, rows))
    assert _reasons(res) == {2: "nan_or_inf", 3: "nan_or_inf", 4: "nan_or_inf"}


def test_non_positive(tmp_path: Path):
    rows = [
        "AAA,2024-08-09T13:30:00.6Z,4,0,10.1,1,1,,0",
        "AAA,2024-08-09T13:30:00.7Z,5,10,10.1,1,1,10.1,-5",
    ]
    res = read_canonical(_csv(tmp_path, rows))
    assert _reasons(res) == {2: "non_positive", 3: "non_positive"}


def test_crossed_book(tmp_path: Path):
    rows = [GOOD[0], "AAA,2024-08-09T13:30:00.6Z,4,10.2,10.1,1,1,,0", GOOD[1]]
    res = read_canonical(_csv(tmp_path, rows))
    assert _reasons(res) == {3: "crossed_book"}


def test_out_of_order_with_tolerance(tmp_path: Path):
    rows = [GOOD[2], GOOD[1], GOOD[0]]  # 13:30:01, 13:30:00.5, 13:30:00.000000001
    path = _csv(tmp_path, rows)
    assert _reasons(read_canonical(path)) == {3: "out_of_order", 4: "out_of_order"}
    res = read_canonical(path, out_of_order_tolerance="600ms")
    assert _reasons(res) == {4: "out_of_order"}
    assert res.ticks["seq"].tolist() == [2, 3]  # kept within tolerance, re-sorted


def test_duplicate_seq(tmp_path: Path):
    again = "AAA,2024-08-09T13:30:02Z,2,10.0,10.1,100,200,10.1,60"  # seq 2 again
    res = read_canonical(_csv(tmp_path, [*GOOD, again]))
    assert _reasons(res) == {5: "duplicate"}


def test_duplicate_across_files_without_seq(tmp_path: Path):
    header = "symbol,ts,bid,ask,bid_size,ask_size,price,size"
    rows = [",".join(r.split(",")[:2] + r.split(",")[3:]) for r in GOOD]
    a = _csv(tmp_path, [rows[0], rows[1], rows[1], rows[2]], header, "a.csv")  # repeat: kept
    b = _csv(tmp_path, [rows[2]], header, "b.csv")  # a repeat of file a: duplicate
    res = read_canonical(tmp_path)
    assert res.quarantine[["source", "position", "reason"]].values.tolist() == [
        [str(b), 2, "duplicate"]
    ]
    assert res.n_valid == 4
    assert res.ticks["seq"].is_unique
    res = read_canonical([a], drop_exact_repeats=True)
    assert _reasons(res) == {4: "duplicate"}


def test_empty_event_and_vendor_suspicious(tmp_path: Path):
    header = HEADER + ",suspicious"
    rows = [
        GOOD[0] + ",0",
        "AAA,2024-08-09T13:30:00.6Z,4,,,,,,0,false",  # nothing happened
        "AAA,2024-08-09T13:30:00.7Z,5,10,10.1,1,1,10.1,5,1",  # vendor flag
        "AAA,2024-08-09T13:30:00.8Z,6,10,10.1,1,1,10.1,5,maybe",  # flag not a boolean
    ]
    res = read_canonical(_csv(tmp_path, rows, header))
    assert _reasons(res) == {3: "empty_event", 4: "vendor_suspicious", 5: "wrong_type"}


def test_bad_symbols_are_quarantined_not_used(tmp_path: Path):
    rows = [
        GOOD[0],
        "A/B,2024-08-09T13:30:00.6Z,4,10,10.1,1,1,,0",
        "..,2024-08-09T13:30:00.6Z,5,10,10.1,1,1,,0",
        "A\\B,2024-08-09T13:30:00.6Z,6,10,10.1,1,1,,0",
        f"{'X' * 33},2024-08-09T13:30:00.6Z,7,10,10.1,1,1,,0",
        "BRK.B,2024-08-09T13:30:00.6Z,8,10,10.1,1,1,,0",  # a real class-B share: kept
    ]
    res = read_canonical(_csv(tmp_path, rows))
    assert _reasons(res) == {n: "bad_symbol" for n in (3, 4, 5, 6)}
    assert sorted(res.ticks["symbol"].unique()) == ["AAA", "BRK.B"]


def test_out_of_range_and_price_jump(tmp_path: Path):
    ok = [f"AAA,2024-08-09T13:30:0{i}Z,{i + 10},10.0,10.1,1,1,10.05,5" for i in range(8)]
    rows = [
        *ok[:4],
        "AAA,2024-08-09T13:30:04.5Z,30,10.0,10.1,1,1,1e300,5",  # absurd price
        "AAA,2024-08-09T13:30:04.6Z,31,10.0,10.1,1,1,0.1005,5",  # decimal-shifted print
        "AAA,1969-12-31T23:59:59Z,32,10.0,10.1,1,1,,0",  # before min_date
        "AAA,2024-08-09T13:30:04.7Z,33,10.0,10.1,1e20,1,,0",  # absurd size
        *ok[4:],
    ]
    res = read_canonical(_csv(tmp_path, rows))
    assert _reasons(res) == {6: "out_of_range", 7: "price_jump", 8: "out_of_range",
                             9: "out_of_range"}
    assert res.n_valid == 8


def test_every_reject_reason_is_reachable_from_csv():
    """Guard: the tests above cover every code of REJECT_REASONS."""
    src = Path(__file__).read_text()
    for reason in REJECT_REASONS:
        assert f'"{reason}"' in src.split("def test_every_reject_reason")[0], reason


def test_missing_columns_raise_naming_them(tmp_path: Path):
    path = _csv(tmp_path, ["AAA,1,2"], header="symbol,ts,bid")
    with pytest.raises(ValueError, match=r"ask.*bid_size|'ask'") as info:
        read_canonical(path)
    for col in ("ask", "bid_size", "ask_size", "price", "size"):
        assert col in str(info.value)
    pq_path = tmp_path / "x.parquet"
    pd.DataFrame({"symbol": ["A"], "ts": [1]}).to_parquet(pq_path)
    with pytest.raises(ValueError, match="bid"):
        read_canonical(pq_path)


def test_derived_seq_and_blank_lines(tmp_path: Path):
    header = "ts,symbol,price,size,bid,ask,bid_size,ask_size,comment"  # any order, extras
    rows = [
        "2024-08-09T13:30:00.001Z,AAA,10.1,5,10,10.1,1,1,x",
        "",
        "2024-08-09T13:30:00.001Z,AAA,10.1,5,10,10.1,1,1,x",  # same ms: k = 1
        "2024-08-09T13:30:00.002Z,BBB,,,10,10.1,1,1,",
    ]
    res = read_canonical(_csv(tmp_path, rows, header))
    assert res.n_rejected == 0 and res.n_valid == 3
    ms = pd.Timestamp("2024-08-09T13:30:00.001Z").value // 1_000_000
    assert res.ticks["seq"].tolist() == [ms * 1000, ms * 1000 + 1, (ms + 1) * 1000]
    expect = derive_seq(res.ticks["ts"].astype("int64").to_numpy(), res.ticks["symbol"].to_numpy())
    assert (res.ticks["seq"].to_numpy() == expect).all()


def test_unreadable_files_are_quarantined(tmp_path: Path):
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    _csv(tmp_path, GOOD, name="ok.csv")
    (tmp_path / "empty.csv").write_bytes(b"")
    res = read_canonical(tmp_path)
    assert res.n_valid == 3
    q = res.quarantine
    assert q[["position", "reason"]].values.tolist() == [[0, "unparseable"]]
    assert q["source"].iloc[0].endswith("broken.parquet")


# ------------------------------------------------------------------ round trips


@pytest.fixture(scope="module")
def real_ticks(binance_root: Path) -> pd.DataFrame:
    return read_binance_capture(binance_root / "btcusdt_20240809.gz").ticks


@pytest.mark.parametrize("name", ["t.csv", "t.csv.gz", "t.parquet"])
def test_round_trip_real_ticks(tmp_path: Path, real_ticks: pd.DataFrame, name: str):
    ticks = real_ticks.copy()
    ticks.loc[:5, ["bid", "bid_size"]] = np.nan  # a missing book side survives too
    path = write_canonical(ticks, tmp_path / "sub" / name)
    back = read_canonical(path)
    assert back.n_rejected == 0
    pd.testing.assert_frame_equal(back.ticks, ticks)


def test_round_trip_directory_of_days(tmp_path: Path, real_ticks: pd.DataFrame):
    half = len(real_ticks) // 2
    write_canonical(real_ticks.iloc[:half], tmp_path / "d1.parquet")
    write_canonical(real_ticks.iloc[half:], tmp_path / "d2.csv")
    back = read_canonical(tmp_path)
    pd.testing.assert_frame_equal(back.ticks, real_ticks)


# ------------------------------------------------------------------ fuzzing

_GARBAGE = st.one_of(
    st.text(max_size=80).map(lambda s: s.replace("\n", "").encode("utf-8", "surrogatepass")),
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"")),
    st.lists(st.sampled_from(["AAA", '"', ",", "1", "nan", "-", "x", "Z", " "]), max_size=30).map(
        lambda xs: "".join(xs).encode()
    ),
)


@pytest.fixture(scope="module")
def clean_csv(real_ticks: pd.DataFrame, tmp_path_factory) -> tuple[list[bytes], pd.DataFrame]:
    sample = real_ticks.iloc[:300].reset_index(drop=True)
    path = write_canonical(sample, tmp_path_factory.mktemp("clean") / "clean.csv")
    return path.read_bytes().split(b"\n")[:-1], sample


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    garbage=st.lists(st.tuples(st.integers(1, 300), _GARBAGE), min_size=1, max_size=30),
    crlf=st.booleans(),
)
def test_fuzz_garbage_lines(clean_csv, tmp_path_factory, garbage, crlf):
    lines, sample = clean_csv
    out = list(lines)
    for at, blob in sorted(garbage, key=lambda g: -g[0]):
        out.insert(at, blob.replace(b"\r", b"") if crlf else blob)
    sep = b"\r\n" if crlf else b"\n"
    path = tmp_path_factory.mktemp("fuzz") / "f.csv"
    path.write_bytes(sep.join(out) + sep)
    res = read_canonical(path)  # never raises
    data_lines = sum(1 for x in out[1:] if x.strip(b"\r") != b"")  # blank lines are skipped
    assert res.n_valid + res.n_rejected == data_lines
    assert set(res.quarantine["reason"]) <= set(REJECT_REASONS)
    # every valid line comes out exactly once (and unchanged)
    key = pd.MultiIndex.from_frame(sample)
    mine = res.ticks[pd.MultiIndex.from_frame(res.ticks).isin(key)].reset_index(drop=True)
    pd.testing.assert_frame_equal(mine, sample)
