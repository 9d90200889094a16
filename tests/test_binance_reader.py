"""Binance websocket capture reader: real captures, hand-checked ticks, bad input, fuzzing."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tickml.readers.binance import (
    SEQ_SHIFT,
    BinanceBookState,
    FrameError,
    _decode_json,
    _line_array,
    _read_bytes,
    _scan_lines,
    parse_binance_frame,
    read_binance_capture,
    read_binance_lines,
)
from tickml.schema import REJECT_REASONS, TICK_COLUMNS, validate_ticks

pytestmark = pytest.mark.unit

FUT = "btcusdt_20240808.gz"
SPOT = "btcusdt_20240809.gz"


def _lines(path: Path, n: int | None = None) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        out = f.read().split("\n")
    if out and out[-1] == "":
        out.pop()
    return out if n is None else out[:n]


def _ns(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms * 1_000_000, tz="UTC")


@pytest.fixture(scope="module")
def fut(binance_root: Path):
    return read_binance_capture(binance_root / FUT)


@pytest.fixture(scope="module")
def spot(binance_root: Path):
    return read_binance_capture(binance_root / SPOT)


# ------------------------------------------------------------------ real captures


def test_frame_counts_btcusdt_futures(fut):
    # the data README says "66k bookTicker, 21k trade and 6.5k depth frames"
    assert fut.frames == {
        "bookTicker": 66089,
        "trade": 21313,
        "depth": 6551,
        "snapshot": 1,  # line 55: a REST depth snapshot {"lastUpdateId": ...}
        "other": 0,
        "blank": 0,
        "rejected": 0,
    }
    assert fut.n_valid == 66089 + 21313
    assert fut.n_rejected == 0
    t = fut.ticks
    assert list(t.columns) == list(TICK_COLUMNS)
    assert set(t["symbol"]) == {"BTCUSDT"}
    assert t["seq"].is_unique
    assert (t["size"][t["price"].isna()] == 0).all()


def test_frame_counts_other_captures(binance_root: Path, spot):
    eth = read_binance_capture(binance_root / "ethusdt_20240808.gz")
    assert (eth.frames["bookTicker"], eth.frames["trade"], eth.frames["depth"]) == (
        53992,
        14076,
        6586,
    )
    assert eth.n_valid == 53992 + 14076 and eth.n_rejected == 0
    assert set(eth.ticks["symbol"]) == {"ETHUSDT"}
    assert (spot.frames["bookTicker"], spot.frames["trade"], spot.frames["depth"]) == (
        45134,
        10147,
        3044,
    )
    assert spot.n_valid == 45134 + 10147 and spot.n_rejected == 0


def test_clock_offset_statistics(fut, spot):
    # local receive clock runs ~1.27 s behind the exchange event time in these captures
    for res in (fut, spot):
        assert 1200 < res.clock["median"] < 1300
        assert res.clock["p99"] - res.clock["p1"] < 50
    assert fut.clock["n"] == 66089 + 21313 + 6551 + 1  # every futures frame carries E
    assert spot.clock["n"] == 10147 + 3044  # spot bookTickers carry no E


def test_ticks_checked_by_hand_futures(fut):
    t = fut.ticks
    u2 = 5123107839020  # line 2: bookTicker
    row = t[t["seq"] == u2 << SEQ_SHIFT].iloc[0]
    assert row["ts"] == _ns(1723161256313)
    assert (row["bid"], row["bid_size"], row["ask"], row["ask_size"]) == (
        61800.20,
        2.507,
        61800.30,
        2.510,
    )
    assert np.isnan(row["price"]) and row["size"] == 0
    # line 3: trade t=5266583935 right after it: carries line 2's book, seq = u2 << 16 + 1
    row = t[t["seq"] == (u2 << SEQ_SHIFT) + 1].iloc[0]
    assert row["ts"] == _ns(1723161256322)
    assert (row["price"], row["size"]) == (61800.30, 0.006)
    assert (row["bid"], row["bid_size"], row["ask"], row["ask_size"]) == (
        61800.20,
        2.507,
        61800.30,
        2.510,
    )
    # line 9: trade after line 8's bookTicker (u=5123107841694, B 2.634, A 2.305)
    row = t[t["seq"] == (5123107841694 << SEQ_SHIFT) + 1].iloc[0]
    assert row["ts"] == _ns(1723161256344)
    assert (row["price"], row["size"]) == (61800.30, 0.199)
    assert (row["bid_size"], row["ask_size"]) == (2.634, 2.305)


def test_ticks_checked_by_hand_spot_clock(binance_root: Path, spot):
    lines = _lines(binance_root / SPOT, 7)
    # lines 1 and 3 are depth frames with E; line 2 and 4 bookTickers without E or T
    offsets = []
    for i in (0, 2):
        local, frame = lines[i].split(" ", 1)
        offsets.append(json.loads(frame)["data"]["E"] * 1_000_000 - int(local))
    t = spot.ticks
    for i, depth_seen in ((1, 1), (3, 2)):
        local, frame = lines[i].split(" ", 1)
        data = json.loads(frame)["data"]
        row = t[t["seq"] == data["u"] << SEQ_SHIFT].iloc[0]
        assert row["ts"].value == int(local) + max(offsets[:depth_seen])
        assert row["bid"] == float(data["b"]) and row["ask_size"] == float(data["A"])
    # line 7: trade (E=1723161601438) carries line 6's book
    row = t[t["seq"] == (50093421641 << SEQ_SHIFT) + 1].iloc[0]
    assert row["ts"] == _ns(1723161601438)
    assert (row["price"], row["size"]) == (61685.99, 0.00017)
    assert (row["bid"], row["bid_size"], row["ask"], row["ask_size"]) == (
        61685.99,
        0.88722,
        61686.0,
        2.66654,
    )


def test_every_trade_carries_the_latest_book(binance_root: Path, fut):
    """Independent re-implementation with json over the whole file, trade by trade."""
    book = (np.nan,) * 4
    expected = []
    for line in _lines(binance_root / FUT):
        obj = json.loads(line.split(" ", 1)[1])
        if "stream" not in obj:
            continue
        d = obj["data"]
        if obj["stream"].endswith("@bookTicker"):
            book = (float(d["b"]), float(d["B"]), float(d["a"]), float(d["A"]))
        elif obj["stream"].endswith("@trade"):
            expected.append((d["E"], float(d["p"]), float(d["q"]), *book))
    trades = fut.ticks[fut.ticks["price"].notna()].sort_values("seq")  # seq = arrival order
    got = np.column_stack(
        [
            trades["ts"].astype("int64").to_numpy() // 1_000_000,
            trades[["price", "size", "bid", "bid_size", "ask", "ask_size"]].to_numpy(),
        ]
    )
    np.testing.assert_array_equal(got, np.array(expected, dtype=float))


def test_seq_and_time_order(fut):
    t = fut.ticks
    # seq strictly increases in arrival order; exchange E goes back a little between the two
    # streams (<= 30 ms), which the 1 s tolerance absorbs and validation re-sorts
    assert t["seq"].is_unique
    assert t["ts"].is_monotonic_increasing
    bt = t[t["price"].isna()]
    assert (bt["seq"] % (1 << SEQ_SHIFT) == 0).all()


def test_zero_tolerance_rejects_interleaving(binance_root: Path):
    res = read_binance_capture(binance_root / FUT, out_of_order_tolerance="0s")
    assert set(res.counts) == {"out_of_order"}
    # the bookTicker and trade streams interleave up to 30 ms out of E order; with a zero
    # tolerance the validator rejects the smaller of the "late" / "future" sets per round
    # (2.7% of ticks; rejecting everything behind the running max would lose 5,259 = 6%)
    assert res.counts["out_of_order"] == 2399
    ts = res.ticks["ts"]
    assert (ts.diff().dropna() >= pd.Timedelta(0)).all()


@pytest.mark.slow
def test_fast_path_matches_json_on_every_line(binance_root: Path):
    for name in (FUT,):
        raw, err = _read_bytes(binance_root / name)
        assert err is None
        lines, bad = _line_array(raw)
        sc = _scan_lines(lines, bad)
        for i, line in enumerate(lines.to_pylist()):
            rec = _decode_json(line, None, allow_raw=False)
            assert rec[:3] == (sc.kind[i], sc.local[i], sc.exch[i]), i
            if rec[0] <= 1:
                assert rec[3:5] == (sc.sym[i], sc.uid[i]), i
                got = tuple(float(v[i]) for v in sc.vals)
                np.testing.assert_array_equal(np.array(rec[5:]), np.array(got))


def test_streaming_state_matches_file_reader(binance_root: Path, spot):
    state = BinanceBookState()
    ticks = []
    for line in _lines(binance_root / SPOT):
        ticks.extend(parse_binance_frame(line, state))
    live = validate_ticks(pd.DataFrame(ticks), "live", out_of_order_tolerance="1s")
    pd.testing.assert_frame_equal(live.ticks, spot.ticks)
    assert state.frames["depth"] == 3044


# ------------------------------------------------------------------ single frames


def test_parse_raw_frames_and_errors():
    state = BinanceBookState()
    bt = '{"e":"bookTicker","u":7,"s":"ethusdt","b":"10.5","B":"1","a":"10.6","A":"2"}'
    (tick,) = parse_binance_frame(bt.encode(), state, recv_ns=1_700_000_000_000_000_000)
    assert tick["symbol"] == "ETHUSDT" and tick["seq"] == 7 << SEQ_SHIFT
    assert tick["ts"] == pd.Timestamp(1_700_000_000_000_000_000, tz="UTC")  # no E: local
    tr = '{"e":"trade","E":1700000000001,"s":"ETHUSDT","t":9,"p":"10.6","q":"0.5","m":false}'
    (tick,) = parse_binance_frame(tr, state)
    assert (tick["bid"], tick["ask"], tick["price"]) == (10.5, 10.6, 10.6)
    assert tick["seq"] == (7 << SEQ_SHIFT) + 1
    # no state: the trade is decoded alone, without a book
    (alone,) = parse_binance_frame(tr)
    assert np.isnan(alone["bid"]) and alone["price"] == 10.6
    assert parse_binance_frame('1 {"stream":"x@depth@0ms","data":{"E":1}}') == []
    assert parse_binance_frame('1 {"result":null,"id":1}') == []
    cases = {
        "1 not json": "unparseable",
        "no-separator": "unparseable",
        "12x {}": "wrong_type",
        '1 {"stream":"x@bookTicker","data":{"u":1,"s":"X","b":"1","B":"1","a":"2"}}': (
            "unparseable"
        ),
        '1 {"stream":"x@bookTicker","data":{"u":1,"s":"X","b":"abc","B":"1","a":"2","A":"1"}}': (
            "wrong_type"
        ),
        '1 {"stream":"x@trade","data":{"E":"soon","s":"X","t":1,"p":"1","q":"1"}}': "wrong_type",
        '1 {"stream":"x@trade","data":{"E":1,"s":"X","t":-1,"p":"1","q":"1"}}': "wrong_type",
        '1 {"stream":"x@trade","data":{"E":1,"s":5,"t":1,"p":"1","q":"1"}}': "wrong_type",
        "1 [1, 2]": "unparseable",
        '1 {"foo": 1}': "unparseable",
        "1 " + "[" * 100_000: "unparseable",
        b"1 \xff\xfe": "unparseable",
    }
    for line, reason in cases.items():
        with pytest.raises(ValueError) as info:
            parse_binance_frame(line, BinanceBookState())
        assert isinstance(info.value, FrameError) and info.value.reason == reason, line
        assert reason in REJECT_REASONS
    with pytest.raises(FrameError) as info:
        parse_binance_frame(tr, state)
    assert info.value.reason == "duplicate"


def _bt(local: int, u: int, b: str, a: str, e: int | None = None, s: str = "BTCUSDT") -> str:
    tail = f',"T":{e},"E":{e}' if e is not None else ""
    return (
        f'{local} {{"stream":"{s.lower()}@bookTicker","data":{{"e":"bookTicker","u":{u},'
        f'"s":"{s}","b":"{b}","B":"1.5","a":"{a}","A":"2.5"{tail}}}}}'
    )


def _tr(local: int, t: int, p: str, e: int, q: str = "0.1", s: str = "BTCUSDT") -> str:
    return (
        f'{local} {{"stream":"{s.lower()}@trade","data":{{"e":"trade","E":{e},"T":{e},'
        f'"s":"{s}","t":{t},"p":"{p}","q":"{q}","X":"MARKET","m":false}}}}'
    )


E0 = 1_723_161_256_000
L0 = 1_723_161_255_000_000_000


def test_bad_values_are_quarantined_and_do_not_reach_the_book():
    lines = [
        _bt(L0, 10, "100.0", "100.5", E0),  # 1 ok
        _bt(L0 + 1, 11, "101.0", "100.5", E0 + 1),  # 2 crossed
        _tr(L0 + 2, 1, "100.5", E0 + 2),  # 3 trade: carries line 1's book
        _bt(L0 + 3, 12, "0", "100.5", E0 + 3),  # 4 non-positive
        _bt(L0 + 4, 13, "nan", "100.5", E0 + 4),  # 5 NaN
        _tr(L0 + 5, 2, "-1", E0 + 5),  # 6 non-positive trade
        _tr(L0 + 6, 2, "100.5", E0 + 6),  # 7 duplicate trade id
        _bt(L0 + 7, 10, "100.0", "100.5", E0 + 7),  # 8 duplicate update id
        _bt(L0 + 8, 14, "100.0", "100.5", E0 + 8, s=""),  # 9 empty symbol
        _tr(L0 + 9, 3, "100.5", E0 - 5000),  # 10 5 s back: out of order
        _tr(L0 + 10, 4, "100.5", E0 + 9 - 500),  # 11 0.5 s back: kept
        "",  # 12 blank
        _bt(L0 + 11, 15, "1", "2", E0 + 10)[:-3],  # 13 broken json
    ]
    res = read_binance_lines(lines, "mem")
    reasons = dict(zip(res.quarantine["position"], res.quarantine["reason"], strict=True))
    assert reasons == {
        2: "crossed_book",
        4: "non_positive",
        5: "nan_or_inf",
        6: "non_positive",
        7: "duplicate",
        8: "duplicate",
        9: "empty_symbol",
        10: "out_of_order",
        13: "unparseable",
    }
    t = res.ticks
    assert len(t) == 3 and res.frames["blank"] == 1
    trade = t[t["price"].notna()].sort_values("seq")
    assert (trade["bid"] == 100.0).all() and (trade["ask"] == 100.5).all()
    assert t["ts"].is_monotonic_increasing  # the 0.5 s late trade was re-sorted


def test_seq_stays_increasing_past_65535_trades_between_quotes():
    n = 70_000
    lines = [_bt(L0, 1, "1.0", "1.1", E0)]
    lines += [_tr(L0 + i, 100 + i, "1.1", E0 + i // 100) for i in range(n)]
    lines.append(_bt(L0 + n, 2, "1.0", "1.1", E0 + n // 100))
    res = read_binance_lines(lines, "mem")
    assert res.n_valid == n + 2 and res.n_rejected == 0
    seq = res.ticks.sort_values("seq")["seq"].to_numpy()
    assert seq[0] == 1 << SEQ_SHIFT and seq[-1] == (1 << SEQ_SHIFT) + n + 1
    assert (np.diff(seq) == 1).all()


def test_local_clock_option(binance_root: Path, tmp_path: Path):
    path = tmp_path / "part.txt"
    path.write_text("\n".join(_lines(binance_root / FUT, 200)) + "\n")
    res = read_binance_capture(path, clock="local")
    first = _lines(binance_root / FUT, 2)[1]
    assert res.ticks["ts"].iloc[0].value == int(first.split(" ")[0])


def test_truncated_gzip_and_invalid_utf8(binance_root: Path, tmp_path: Path):
    lines = _lines(binance_root / FUT, 2000)
    clean = read_binance_lines(lines, "mem")
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    cut = tmp_path / "cut.gz"
    cut.write_bytes(data[: len(data) // 2])
    res = read_binance_capture(cut)
    assert 0 < res.n_valid < clean.n_valid
    last = res.quarantine.iloc[-1]
    assert last["reason"] == "unparseable" and "truncated" in last["raw"]
    # every tick read from the damaged file is one of the clean file's ticks
    merged = res.ticks.merge(clean.ticks, how="left", indicator=True)
    assert (merged["_merge"] == "both").all()
    blob = b"\n".join(x.encode() for x in lines[:100])
    blob = blob.replace(lines[9].encode(), lines[9].encode()[:40] + b"\xff\xfe" + b"x")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(blob)
    res = read_binance_capture(bad)
    assert res.quarantine[["position", "reason"]].values.tolist() == [[10, "unparseable"]]


# ------------------------------------------------------------------ fuzzing

_JUNK = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Nd"), blacklist_characters="\n\r"),
    min_size=1,
    max_size=8,
).filter(lambda s: s.strip() != "")


@st.composite
def _mutation(draw: st.DrawFn, n: int) -> tuple[str, int, object]:
    kind = draw(st.sampled_from(["insert", "truncate", "bytes", "garbage", "duplicate"]))
    return kind, draw(st.integers(0, n - 1)), draw(st.integers(0, 10**6))


@pytest.fixture(scope="module")
def samples(binance_root: Path) -> dict[str, list[str]]:
    return {
        "futures": _lines(binance_root / FUT, 300),
        "spot": _lines(binance_root / SPOT, 300),
        "eth": _lines(binance_root / "ethusdt_20240808.gz", 300),
    }


@pytest.mark.slow
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    which=st.sampled_from(["futures", "spot", "eth"]),
    muts=st.lists(_mutation(300), min_size=1, max_size=25),
    junk=st.lists(_JUNK, min_size=25, max_size=25),
    garbage=st.lists(st.binary(min_size=0, max_size=60), min_size=25, max_size=25),
)
def test_fuzz_mutated_lines_never_raise_and_keep_good_lines(
    samples, tmp_path_factory, which, muts, junk, garbage
):
    base = samples[which]
    clean = read_binance_lines(base, "clean")
    lines: list[bytes] = [x.encode() for x in base]
    mutated: set[int] = set()
    extra: list[tuple[int, bytes]] = []
    for k, (kind, i, r) in enumerate(muts):
        if i in mutated:
            continue
        line = lines[i]
        if kind == "insert":
            at = r % (len(line) + 1)
            lines[i] = line[:at] + junk[k].encode() + line[at:]
        elif kind == "truncate":
            lines[i] = line[: r % max(len(line) - 1, 1)]
        elif kind == "bytes":
            at = r % (len(line) + 1)
            lines[i] = line[:at] + b"\xc3\x28\xff" + line[at:]
        elif kind == "garbage":
            extra.append((i, garbage[k].replace(b"\n", b"")))
            continue
        else:
            extra.append((i + 1 + r % 50, line))  # an exact repeat later on
            continue
        mutated.add(i)
    out = list(lines)
    for at, blob in sorted(extra, reverse=True):
        out.insert(min(at, len(out)), blob)
    path = tmp_path_factory.mktemp("fuzz") / "capture.txt"
    path.write_bytes(b"\n".join(out) + b"\n")
    res = read_binance_capture(path)  # never raises
    # every line is accounted for exactly once
    skipped = sum(res.frames[k] for k in ("depth", "snapshot", "other", "blank"))
    assert res.n_valid + res.n_rejected + skipped == len(out)
    assert set(res.quarantine["reason"]) <= set(REJECT_REASONS)
    assert res.quarantine["position"].between(1, len(out)).all()
    # the ticks of the untouched lines all come out, compared on what does not depend on the
    # neighbouring (possibly mutated) lines: trades on their own fields, quotes on their book
    # and seq (u << 16); a spot quote's ts depends on the clock offset of earlier frames
    keep = [i for i in range(len(base)) if i not in mutated]
    want = read_binance_lines([base[i] for i in keep], "kept").ticks
    got = res.ticks
    for cols, is_trade in (
        (["symbol", "ts", "price", "size"], True),
        (["symbol", "seq", "bid", "ask", "bid_size", "ask_size"], False),
    ):
        g = got[got["price"].notna() == is_trade][cols].astype(str).value_counts()
        w = want[want["price"].notna() == is_trade][cols].astype(str).value_counts()
        short = w.sub(g.reindex(w.index, fill_value=0))
        assert (short <= 0).all(), short[short > 0]
    assert len(clean.ticks) >= len(want)
