"""The PostgreSQL tick store against a real PostgreSQL server (the session's scratch database)."""

from __future__ import annotations

import datetime as dt
import logging
import struct
import threading
import time

import numpy as np
import pandas as pd
import psycopg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tickml.redact import redact
from tickml.schema import FLOAT_COLUMNS, TICK_COLUMNS, make_quarantine
from tickml.store.postgres import (
    PG_EPOCH_OFFSET_US,
    TickStore,
    encode_copy_binary,
    normalize_url,
    prepare_ticks,
)

DAY = dt.date(2024, 3, 5)
DAY_NS = 86_400 * 10**9
INJECTION = "x'); DROP TABLE ticks;--"


def _ticks(symbols=("AAA", "BBB"), n=5, day=DAY, start_hour=15) -> pd.DataFrame:
    rows = []
    base = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=start_hour)
    for s in symbols:
        for i in range(n):
            trade = i % 2 == 0
            rows.append(
                (
                    s,
                    base + pd.Timedelta(milliseconds=37 * i),
                    1000 * i,
                    10.0 + i / 100,
                    10.02,
                    100.0 * (i + 1),
                    200.0,
                    10.01 if trade else np.nan,
                    50.0 if trade else 0.0,
                )
            )
    return pd.DataFrame(rows, columns=list(TICK_COLUMNS)).astype({"ts": "datetime64[ns, UTC]"})


def _expected(frame: pd.DataFrame) -> pd.DataFrame:
    """What the store should give back: ts rounded up to the microsecond, canonical order."""
    out = frame.copy()
    out["ts"] = out["ts"].dt.ceil("us")
    return out.sort_values(["symbol", "ts", "seq"], kind="stable").reset_index(drop=True)


def _assert_same(back: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Exact equality, floats compared bit for bit (-0.0 != 0.0) with every NaN equal."""
    assert list(back.columns) == list(TICK_COLUMNS)
    assert str(back["ts"].dtype) == "datetime64[ns, UTC]"
    assert back["seq"].dtype == np.int64
    assert back["symbol"].tolist() == expected["symbol"].tolist()
    assert back["ts"].tolist() == expected["ts"].tolist()
    assert back["seq"].tolist() == expected["seq"].tolist()
    for c in FLOAT_COLUMNS:
        b = back[c].to_numpy(dtype=np.float64)
        e = expected[c].to_numpy(dtype=np.float64, na_value=np.nan)
        assert back[c].dtype == np.float64
        assert np.array_equal(np.isnan(b), np.isnan(e)), c
        ok = ~np.isnan(e)
        assert np.array_equal(b[ok].view(np.int64), e[ok].view(np.int64)), c


@pytest.fixture()
def store(pg_url):
    """A TickStore on an empty schema (the session database is shared by the tests)."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for t in ("ticks", "quarantine", "ingest_log"):
            conn.execute(f"DROP TABLE IF EXISTS {t} CASCADE")
    s = TickStore(pg_url)
    yield s
    s.close()


def _sql(pg_url: str, query: str, params=None):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


# ------------------------------------------------------------------------------------ unit


@pytest.mark.unit
def test_url_forms_and_redaction():
    assert normalize_url("postgresql+psycopg2://u@h:5432/db") == "postgresql://u@h:5432/db"
    assert normalize_url("postgresql+psycopg://u@h/db") == "postgresql://u@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(ValueError):
        normalize_url("mysql://u@h/db")
    assert redact("postgresql://bob:s3cr%40t@h:5432/db") == "postgresql://bob:***@h:5432/db"
    red = redact("postgresql://h/db?user=bob&password=s3cret&sslmode=require")
    assert "s3cret" not in red and "password=***" in red and "sslmode=require" in red
    assert "s3cret" not in repr(TickStore("postgresql+psycopg2://bob:s3cret@h/db"))


@pytest.mark.unit
def test_binary_encoder_matches_struct_pack():
    """The vectorised COPY encoder produces exactly the per-row binary tuples of the format."""
    frame = pd.DataFrame(
        {
            "symbol": ["A", "BRK.B", "Ä€", "A"],
            "ts": pd.to_datetime(
                [0, 1_381_239_000_123_456_789, -5_000_000_001, 946_684_800_000_000_999], utc=True
            ),
            "seq": [0, -1, 2**63 - 1, 7],
            "bid": [1.5, np.nan, -0.0, np.inf],
            "ask": [np.nan, np.nan, 5e-324, 1.7976931348623157e308],
            "bid_size": [1.0, np.nan, 2.0, 3.0],
            "ask_size": [np.nan, np.nan, 2.0, 3.0],
            "price": [np.nan, 48.83, np.nan, -np.inf],
            "size": [0.0, 100.0, np.nan, 1.0],
        }
    )
    expected = b""
    for row in frame.itertuples(index=False):
        sym = row.symbol.encode()
        us = -(-row.ts.value // 1000) - PG_EPOCH_OFFSET_US  # ceiling, also before 1970
        expected += struct.pack(">hi", 9, len(sym)) + sym
        expected += struct.pack(">iqiq", 8, us, 8, row.seq)
        for c in FLOAT_COLUMNS:
            v = getattr(row, c)
            expected += struct.pack(">i", -1) if np.isnan(v) else struct.pack(">id", 8, v)
    prep = prepare_ticks(frame)
    assert encode_copy_binary(prep).tobytes() == expected
    # chunk boundaries do not matter
    parts = [encode_copy_binary(prep, i, i + 1).tobytes() for i in range(len(frame))]
    assert b"".join(parts) == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.assign(symbol=["A\x00B"] * len(f)), "NUL"),
        (lambda f: f.assign(symbol=["\ud800x"] * len(f)), "UTF-8"),
        (lambda f: f.assign(symbol=[None] + ["A"] * (len(f) - 1)), "null symbol"),
        (lambda f: f.assign(symbol=[7] * len(f)), "not a str"),
        (lambda f: f.assign(ts=[pd.NaT] + list(f["ts"][1:])), "null ts"),
        (lambda f: f.assign(seq=f["seq"].astype(float)), "integer"),
        (lambda f: f.assign(bid=["x"] * len(f)), "not numeric"),
        (lambda f: f.drop(columns=["ask"]), "lacks"),
    ],
)
def test_unstorable_values_are_refused_clearly(mutate, message):
    with pytest.raises(ValueError, match=message):
        prepare_ticks(mutate(_ticks()))


# ----------------------------------------------------------------------------- integration


@pytest.mark.integration
def test_schema_creation_is_idempotent(store, pg_url):
    store.ensure_schema()
    store.ensure_schema()
    other = TickStore(pg_url.replace("postgresql://", "postgresql+psycopg2://"))
    other.ensure_schema()
    other.close()
    kinds = dict(
        _sql(
            pg_url,
            "SELECT relname, relkind::text FROM pg_class WHERE relname = ANY(%s)",
            (["ticks", "quarantine", "ingest_log", "ticks_pkey"],),
        )
    )
    assert kinds == {"ticks": "p", "quarantine": "r", "ingest_log": "r", "ticks_pkey": "I"}
    pk = _sql(
        pg_url,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'ticks_pkey'",
    )
    assert pk == [("PRIMARY KEY (symbol, ts, seq)",)]
    assert store.partitions() == []
    assert store.count() == 0


@pytest.mark.integration
def test_sqlalchemy_style_urls_connect_and_password_is_never_logged(pg_url, caplog):
    caplog.set_level(logging.DEBUG, logger="tickml.store")
    with_pw = pg_url.replace("postgresql://postgres@", "postgresql+psycopg://postgres:s3cret@")
    assert "s3cret" in with_pw  # the server trusts local connections, the password is unused
    day = dt.date(2024, 7, 1)  # this test does not clear the shared schema: its own day
    with TickStore(with_pw) as s:
        s.ensure_schema()
        s.write_day(_ticks(day=day), day)
        assert s.count(day) == 10
    assert "s3cret" not in caplog.text
    assert "***" in repr(TickStore(with_pw))


@pytest.mark.integration
def test_partitions_created_per_day_on_demand(store, pg_url):
    # one batch spanning midnight UTC lands in two partitions
    a = _ticks(("AAA",), n=3, day=DAY, start_hour=23)
    a["ts"] = (
        pd.Timestamp(DAY, tz="UTC") + pd.to_timedelta([-2, -1, 0], unit="ms") + pd.Timedelta(days=1)
    )
    a["seq"] = [1, 2, 3]
    assert store.append(a) == 3
    nxt = DAY + dt.timedelta(days=1)
    assert store.partitions() == [DAY, nxt]
    placed = _sql(
        pg_url, "SELECT tableoid::regclass::text, count(*) FROM ticks GROUP BY 1 ORDER BY 1"
    )
    assert placed == [(f"ticks_{DAY:%Y%m%d}", 2), (f"ticks_{nxt:%Y%m%d}", 1)]
    # a tick exactly at midnight is in its UTC partition but in the day that ends there
    assert store.count(DAY) == 3 and store.count(nxt) == 0
    # asking again is a no-op, also from a fresh store without the cache
    store.ensure_partitions([DAY, nxt])
    other = TickStore(pg_url)
    assert other.ensure_partitions([nxt, DAY]) == [f"ticks_{DAY:%Y%m%d}", f"ticks_{nxt:%Y%m%d}"]
    other.close()
    assert store.partitions() == [DAY, nxt]


@pytest.mark.integration
def test_partition_creation_race_is_caught(store, pg_url, caplog):
    """A writer that loses the race to create a partition gets the duplicate error and goes on.

    Deterministic: another session creates the partition and holds its transaction open until
    our CREATE TABLE IF NOT EXISTS (which cannot see the uncommitted table yet) is blocked on
    it; then it commits and ours fails with a duplicate error, which must be caught.
    """
    caplog.set_level(logging.DEBUG, logger="tickml.store")
    store.ensure_schema()
    day = dt.date(2024, 4, 1)
    rival = psycopg.connect(pg_url)
    rival.execute(
        "CREATE TABLE ticks_20240401 PARTITION OF ticks "
        "FOR VALUES FROM ('2024-04-01 00:00+00') TO ('2024-04-02 00:00+00')"
    )
    errors: list[BaseException] = []

    def ours() -> None:
        try:
            store.ensure_partitions([day])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=ours)
    t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        waiting = _sql(
            pg_url,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tickml-store' "
            "AND wait_event_type = 'Lock' AND datname = current_database()",
        )[0][0]
        if waiting:
            break
        time.sleep(0.02)
    else:
        rival.rollback()
        pytest.fail("our CREATE never blocked on the rival's transaction")
    rival.commit()
    rival.close()
    t.join(20)
    assert not errors, errors
    assert day in store.partitions()
    assert "created concurrently" in caplog.text
    # and the partition works
    assert store.append(_ticks(("AAA",), n=2, day=day)) == 2


@pytest.mark.integration
def test_concurrent_writers_ensure_the_same_partitions(store, pg_url):
    store.ensure_schema()
    days = [dt.date(2024, 5, d) for d in range(1, 6)]
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def writer() -> None:
        s = TickStore(pg_url)
        try:
            s.ensure_schema()
            barrier.wait()
            s.ensure_partitions(days)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert store.partitions() == days


@pytest.mark.integration
def test_write_day_twice_gives_no_duplicates(store):
    t = _ticks(("AAA", "BBB", "CCC"), n=50)
    assert store.write_day(t, DAY) == 150
    assert store.write_day(t, DAY) == 150
    assert store.count(DAY) == 150
    assert store.count() == 150
    _assert_same(store.read(DAY), _expected(t))
    # a re-ingest with fewer ticks replaces, it does not merge
    fewer = t[t["seq"] < 10_000]
    store.write_day(fewer, DAY)
    assert store.count(DAY) == len(fewer)
    _assert_same(store.read(DAY), _expected(fewer))


@pytest.mark.integration
def test_write_day_replaces_only_the_given_symbols(store, pg_url):
    both = _ticks(("AAA", "BBB"), n=20)
    store.write_day(both, DAY)
    new_b = _ticks(("BBB",), n=7)
    new_b["price"] = 99.0
    store.write_day(new_b, DAY)  # AAA stays: only BBB is replaced
    assert store.count(DAY, "AAA") == 20 and store.count(DAY, "BBB") == 7
    _assert_same(store.read(DAY, ["BBB"]), _expected(new_b))
    _assert_same(store.read(DAY, ["AAA"]), _expected(both[both.symbol == "AAA"]))
    # listing a symbol without ticks clears it
    store.write_day(new_b, DAY, symbols=["AAA", "BBB"])
    assert store.count(DAY, "AAA") == 0 and store.count(DAY) == 7
    # the next day is untouched by all this
    other = _ticks(("AAA",), n=3, day=DAY + dt.timedelta(days=1))
    store.write_day(other, DAY + dt.timedelta(days=1))
    store.write_day(new_b, DAY)
    assert store.count(DAY + dt.timedelta(days=1)) == 3
    # no NaN was ever stored: NaN went in as NULL
    assert _sql(pg_url, "SELECT count(*) FROM ticks WHERE price = 'NaN' OR bid = 'NaN'") == [(0,)]


@pytest.mark.integration
def test_write_day_in_a_local_time_zone_spans_two_utc_partitions(store):
    """A New York session day in winter runs past midnight UTC (20:00 EST = 01:00 UTC)."""
    day = dt.date(2024, 1, 9)
    t = _ticks(("AAA",), n=4, day=day, start_hour=14)
    late = pd.Timestamp("2024-01-09 19:59:59.999", tz="America/New_York").tz_convert("UTC")
    t.loc[3, "ts"] = late
    prev_day_late = _ticks(("AAA",), n=1, day=day, start_hour=0)  # 19:00 EST on Jan 8
    store.write_day(prev_day_late, dt.date(2024, 1, 8), tz="America/New_York")
    for _ in range(2):
        store.write_day(t, day, tz="America/New_York")
    # partitions are created where ticks go (19:00 EST on Jan 8 is Jan 9 UTC)
    assert store.partitions() == [day, dt.date(2024, 1, 10)]
    assert store.count(day, tz="America/New_York") == 4
    assert store.count(dt.date(2024, 1, 8), tz="America/New_York") == 1  # not deleted
    _assert_same(store.read(day, tz="America/New_York"), _expected(t))
    with pytest.raises(ValueError, match="outside"):
        store.write_day(t, day)  # as a UTC day the last tick is outside


@pytest.mark.integration
def test_failed_write_day_leaves_the_previous_day_intact(store):
    good = _ticks(("AAA", "BBB"), n=10)
    store.write_day(good, DAY)
    dup = pd.concat([good, good.iloc[[3]]], ignore_index=True)
    with pytest.raises(ValueError, match="duplicate"):
        store.write_day(dup, DAY)
    # two ticks that differ only below the microsecond collide in the store
    sub_us = good.copy()
    sub_us.loc[1, ["ts", "seq"]] = [good.loc[0, "ts"] - pd.Timedelta(1, "ns"), good.loc[0, "seq"]]
    with pytest.raises(ValueError, match="microsecond"):
        store.write_day(sub_us, DAY)
    with pytest.raises(ValueError, match="outside"):
        store.write_day(_ticks(("AAA",), day=DAY + dt.timedelta(days=1)), DAY)
    with pytest.raises(ValueError, match="not listed"):
        store.write_day(good, DAY, symbols=["AAA"])
    with pytest.raises(ValueError, match="NUL"):
        store.write_day(good.assign(symbol="A\x00"), DAY)
    _assert_same(store.read(DAY), _expected(good))


@pytest.mark.integration
def test_round_trip_is_exact_for_odd_symbols_and_values(store):
    symbols = [
        "BRK.B",
        "ÄÖ€",
        "a,b",
        'quote"d',
        "tab\tnew\nline",
        "",
        "😀",
        "back\\slash",
        INJECTION,
        "NULL",
        "\\N",
    ]
    t = _ticks(symbols, n=3)
    t.loc[0, ["bid", "ask", "bid_size", "ask_size"]] = np.nan  # trades-only: no book
    t.loc[1, "bid"] = -0.0
    t.loc[2, "ask"] = 5e-324
    t.loc[3, "price"] = 1.7976931348623157e308
    t.loc[4, "price"] = np.inf
    t.loc[5, "bid"] = -np.inf
    t.loc[6, "ts"] = t.loc[6, "ts"] + pd.Timedelta(1, "ns")  # rounded up to the µs
    t.loc[7, "seq"] = -(2**63)
    t.loc[8, "seq"] = 2**63 - 1
    store.write_day(t, DAY)
    back = store.read(DAY)
    _assert_same(back, _expected(t))
    assert back.loc[back.index[back.symbol == "ÄÖ€"][0], "ts"].nanosecond == 0
    # the same through a (start, end] window and a symbol filter
    window = store.read(
        (pd.Timestamp(DAY, tz="UTC"), pd.Timestamp(DAY, tz="UTC") + pd.Timedelta(days=1)),
        symbols=[INJECTION, "😀"],
    )
    _assert_same(window, _expected(t[t.symbol.isin([INJECTION, "😀"])]))
    assert store.count(DAY, INJECTION) == 3


@pytest.mark.integration
def test_injection_looking_symbols_are_stored_literally(store, pg_url):
    t = _ticks((INJECTION, 'Robert"); DROP TABLE quarantine;--'), n=2)
    store.write_day(t, DAY)
    store.append(_ticks((INJECTION,), n=3, start_hour=16))
    q = make_quarantine(
        "src'); DROP TABLE ingest_log;--",
        [1],
        "crossed_book",
        raws=[INJECTION],
        symbols=[INJECTION],
    )
    store.write_quarantine(q)
    store.log_ingest(DAY, "src'); DROP TABLE ticks;--", 1, 1, {"crossed_book": 1})
    assert store.count(symbol=INJECTION) == 5
    assert sorted(store.read(DAY)["symbol"].unique()) == sorted(t["symbol"].unique())
    stored = store.read_quarantine()
    assert stored.loc[0, "symbol"] == INJECTION and stored.loc[0, "raw"] == INJECTION
    tables = {r[0] for r in _sql(pg_url, "SELECT tablename FROM pg_tables")}
    assert {"ticks", "quarantine", "ingest_log"} <= tables


@pytest.mark.integration
def test_append_overlapping_batches_inserts_each_tick_once(store):
    t = _ticks(("AAA", "BBB"), n=500).sample(frac=1.0, random_state=1).reset_index(drop=True)
    a, b = t.iloc[:600], t.iloc[400:]
    assert store.append(a) == 600
    assert store.append(b) == 400
    assert store.append(b) == 0
    assert store.append(pd.concat([a.iloc[:5], a.iloc[:5]])) == 0
    fresh = _ticks(("CCC",), n=3)
    assert store.append(pd.concat([fresh, fresh, fresh.iloc[[0]]])) == 3  # repeats inside
    assert store.append(t.iloc[:0]) == 0
    assert store.count() == 1003
    _assert_same(store.read(DAY, ["AAA", "BBB"]), _expected(t))


@pytest.mark.integration
def test_quarantine_and_ingest_log_are_idempotent(store):
    q = pd.concat(
        [
            make_quarantine(
                "aaa/20240305_quote",
                [3, 9],
                ["crossed_book", "non_positive"],
                raws=["1,2,3", "bad\x00byte"],
                symbols=["AAA", "AAA"],
                ts=pd.to_datetime(["2024-03-05 15:00", "2024-03-05 15:01"], utc=True),
            ),
            make_quarantine("aaa/20240305_trade", [0], "unparseable", raws=["\ud800 lone"]),
        ],
        ignore_index=True,
    )
    assert store.write_quarantine(q) == 3
    assert store.write_quarantine(q) == 0  # a re-ingest stores the same rejects once
    stored = store.read_quarantine()
    assert stored[["source", "position", "reason"]].values.tolist() == [
        ["aaa/20240305_quote", 3, "crossed_book"],
        ["aaa/20240305_quote", 9, "non_positive"],
        ["aaa/20240305_trade", 0, "unparseable"],
    ]
    assert stored.loc[1, "raw"] == "bad\\x00byte"  # text cannot hold NUL: stored escaped
    assert stored.loc[2, "raw"] == "\\ud800 lone"
    assert stored.loc[0, "ts"] == pd.Timestamp("2024-03-05 15:00", tz="UTC")
    assert pd.isna(stored.loc[2, "ts"]) and stored.loc[2, "symbol"] is None
    assert stored["ingested_at"].notna().all()
    # replacing a source's rejects
    again = make_quarantine("aaa/20240305_quote", [4], "duplicate")
    assert store.write_quarantine(again, replace_sources=["aaa/20240305_quote"]) == 1
    assert store.read_quarantine("aaa/20240305_quote")["position"].tolist() == [4]
    assert len(store.read_quarantine()) == 2
    with pytest.raises(ValueError, match="unknown reject"):
        store.write_quarantine(again.assign(reason="because"))

    started = dt.datetime(2024, 3, 6, 1, 0, tzinfo=dt.UTC)
    store.log_ingest(DAY, "equity", 10, 3, {"crossed_book": 1}, started_at=started)
    store.log_ingest(DAY, "equity", 12, 2, {"non_positive": 2}, started_at=started)
    store.log_ingest(DAY, "binance", 5, 0, {})
    logged = store.read_ingest_log(DAY)
    assert logged[["source", "n_ticks", "n_quarantined"]].values.tolist() == [
        ["binance", 5, 0],
        ["equity", 12, 2],
    ]
    assert logged.loc[1, "counts"] == {"non_positive": 2}
    assert logged.loc[1, "started_at"] == started
    assert logged.loc[1, "finished_at"] >= started


@pytest.mark.integration
@pytest.mark.slow
def test_real_equity_day_round_trip(store, equity_root):
    """IBM (quotes + trades) and SPY (trades only, null book) of 2013-10-08, vendor files."""
    from tickml.readers.equity import read_equity_day

    day = dt.date(2013, 10, 8)
    res = read_equity_day(equity_root, day, ["IBM", "SPY"])
    ticks = res.ticks
    assert len(ticks) > 100_000
    spy = ticks[ticks.symbol == "SPY"]
    assert spy["bid"].isna().all() and spy["price"].notna().all()
    for _ in range(2):
        assert store.write_day(ticks, day, tz="America/New_York") == len(ticks)
    assert store.count(day, tz="America/New_York") == len(ticks)
    assert store.count(symbol="SPY") == len(spy)
    back = store.read(day, tz="America/New_York")
    _assert_same(back, _expected(ticks))
    pd.testing.assert_frame_equal(back, ticks)  # ms data: exact, nothing truncated
    assert store.write_quarantine(res.quarantine) == len(res.quarantine)
    assert store.write_quarantine(res.quarantine) == 0
    store.log_ingest(day, "equity", len(ticks), len(res.quarantine), res.counts)
    stored = store.read_quarantine()
    assert len(stored) == len(res.quarantine) > 0
    assert stored["reason"].value_counts().to_dict() == res.counts


# ------------------------------------------------------------------------------ hypothesis

_SYMBOLS = st.one_of(
    st.sampled_from(["AAA", "BRK.B", "", INJECTION, "ÄÖ€", "a\nb"]),
    st.text(max_size=8),  # any unicode, including NUL (which must be refused)
)
_FLOATS = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308, 2.2250738585072014e-308]),
)
_ROWS = st.lists(
    st.tuples(
        _SYMBOLS,
        # the day is (midnight, next midnight]: the next midnight itself belongs to it
        st.one_of(st.integers(1, DAY_NS), st.sampled_from([1, 999, 1000, 1001, DAY_NS])),
        st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(0, 2)),
        _FLOATS,
        _FLOATS,
        _FLOATS,
        _FLOATS,
        _FLOATS,
        _FLOATS,
    ),
    max_size=25,
)


HDAY = dt.date(2024, 6, 15)


@pytest.mark.integration
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=_ROWS, keep_base=st.booleans())
def test_random_frames_round_trip_exactly_or_fail_cleanly(pg_url, rows, keep_base):
    """Random canonical frames are stored exactly, or refused with nothing half-written.

    The day first holds three ``BASE`` ticks; the random frame then replaces either all
    symbols (the TRUNCATE path) or only its own (``keep_base``: the DELETE path).
    """
    day0 = pd.Timestamp(HDAY, tz="UTC").value
    frame = pd.DataFrame(rows, columns=list(TICK_COLUMNS))
    frame["symbol"] = frame["symbol"].astype(object)
    frame["ts"] = pd.to_datetime(frame["ts"].astype("int64") + day0, utc=True)
    frame["seq"] = frame["seq"].astype("int64")
    frame = frame.astype({c: "float64" for c in FLOAT_COLUMNS})
    base = _ticks(("BASE",), n=3, day=HDAY)
    with TickStore(pg_url) as s:
        # the day's last instant (midnight) is stored in the next UTC day's partition
        after = HDAY + dt.timedelta(days=1)
        s.ensure_partitions([HDAY, after])
        s.conn.execute(f"TRUNCATE ticks_{HDAY:%Y%m%d}, ticks_{after:%Y%m%d}")
        s.write_day(base, HDAY)
        replaced = sorted(set(frame["symbol"]) | (set() if keep_base else {"BASE"}))
        kept = base[~base["symbol"].isin(replaced)]
        expected = _expected(pd.concat([kept, frame], ignore_index=True))
        storable = (
            not any("\x00" in x for x in replaced)
            and not expected.duplicated(["symbol", "ts", "seq"]).any()
        )
        event(f"{'stored' if storable else 'refused'}, keep_base={keep_base}")
        if storable:
            assert s.write_day(frame, HDAY, symbols=replaced) == len(frame)
            _assert_same(s.read(HDAY), expected)
            assert s.count(HDAY) == len(expected)
        else:
            with pytest.raises(ValueError):
                s.write_day(frame, HDAY, symbols=replaced)
            _assert_same(s.read(HDAY), _expected(base))  # nothing half-written
