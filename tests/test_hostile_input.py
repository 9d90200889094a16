"""Issue 10's reproductions, each under a timeout with its documented outcome, and the fault
test: hostile or careless input ends in a stored row, a quarantine record or one error line;
nothing hangs, nothing valid is lost or wiped."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import shutil
import signal
import subprocess
import time
import traceback
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from _cli import LIVE, TICKML, error_line, run
from conftest import PG_ADMIN_URL
from prometheus_client import REGISTRY

from live.bus import TickBus, encode_ticks
from live.config import LiveConfig
from live.consume import BusConsumer
from live.supervisor import Child, Supervisor
from tickml.errors import RunFailed
from tickml.ingest import SourceSpec, available_days, ingest_day, source_totals
from tickml.lake import TickLake
from tickml.readers.binance import read_binance_capture
from tickml.readers.equity import read_equity_day
from tickml.store.postgres import TickStore

DAY = dt.date(2013, 10, 8)


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _ingest_all(spec: SourceSpec, lake: TickLake, store=None) -> list:
    return [ingest_day(spec, d, lake, store) for d in available_days(spec)]


# ---------------------------------------------------------------- 1. no hang, no loop


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_1_a_failing_ingest_ends_in_seconds_with_one_line(tmp_path, equity_root):
    src = tmp_path / "d" / "a\\b"
    src.mkdir(parents=True)
    shutil.copy(equity_root / "ibm" / "20131008_trade.zip", src)
    work = tmp_path / "w"
    t0 = time.monotonic()
    proc = run([TICKML, "ingest", "--ticks", tmp_path / "d", "--source", "equity-ticks",
                "--workdir", work], timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # the symbol 'A\B' is never a path: every row is quarantined with the reason
    lake = TickLake(work / "lake")
    q = lake.read_quarantine(DAY)
    with zipfile.ZipFile(src / "20131008_trade.zip") as z:
        rows = sum(1 for ln in z.read(z.namelist()[0]).splitlines() if ln.strip())
    assert len(q) == rows and set(q["reason"]) == {"bad_symbol"}
    assert lake.symbols(DAY) == [] and "A\\B" in set(q["symbol"])
    # the other three hangs of the issue: one line, the right status, seconds
    base = [TICKML, "ingest", "--ticks", equity_root, "--workdir", work, "--symbols", "IBM"]
    error_line(run([*base, "--out-of-order-tolerance", "abc"], timeout=60), 2, "tolerance")
    error_line(run([*base, "--pg-url", "notaurl"], timeout=60), 2, "PostgreSQL URL")
    no_role = PG_ADMIN_URL.replace("postgres@", "no_such_role_i10@")
    line = error_line(run(base, env={"TICKML_PG_URL": no_role}, timeout=60), 1, "no_such_role")
    assert "cannot connect" in line
    assert time.monotonic() - t0 < 240


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_1_a_failing_run_raises_one_clean_error_without_a_cycle(tmp_path, monkeypatch):
    """Dagster's step error and the asset's exception point at each other; the runner cuts
    the cycle and raises one error naming the asset, the day and the root cause."""
    import tickml.ingest
    from assets.resources import TickSourceResource
    from orchestration.runner import materialize_days
    from tickml.settings import Settings

    def boom(*_a, **_k):
        raise ValueError("boom: the disk is on fire")

    monkeypatch.setattr(tickml.ingest, "ingest_day", boom)
    monkeypatch.setattr("assets.ingestion.ingest_day", boom)
    with pytest.raises(RunFailed) as info:
        settings = Settings.from_env().model_copy(
            update={"workdir": tmp_path, "dagster_home": None, "pg_url": None})
        materialize_days([dt.date(2024, 1, 2)], settings, TickSourceResource(),
                         log_level="CRITICAL")
    err = info.value
    assert str(err) == "raw_ticks 2024-01-02 failed: ValueError: boom: the disk is on fire"
    seen, cur = set(), err
    while cur is not None:  # the chain ends
        assert id(cur) not in seen
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    assert len("".join(traceback.format_exception(err))) < 200_000


# ---------------------------------------------------------------- 2. a bad symbol wipes nothing


def _capture(path: Path, lines: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return path


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_2_a_bad_symbol_is_quarantined_and_the_day_survives(tmp_path, binance_root):
    with gzip.open(binance_root / "btcusdt_20240809.gz") as f:
        lines = [next(f).rstrip(b"\n") for _ in range(4000)]
    book = next(ln for ln in lines if b"@bookTicker" in ln)
    lake = TickLake(tmp_path / "lake")
    first = _ingest_all(SourceSpec(kind="binance", path=_capture(
        tmp_path / "a" / "btcusdt_20240809.gz", lines)), lake)
    n = sum(s.n_ticks for s in first)
    assert n > 3000
    hostile = [book.replace(b'"s":"BTCUSDT"', b'"s":"' + s + b'"')
               for s in (b"A/B", b"..", b"A\\\\B", b"X" * 300, b"A\\u0000B")]
    cap = _capture(tmp_path / "b" / "btcusdt_20240809.gz", lines + hostile)
    second = _ingest_all(SourceSpec(kind="binance", path=cap), lake)
    assert sum(s.n_ticks for s in second) == n
    day = second[0].day
    assert len(lake.read_day(day)) == n
    q = lake.read_quarantine(day)
    assert sorted(q["position"]) == list(range(4001, 4006))
    assert set(q["reason"]) == {"bad_symbol"}
    assert [p.name for p in lake.day_dir(day).iterdir()] == ["symbol=BTCUSDT"]


# ---------------------------------------------------------------- 3. midnight loses nothing


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_3_ticks_after_utc_midnight_are_stored_in_their_own_day(
    tmp_path, binance_root, fresh_pg_url
):
    reader = sum(read_binance_capture(f).n_valid for f in sorted(binance_root.glob("*.gz")))
    assert reader == 210_751
    spec = SourceSpec(kind="binance", path=binance_root)
    assert spec.day_market.tz == "UTC" and not spec.day_market.has_session  # 24/7 by default
    assert source_totals(spec) == (210_751, 0)
    lake = TickLake(tmp_path / "lake")
    with TickStore(fresh_pg_url) as store:
        per_day = {s.day: s.n_ticks for s in _ingest_all(spec, lake, store)}
        assert sum(per_day.values()) == 210_751
        assert per_day[dt.date(2024, 8, 9)] == 55_281 + 34  # the 34 after midnight of the 8th's
        # the lake and the store hold the same days, each with the ingest's count
        assert {d: len(lake.read_day(d)) for d in lake.days()} == per_day
        assert {d: store.count(d, tz="UTC") for d in per_day} == per_day
        assert store.count() == 210_751


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_3_records_with_absurd_or_no_time_are_kept(tmp_path):
    csv = tmp_path / "t.csv"
    csv.write_text(
        "symbol,ts,seq,bid,ask,bid_size,ask_size,price,size\n"
        "AAA,2024-08-09T13:30:00Z,1,10.0,10.1,1,1,,0\n"
        "AAA,-5,2,10.0,10.1,1,1,,0\n"  # ts = -5 ns: out_of_range, no day of its own
        "AAA,-5,3,10.2,10.1,1,1,,0\n"
        "AAA,2024-08-09T13:30:01Z,4,10.0\n"  # unparseable: no time at all
        "AAA,2024-08-10T13:30:00Z,5,10.0,10.1,1,1,,0\n"
    )
    spec = SourceSpec(kind="canonical", path=csv)
    lake = TickLake(tmp_path / "lake")
    summaries = _ingest_all(spec, lake)
    assert [s.day for s in summaries] == [dt.date(2024, 8, 9), dt.date(2024, 8, 10)]
    assert sum(s.n_ticks for s in summaries) == 2
    q = pd.concat([lake.read_quarantine(d) for d in lake.days()])
    assert sorted(q["position"]) == [3, 4, 5]
    assert (sum(s.n_ticks + s.n_quarantined for s in summaries)
            == sum(source_totals(spec)) == 5)


# ---------------------------------------------------------------- 4. replay checks first


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_4_replay_checks_its_arguments_and_refuses_foreign_state(redis_url, equity_root):
    r = redis.Redis.from_url(redis_url)
    r.hset("tickml:deployment", mapping={"kind": "run", "host": "prod-1", "pid": "1",
                                         "started": "2026-01-01T00:00:00Z"})
    r.xadd("tickml:ticks:0", {"k": "c", "t": "1", "wall": "1"})
    r.set("tickml:scorer:last", "5")
    keys = sorted(r.keys("tickml:*"))
    env = {"TICKML_REDIS_URL": redis_url}
    cases = [
        (["--day", "bad"], "--day"),
        (["--source", "equity-ticks", "--ticks", str(equity_root), "--day", "2013-10-19"],
         "no ticks that day"),
        (["--day", "2024-03-05", "--shards", "0"], "--shards"),
        (["--source", "equity-ticks", "--day", "2013-10-08"], "needs --ticks"),
        (["--day", "2024-03-05"], "holds the live state of a 'run' deployment"),
    ]
    for args, fragment in cases:
        error_line(run([TICKML, "live", "replay", *args], env=env, timeout=90), 2, fragment)
        assert sorted(r.keys("tickml:*")) == keys  # nothing was deleted
    # a worker with a configuration error stops its supervisor instead of looping
    sup = Supervisor([Child("feed", ["feed", "--source", "equity-ticks", "--ticks",
                                     "/nonexistent", "--day", "2013-10-08"],
                            restart_on_success=False, env={"TICKML_REDIS_URL": redis_url})])
    t0 = time.monotonic()
    assert sup.run() == 2
    assert sup.children[0].restarts == 0 and time.monotonic() - t0 < 60
    assert "feed" in (sup.config_error or "")
    r.close()


# ---------------------------------------------------------------- 5. no password in logs


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_5_the_writer_never_logs_a_password(redis_url, tmp_path):
    secret = "hunter2-i10"
    cfg = LiveConfig(redis_url=redis_url, shards=1)
    frame = pd.DataFrame({
        "symbol": ["AAA"], "ts": [pd.Timestamp("2024-03-05 15:00", tz="UTC")], "seq": [1],
        "bid": [10.0], "ask": [10.1], "bid_size": [1.0], "ask_size": [1.0],
        "price": [np.nan], "size": [0.0],
    })
    TickBus(redis.Redis.from_url(redis_url), cfg, leader=None).publish(frame)
    url = f"postgresql://postgres@127.0.0.1:1/x?password={secret}"
    log = tmp_path / "writer.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [*LIVE, "writer", "--shards", "1"], stderr=err,
            env={**__import__("os").environ, "TICKML_REDIS_URL": redis_url,
                 "TICKML_PG_URL": url, "TICKML_LOG_LEVEL": "INFO"},
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and "unavailable" not in log.read_text():
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
    text = log.read_text()
    assert "postgres unavailable" in text
    assert secret not in text and "password=***" in text


# ---------------------------------------------------------------- 6. the bus is not trusted


def _entry(symbols, px) -> dict[bytes, bytes]:
    n = len(symbols)
    uniques = np.array(sorted(set(symbols)), dtype=object)
    codes = np.searchsorted(uniques, np.array(symbols, dtype=object))
    ts = pd.Timestamp("2024-03-05 15:00", tz="UTC").value + np.arange(n) * 10**9
    return encode_ticks(uniques, codes, ts, np.arange(1, n + 1), np.array(px, dtype=float),
                        time.time_ns(), "test")


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_6_invalid_bus_ticks_are_quarantined_not_stored(redis_url, fresh_pg_url):
    from live.writer import TickWriter

    r = redis.Redis.from_url(redis_url)
    cfg = LiveConfig(redis_url=redis_url, pg_url=fresh_pg_url, shards=1)
    ok = [10.0, 10.1, 1.0, 1.0, np.nan, 0.0]
    r.xadd(cfg.stream(0), _entry(
        ["AAA", "AAA", "AAA", "../../EVIL"],
        [ok, [-5.0, 10.1, 1.0, 1.0, np.nan, 0.0], [10.0, 10.1, 1.0, 1.0, np.inf, 5.0], ok],
    ))
    before = REGISTRY.get_sample_value(
        "tickml_rejected_ticks_total", {"worker": "writer", "reason": "bad_symbol"}) or 0
    writer = TickWriter(cfg, consumer="w0", shards=[0])
    try:
        assert writer.step() == 1  # only the valid tick is stored
    finally:
        writer.close()
    with TickStore(fresh_pg_url) as store:
        stored = store.read(dt.date(2024, 3, 5))
    assert stored["symbol"].tolist() == ["AAA"] and stored["seq"].tolist() == [1]
    (_, fields), = r.xrange(cfg.key("bus", "quarantine"))
    assert json.loads(fields[b"reasons"]) == ["non_positive", "nan_or_inf", "bad_symbol"]
    assert REGISTRY.get_sample_value(
        "tickml_rejected_ticks_total", {"worker": "writer", "reason": "bad_symbol"}) == before + 1
    r.close()


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_6_a_clock_marker_hours_ahead_is_refused(redis_url, tmp_path):
    from live.materializer import ShardMaterializer

    r = redis.Redis.from_url(redis_url)
    cfg = LiveConfig(redis_url=redis_url, shards=1)
    ok = [10.0, 10.1, 1.0, 1.0, np.nan, 0.0]
    r.xadd(cfg.stream(0), _entry(["AAA"] * 3, [ok] * 3))
    t0 = pd.Timestamp("2024-03-05 15:00", tz="UTC").value
    for t in (t0 + 5 * 3600 * 10**9, t0 + 3 * 60 * 10**9):  # hours ahead, then the real one
        r.xadd(cfg.stream(0), {"k": "c", "t": str(t), "wall": str(time.time_ns())})
    consumer = BusConsumer(r, cfg, "materializer", "m0", [0])
    mat = ShardMaterializer(cfg, 0, r, log_dir=tmp_path)
    for e in consumer.read():
        mat.process(e, consumer)
    assert mat.last_done == t0 + 3 * 60 * 10**9  # the real marker only
    announced = [int(f[b"b"]) for _, f in r.xrange(cfg.key("boundaries"))]
    assert announced and max(announced) <= t0 + 3 * 60 * 10**9  # no phantom boundaries
    (_, q), = r.xrange(cfg.key("bus", "quarantine"))
    assert b"beyond the shard's data time" in q[b"reason"]
    r.close()


# ---------------------------------------------------------------- 7. the smaller ones


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_7_a_zip_with_a_stray_csv_reads_every_member(tmp_path, equity_root):
    real = equity_root / "ibm" / "20131008_trade.zip"
    with zipfile.ZipFile(real) as z:
        name, data = z.namelist()[0], z.read(z.namelist()[0])
    for root in ("one", "two"):
        (tmp_path / root / "ibm").mkdir(parents=True)
    shutil.copy(real, tmp_path / "one" / "ibm")
    with zipfile.ZipFile(tmp_path / "two" / "ibm" / "20131008_trade.zip", "w") as z:
        z.writestr("aaa_garbage.csv", b"garbage\n\xff\xfe,1,2\n")
        z.writestr(name, data)
    theirs = read_equity_day(tmp_path / "one", DAY, ["IBM"])
    ours = read_equity_day(tmp_path / "two", DAY, ["IBM"])
    assert len(theirs.ticks) > 30_000
    pd.testing.assert_frame_equal(ours.ticks, theirs.ticks)
    q = ours.quarantine
    junk = q[q["source"] == "ibm/20131008_trade:aaa_garbage.csv"]
    assert junk[["position", "reason"]].values.tolist() == [[1, "unparseable"], [2, "unparseable"]]
    rest = q[q["source"] != "ibm/20131008_trade:aaa_garbage.csv"]
    assert set(rest["source"]) <= {f"ibm/20131008_trade:{name}"}
    assert rest["position"].tolist() == theirs.quarantine["position"].tolist()


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_7_a_boolean_price_column_is_quarantined(tmp_path):
    n = 5
    table = pa.table({
        "symbol": ["AAA"] * n,
        "ts": pa.array(pd.date_range("2024-08-09 13:30", periods=n, freq="s", tz="UTC")),
        "bid": [10.0] * n, "ask": [10.1] * n, "bid_size": [1.0] * n, "ask_size": [1.0] * n,
        "price": [True] * n, "size": [1.0] * n,
    })
    pq.write_table(table, tmp_path / "bool.parquet")
    spec = SourceSpec(kind="canonical", path=tmp_path / "bool.parquet")
    lake = TickLake(tmp_path / "lake")
    (s,) = _ingest_all(spec, lake)
    assert s.n_ticks == 0 and s.reasons == {"wrong_type": n}
    assert len(lake.read_quarantine(dt.date(2024, 8, 9))) == n


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_7_absurd_prices_are_quarantined(tmp_path):
    csv = tmp_path / "t.csv"
    rows = [f"AAA,2024-08-09T13:30:0{i}Z,{i},10.0,10.1,1,1,10.05,5" for i in range(6)]
    rows[3] = "AAA,2024-08-09T13:30:03Z,3,10.0,10.1,1,1,1e300,5"
    csv.write_text("symbol,ts,seq,bid,ask,bid_size,ask_size,price,size\n" + "\n".join(rows))
    (s,) = _ingest_all(SourceSpec(kind="canonical", path=csv), TickLake(tmp_path / "lake"))
    assert s.n_ticks == 5 and s.reasons == {"out_of_range": 1}


# ---------------------------------------------------------------- acceptance: fault test


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_a_failing_second_ingest_leaves_the_first_byte_for_byte(tmp_path, pg_url, monkeypatch):
    """Lake and tick store: the second ingest of a day fails in the store after its ticks
    were written (same transaction); the first ingest's files and rows are untouched."""
    header = "symbol,ts,seq,bid,ask,bid_size,ask_size,price,size\n"
    good = [f"{s},2024-08-09T13:30:{i:02d}Z,{i},10.0,10.1,1,1,10.05,5"
            for s in ("AAA", "BBB") for i in range(20)]
    first = tmp_path / "v1" / "ticks.csv"
    first.parent.mkdir()
    first.write_text(header + "\n".join([*good, "AAA,2024-08-09T13:31:00Z,99,10.2,10.1,1,1,,0"]))
    second = tmp_path / "v2" / "ticks.csv"
    second.parent.mkdir()
    second.write_text(header + "\n".join(good[:7] + ["CCC,2024-08-09T13:30:00Z,1,5,5.1,1,1,,0",
                                                        "CCC,2024-08-09T13:30:01Z,2,5.2,5.1,1,1,,0"]))
    lake = TickLake(tmp_path / "lake")
    day = dt.date(2024, 8, 9)
    with TickStore(pg_url) as store:
        store.ensure_schema()
        ingest_day(SourceSpec(kind="canonical", path=first), day, lake, store)
        files = _snapshot(lake.root)
        rows = store.read(day)
        quarantine = store.read_quarantine()

        def fail(*_a, **_k):
            raise OSError("the quarantine table is gone")

        monkeypatch.setattr(store, "write_quarantine", fail)
        second_spec = SourceSpec(kind="canonical", path=second)
        with pytest.raises(OSError):
            ingest_day(second_spec, day, lake, store)
        # and when the tick write itself fails
        monkeypatch.setattr(store, "write_day", fail)
        with pytest.raises(OSError):
            ingest_day(second_spec, day, lake, store)
        assert _snapshot(lake.root) == files
        pd.testing.assert_frame_equal(store.read(day), rows)
        pd.testing.assert_frame_equal(
            store.read_quarantine().drop(columns="ingested_at"),
            quarantine.drop(columns="ingested_at"),
        )
        assert len(rows) == 40
