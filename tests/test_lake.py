import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tickml.ingest import non_monotone_symbols, simulated_days
from tickml.lake import TickLake
from tickml.schema import TICK_COLUMNS, make_quarantine

pytestmark = pytest.mark.unit


def _ticks(symbols=("AAA", "BBB"), n=5, day=dt.date(2024, 1, 2)):
    rows = []
    base = pd.Timestamp(day, tz="UTC") + pd.Timedelta(hours=15)
    for s in symbols:
        for i in range(n):
            rows.append((s, base + pd.Timedelta(seconds=i), i, 10.0, 10.01, 100.0, 200.0,
                         np.nan if i % 2 else 10.0, 0.0 if i % 2 else 50.0))
    return pd.DataFrame(rows, columns=list(TICK_COLUMNS))


def test_write_read_roundtrip_exact(tmp_path):
    lake = TickLake(tmp_path)
    day = dt.date(2024, 1, 2)
    t = _ticks()
    assert lake.write_day(t, day) == len(t)
    back = lake.read_day(day)
    pd.testing.assert_frame_equal(back, t, check_dtype=False)
    assert str(back["ts"].dtype) == "datetime64[ns, UTC]"
    assert lake.days() == [day]
    assert lake.symbols(day) == ["AAA", "BBB"]
    assert list(lake.read_day(day, ["BBB"])["symbol"].unique()) == ["BBB"]


def test_rewrite_is_idempotent_and_replaces_dropped_symbols(tmp_path):
    lake = TickLake(tmp_path)
    day = dt.date(2024, 1, 2)
    lake.write_day(_ticks(), day)
    lake.write_day(_ticks(), day)
    assert len(lake.read_day(day)) == 10
    lake.write_day(_ticks(symbols=("AAA",)), day)
    assert lake.symbols(day) == ["AAA"]
    assert len(lake.read_day(day)) == 5


def test_partition_names_reject_path_tricks(tmp_path):
    lake = TickLake(tmp_path)
    with pytest.raises(ValueError):
        lake.write_day(_ticks(symbols=("../etc",)), dt.date(2024, 1, 2))


def test_quarantine_roundtrip(tmp_path):
    lake = TickLake(tmp_path)
    day = dt.date(2024, 1, 2)
    q = make_quarantine("f.csv", [3, 9], ["crossed_book", "wrong_type"], ["a", "b"], ["X", None])
    lake.write_quarantine(q, day)
    back = lake.read_quarantine(day)
    assert list(back["reason"]) == ["crossed_book", "wrong_type"]
    assert list(back["position"]) == [3, 9]
    assert lake.read_quarantine(dt.date(2030, 1, 1)).empty


def test_read_range_and_empty(tmp_path):
    lake = TickLake(tmp_path)
    assert lake.read_day(dt.date(2024, 1, 2)).empty
    for d in (dt.date(2024, 1, 2), dt.date(2024, 1, 3)):
        lake.write_day(_ticks(day=d), d)
    assert len(lake.read_range(dt.date(2024, 1, 1), dt.date(2024, 1, 2))) == 10
    assert len(lake.read_range(dt.date(2024, 1, 1), dt.date(2024, 1, 9))) == 20


def test_non_monotone_detection():
    t = _ticks()
    assert non_monotone_symbols(t) == []
    t.loc[3, "ts"] = t.loc[0, "ts"] - pd.Timedelta(seconds=1)
    assert non_monotone_symbols(t) == ["AAA"]


def test_simulated_days_are_weekdays():
    days = simulated_days(dt.date(2024, 1, 5), 3)  # a Friday
    assert days == [dt.date(2024, 1, 5), dt.date(2024, 1, 8), dt.date(2024, 1, 9)]


def _snapshot(root):
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_a_failing_rewrite_leaves_the_previous_day_byte_for_byte(tmp_path, monkeypatch):
    """Fault test: the second write of a day dies on its second file; the first write's files
    are all there, unchanged, and nothing half-written is visible."""
    lake = TickLake(tmp_path)
    day = dt.date(2024, 1, 2)
    q = make_quarantine("f.csv", [3], ["crossed_book"], ["a"], ["AAA"])
    staged = lake.stage_day(_ticks(), day, q)
    staged.commit()
    before = _snapshot(tmp_path)
    import tickml.lake as lake_mod

    real, calls = lake_mod.pq.write_table, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(lake_mod.pq, "write_table", failing)
    changed = _ticks(symbols=("AAA", "BBB", "CCC"), n=7)
    with pytest.raises(OSError, match="disk full"):
        lake.write_day(changed, day)
    monkeypatch.setattr(lake_mod.pq, "write_table", real)
    assert _snapshot(tmp_path) == before
    assert len(lake.read_day(day)) == 10
    # a staged day that is discarded (the store failed after it) changes nothing either
    lake.stage_day(changed, day, make_quarantine("g.csv", [1], ["wrong_type"])).discard()
    assert _snapshot(tmp_path) == before
    # a symbol that cannot be a folder name is refused before anything is written
    with pytest.raises(ValueError, match="not allowed"):
        lake.write_day(_ticks(symbols=("AAA", "A/B")), day)
    assert _snapshot(tmp_path) == before


def test_rewriting_some_symbols_keeps_the_others(tmp_path):
    lake = TickLake(tmp_path)
    day = dt.date(2024, 1, 2)
    lake.write_day(_ticks(symbols=("AAA", "BBB")), day)
    bbb = lake.read_day(day, ["BBB"])
    lake.write_day(_ticks(symbols=("AAA",), n=3), day, symbols=["AAA"])
    assert lake.symbols(day) == ["AAA", "BBB"]
    assert len(lake.read_day(day, ["AAA"])) == 3
    pd.testing.assert_frame_equal(lake.read_day(day, ["BBB"]), bbb)
    # an empty full rewrite removes the day (as if it was never written)
    lake.write_day(_ticks(n=0), day)
    assert lake.days() == []


def test_online_log_round_trip_keeps_the_latest_logging(tmp_path):
    from tickml.lake import read_online_log, write_online_log

    day = dt.date(2024, 1, 2)
    b0 = int(pd.Timestamp("2024-01-02 15:00", tz="UTC").value)
    b1 = b0 + 60 * 10**9
    names = ["f1", "f2"]
    last = np.array([b0 - 5, b0 - 7], dtype=np.int64)
    first = [(b0, ["AAA", "BBB"], np.array([[1.0, np.nan], [2.0, -0.0]]), last, 10),
             (b1, ["AAA"], np.array([[3.0, 4.0]]), last[:1] + 60 * 10**9, 11)]  # fmt: skip
    again = [(b1, ["AAA"], np.array([[5.0, 6.0]]), last[:1] + 60 * 10**9, 12)]  # a replay
    write_online_log(tmp_path, day, 0, names, first)
    path = write_online_log(tmp_path, day, 1, names, again)
    assert path.name == f"{b1}-{b1}.parquet" and path.parent.name == "shard=1"
    got = read_online_log(tmp_path, day)
    assert got["symbol"].tolist() == ["AAA", "BBB", "AAA"]
    assert got["event_timestamp"].astype("int64").tolist() == [b0, b0, b1]
    x = got[names].to_numpy()
    assert np.array_equal(x, [[1.0, np.nan], [2.0, -0.0], [5.0, 6.0]], equal_nan=True)
    assert np.signbit(x[1, 1])  # bit for bit: -0.0 stays -0.0
    assert got["logged_at"].astype("int64").tolist() == [10, 10, 12]
    assert got["last_tick_ts"].astype("int64").tolist() == [b0 - 5, b0 - 7, b0 - 5 + 60 * 10**9]
