"""Every bad-input class, end to end: a CSV through ingest_day into the lake and real Postgres."""

import datetime as dt

import pandas as pd
import pytest

from tickml.ingest import SourceSpec, ingest_day
from tickml.lake import TickLake
from tickml.schema import REJECT_REASONS
from tickml.store.postgres import TickStore

pytestmark = pytest.mark.integration

HEADER = "symbol,ts,seq,bid,ask,bid_size,ask_size,price,size,suspicious"
DAY = dt.date(2024, 8, 9)
# (line content, expected reason or None for a valid tick); line numbers start at 2
ROWS = [
    ("AAA,2024-08-09T13:30:00Z,1,10.0,10.1,100,200,,0,0", None),
    ("AAA,2024-08-09T13:30:01Z,2,10.0,10.1,100,200,10.1,50,0", None),
    ("AAA,2024-08-09T13:30:02Z,3,10.0,10.1,100", "unparseable"),  # too few fields
    ("AAA,2024-08-09T13:30:03Z,4,10.0,abc,100,200,,0,0", "wrong_type"),
    ("AAA,not-a-time,5,10.0,10.1,100,200,,0,0", "wrong_type"),
    (",2024-08-09T13:30:04Z,6,10.0,10.1,100,200,,0,0", "empty_symbol"),
    ("AAA,2024-08-09T13:30:05Z,7,10.0,10.1,100,200,inf,10,0", "nan_or_inf"),
    ("AAA,2024-08-09T13:30:06Z,8,10.0,10.1,100,200,nan,10,0", "nan_or_inf"),
    ("AAA,2024-08-09T13:30:07Z,9,10.0,10.1,100,200,-10.1,10,0", "non_positive"),
    ("AAA,2024-08-09T13:30:08Z,10,10.0,10.1,100,200,10.1,0,0", "non_positive"),
    ("AAA,2024-08-09T13:30:09Z,11,10.2,10.1,100,200,,0,0", "crossed_book"),
    ("AAA,2024-08-09T13:30:10Z,12,10.1,10.1,100,200,,0,0", None),  # locked: real, kept
    ("AAA,2024-08-09T13:29:00Z,13,10.0,10.1,100,200,,0,0", "out_of_order"),
    ("AAA,2024-08-09T13:30:11Z,12,10.1,10.1,100,200,,0,0", "duplicate"),  # seq 12 again
    ("AAA,2024-08-09T13:30:12Z,14,,,,,,0,0", "empty_event"),
    ("AAA,2024-08-09T13:30:13Z,15,10.0,10.1,100,200,10.05,5,1", "vendor_suspicious"),
    ("A/B,2024-08-09T13:30:14Z,1,20.0,20.1,5,5,20.1,7,0", "bad_symbol"),  # never a path
    ("AAA,2024-08-09T13:30:15Z,16,10.0,10.1,100,200,1e300,5,0", "out_of_range"),
    ("AAA,2024-08-09T13:30:16Z,17,10.0,10.1,100,200,0.5,5,0", "price_jump"),  # 20x below
    ("BBB,2024-08-09T13:30:14Z,1,20.0,20.1,5,5,20.1,7,0", None),
]


def test_every_reject_reason_reaches_the_postgres_quarantine(tmp_path, pg_url):
    csv = tmp_path / "bad.csv"
    csv.write_text("\n".join([HEADER, *(r for r, _ in ROWS)]) + "\n")
    lake = TickLake(tmp_path / "lake")
    store = TickStore(pg_url)
    try:
        s = ingest_day(SourceSpec(kind="canonical", path=csv), DAY, lake, store)
        expected = {i + 2: reason for i, (_, reason) in enumerate(ROWS) if reason}
        q = store.read_quarantine(str(csv))
        got = dict(zip(q["position"], q["reason"], strict=True))
        assert got == expected
        assert set(got.values()) == set(REJECT_REASONS)  # every class is covered
        assert s.n_quarantined == len(expected)
        # no valid tick lost: the valid rows are in the lake and in Postgres exactly once
        valid = [r for r, reason in ROWS if reason is None]
        assert s.n_ticks == len(valid) == store.count(day=DAY)
        stored = store.read(DAY)
        assert sorted(zip(stored["symbol"], stored["seq"], strict=True)) == [
            ("AAA", 1), ("AAA", 2), ("AAA", 12), ("BBB", 1)
        ]
        assert len(lake.read_day(DAY)) == len(valid)
        assert set(lake.read_quarantine(DAY)["reason"]) == set(REJECT_REASONS)
        # re-ingesting the same file changes nothing (idempotent, no duplicate quarantine)
        ingest_day(SourceSpec(kind="canonical", path=csv), DAY, lake, store)
        assert store.count(day=DAY) == len(valid)
        assert len(store.read_quarantine(str(csv))) == len(expected)
    finally:
        store.close()


def test_locked_book_is_kept_and_crossed_is_not(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text("\n".join([HEADER, ROWS[0][0], ROWS[10][0], ROWS[11][0]]) + "\n")
    s = ingest_day(SourceSpec(kind="canonical", path=csv), DAY, TickLake(tmp_path / "l"))
    assert s.n_ticks == 2 and s.reasons == {"crossed_book": 1}
    ticks = TickLake(tmp_path / "l").read_day(DAY)
    assert (ticks["bid"] == ticks["ask"]).sum() == 1
    assert pd.Series(ticks["bid"] <= ticks["ask"]).all()
