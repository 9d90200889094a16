"""Hypothesis at each entry point: files through ingest (readers, day assignment, the lake), bus
entries through a consumer, command-line arguments through both command lines. Asserted: no
hang (deadlines, pytest timeouts), no crash, every input row stored or quarantined exactly once.
Examples are bounded so the suite stays fast."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import redis
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import live.__main__ as live_main
from live.bus import encode_ticks
from live.config import LiveConfig
from live.consume import BusConsumer
from orchestration.cli import app
from orchestration.cli_support import run_command
from tickml.ingest import SourceSpec, available_days, ingest_day, source_totals
from tickml.lake import TickLake

HOSTILE_SYMBOLS = ["AAA", "BBB", "BRK.B", "A/B", "..", "A\\B", "", " ", "x" * 40, "ÄÖ",
                   "A B", "a\x00b", "../../EVIL", "x'); DROP TABLE ticks;--", "btcusdt"]
NUMBERS = ["10.0", "10.1", "9.99", "1", "-5", "0", "inf", "-inf", "nan", "1e300", "1e-300",
           "", "abc", "true", "0x10", "1e20"]
TIMES = ["2024-08-09T13:30:00Z", "2024-08-09T23:59:59.999Z", "2024-08-10T00:00:00.001Z",
         "2024-08-10T09:00:00+09:00", "-5", "0", "", "abc", "2024-13-01", "1723210200000000000",
         "99999999999999999999", "2031-01-01T00:00:00Z", "1969-12-31T23:59:59Z"]
#: bounded examples; an example slower than the deadline fails (a hang is caught per example,
#: generously enough for a loaded 2-core CI machine)
FAST = settings(max_examples=40, deadline=dt.timedelta(seconds=20),
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

_row = st.one_of(
    st.tuples(
        st.sampled_from(HOSTILE_SYMBOLS), st.sampled_from(TIMES), st.integers(-3, 50),
        *[st.sampled_from(NUMBERS) for _ in range(6)],
    ).map(lambda t: ",".join(map(str, t))),
    st.text(alphabet=st.characters(blacklist_characters="\n\r"), max_size=40),
)


@pytest.mark.integration
@pytest.mark.timeout(300)
@FAST
@given(rows=st.lists(_row, min_size=1, max_size=30))
def test_fuzz_files_every_row_is_stored_or_quarantined(rows):
    header = "symbol,ts,seq,bid,ask,bid_size,ask_size,price,size"
    data = [r for r in rows if r.strip() or r]  # physical lines with at least one character
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.csv"
        path.write_text("\n".join([header, *data]) + "\n", encoding="utf-8", errors="surrogatepass")
        spec = SourceSpec(kind="canonical", path=path)
        n_lines = sum(1 for r in data if r)
        n_valid, n_rejected = source_totals(spec)
        assert n_valid + n_rejected == n_lines
        lake = TickLake(Path(tmp) / "lake")
        days = available_days(spec)
        got = [ingest_day(spec, d, lake) for d in days]
        if days:  # every row lands in exactly one day
            assert sum(s.n_ticks + s.n_quarantined for s in got) == n_lines
        else:  # nothing dated: nothing valid either (the CLI says so in one line)
            assert n_valid == 0
        for d in lake.days():  # folder names are allowed symbols only
            assert all("/" not in s and s not in (".", "..") for s in lake.symbols(d))


_frame = st.fixed_dictionaries({
    "s": st.sampled_from(HOSTILE_SYMBOLS),
    "b": st.sampled_from(NUMBERS), "B": st.sampled_from(NUMBERS),
    "a": st.sampled_from(NUMBERS), "A": st.sampled_from(NUMBERS),
    "u": st.integers(-1, 10**6), "E": st.integers(-10, 1_723_300_000_000),
    "trade": st.booleans(),
})


def _line(f: dict, i: int) -> str:
    local = 1_723_161_600_000_000_000 + i * 10**9
    if f["trade"]:
        data = {"e": "trade", "E": f["E"], "s": f["s"], "t": f["u"], "p": f["b"], "q": f["B"],
                "T": f["E"], "m": True}
        return f"{local} " + json.dumps({"stream": "x@trade", "data": data})
    data = {"u": f["u"], "s": f["s"], "b": f["b"], "B": f["B"], "a": f["a"], "A": f["A"],
            "T": f["E"], "E": f["E"]}
    return f"{local} " + json.dumps({"stream": "x@bookTicker", "data": data})


@pytest.mark.integration
@pytest.mark.timeout(300)
@FAST
@given(frames=st.lists(_frame, min_size=1, max_size=25))
def test_fuzz_binance_frames_every_line_is_stored_or_quarantined(frames):
    lines = [_line(f, i) for i, f in enumerate(frames)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "btcusdt_20240809.gz"
        path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
        spec = SourceSpec(kind="binance", path=path)
        n_valid, n_rejected = source_totals(spec)
        assert n_valid + n_rejected == len(lines)
        lake = TickLake(Path(tmp) / "lake")
        got = [ingest_day(spec, d, lake) for d in available_days(spec)]
        assert sum(s.n_ticks + s.n_quarantined for s in got) == len(lines)


_px = st.lists(st.sampled_from([10.0, 10.1, 1.0, -5.0, 0.0, np.inf, -np.inf, np.nan, 1e300]),
               min_size=6, max_size=6)


@pytest.mark.integration
@pytest.mark.timeout(300)
@FAST
@given(
    ticks=st.lists(st.tuples(st.sampled_from(HOSTILE_SYMBOLS), st.integers(-10**18, 2 * 10**18),
                             _px), min_size=1, max_size=20),
    junk=st.dictionaries(st.binary(max_size=6), st.binary(max_size=20), max_size=4),
)
def test_fuzz_bus_entries_never_crash_and_every_tick_is_kept_or_quarantined(
    redis_url, ticks, junk
):
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    cfg = LiveConfig(redis_url=redis_url, shards=1)
    syms = [s.replace("\x00", "") or "X" for s, _, _ in ticks]  # NUL: malformed, tested below
    uniques = np.array(sorted(set(syms)), dtype=object)
    codes = np.searchsorted(uniques, np.array(syms, dtype=object))
    ts = np.array([t for _, t, _ in ticks], dtype=np.int64)
    px = np.array([p for _, _, p in ticks], dtype=float)
    r.xadd(cfg.stream(0), encode_ticks(uniques, codes, ts, np.arange(len(ticks)), px, 1, "f"))
    r.xadd(cfg.stream(0), junk or {b"k": b"?"})  # malformed: to the dead letters
    consumer = BusConsumer(r, cfg, "writer", "w0", [0])
    entries = consumer.read()
    kept = sum(len(e.batch) for e in entries if e.batch is not None)
    quarantined = sum(len(json.loads(f[b"reasons"]))
                      for _, f in r.xrange(cfg.key("bus", "quarantine")))
    assert kept + quarantined == len(ticks)
    dead = r.xlen(cfg.key("bus", "dead"))
    assert len(entries) + dead == 2
    for e in entries:
        if e.batch is not None and len(e.batch):
            assert np.isfinite(e.batch.px[:, :4][~np.isnan(e.batch.px[:, :4])]).all()
    r.close()


_WORDS = ["ingest", "run", "simulate", "quarantine", "config", "live", "replay", "feed",
          "--ticks", "--source", "--start", "--end", "--day", "--days", "--symbols",
          "--out-of-order-tolerance", "--horizons", "--interval", "--config", "--out",
          "--shards", "--max-seconds", "--pg-url", "--limit", "--debug", "--workdir",
          "canonical", "equity-ticks", "binance", "simulator", "2024-01-02", "-1", "0", "1e9",
          "x", "", "A/B", "5m,15m", "30m,5m", "/nonexistent", "--set", "k=v", "nan"]


class _WouldRun(Exception):
    """Raised instead of heavy work (a pipeline, a replay): the arguments were accepted."""


def _refuse(*_a, **_k):
    raise _WouldRun("accepted")


@pytest.mark.unit
@pytest.mark.timeout(300)
@FAST
@given(argv=st.lists(st.one_of(st.sampled_from(_WORDS), st.text(max_size=12)), max_size=7))
def test_fuzz_command_line_arguments_give_one_line(argv, monkeypatch, capsys, tmp_path):
    """Random arguments: an exit status of 0, 1 or 2 and at most one error line, never a
    traceback. What the arguments would start (a Dagster run, a replay, a simulation) is
    replaced by an exception: the subject here is the argument handling."""
    import live.replay
    import orchestration.runner
    import tickml.simulator

    for mod, name in ((orchestration.runner, "materialize_days"),
                      (orchestration.runner, "materialize_once"),
                      (live.replay, "replay"), (tickml.simulator, "simulate_day")):
        monkeypatch.setattr(mod, name, _refuse)
    monkeypatch.setattr(live_main, "_run_role", _refuse)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TICKML_PG_URL", raising=False)
    monkeypatch.setenv("TICKML_REDIS_URL", "redis://127.0.0.1:1/0")
    args = list(argv)
    if args[:1] == ["feed"]:
        try:
            rc = live_main.main(args)
        except SystemExit as exc:
            rc = exc.code
    else:
        rc = run_command(typer.main.get_command(app), args)
    out = capsys.readouterr()
    assert rc in (0, 1, 2), (rc, out.err[-2000:])
    assert "Traceback" not in out.out + out.err
    assert sum(": error: " in ln for ln in out.err.splitlines()) <= 1, out.err[-2000:]

