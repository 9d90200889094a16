"""The tick bus on a real Redis: routing, consumer groups, recovery, dedup, dead letters."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import numpy as np
import pandas as pd
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from live.bus import BadEntry, BusEntry, TickBatch, TickBus, decode_entry, encode_ticks, trim
from live.config import LiveConfig
from live.consume import BusConsumer, SeqDedup
from tickml.schema import TICK_COLUMNS
from tickml.simulator import SimConfig, simulate_day

log = logging.getLogger(__name__)
SYMBOLS = ["SPY", "AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
DAY = dt.date(2024, 1, 8)


def sim_ticks(symbols=SYMBOLS, close=dt.time(10, 0), seed=7) -> pd.DataFrame:
    """A simulated session in feed order (time, then symbol)."""
    cfg = SimConfig(symbols=list(symbols), leader="SPY", seed=seed, session_close=close)
    t = simulate_day(cfg, DAY).ticks
    return t.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


def drain(consumer: BusConsumer, ack: bool = True, idle_reads: int = 2) -> list[BusEntry]:
    out: list[BusEntry] = []
    empty = 0
    while empty < idle_reads:
        got = consumer.read()
        empty = 0 if got else empty + 1
        out += got
        if ack:
            consumer.ack(got)
    return out


def tick_frame(entries: list[BusEntry]) -> pd.DataFrame:
    batches = [e.batch for e in entries if e.kind == "t"]
    return TickBatch.concat(batches).to_frame()


@pytest.fixture()
def r(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture()
def cfg(redis_url) -> LiveConfig:
    return LiveConfig(redis_url=redis_url, pg_url=None, shards=4, batch_ticks=500)


@pytest.mark.unit
def test_tick_batch_frame_round_trip_and_take() -> None:
    ticks = sim_ticks(close=dt.time(9, 35))
    b = TickBatch.from_frame(ticks, wall_ns=5, src="sim")
    pd.testing.assert_frame_equal(b.to_frame(), ticks[list(TICK_COLUMNS)])
    mask = ticks["symbol"].to_numpy() == "AAA"
    pd.testing.assert_frame_equal(
        b.take(mask).to_frame(), ticks[mask].reset_index(drop=True)[list(TICK_COLUMNS)]
    )
    assert b.take(np.array([3, 1])).seq.tolist() == ticks["seq"].iloc[[3, 1]].tolist()
    with pytest.raises(ValueError, match="lacks canonical columns"):
        TickBatch.from_frame(ticks.drop(columns=["seq"]))


@pytest.mark.integration
def test_round_trip_routing_leader_and_clock(r, cfg) -> None:
    ticks = sim_ticks()
    bus = TickBus(r, cfg, leader="SPY")
    parts = np.array_split(np.arange(len(ticks)), 4)
    written = 0
    for p in parts:
        written += bus.publish(ticks.iloc[p], src="sim")
        bus.publish_clock(int(ticks["ts"].iloc[p[-1]].value))
    consumer = BusConsumer(r, cfg, "g", "c0", range(cfg.shards), block_ms=20)
    entries = drain(consumer)
    assert sum(e.kind == "t" for e in entries) == written
    owner = {s: cfg.shard_of(s) for s in SYMBOLS}
    assert len(set(owner.values())) > 1  # the test routes to several shards
    clock_t = [int(ticks["ts"].iloc[p[-1]].value) for p in parts]
    for shard in range(cfg.shards):
        mine = [e for e in entries if e.shard == shard]
        got = tick_frame(mine)
        want = ticks[ticks["symbol"].map(owner).eq(shard) | ticks["symbol"].eq("SPY")]
        # every tick of the shard once, in source (publish) order; the leader in every shard
        pd.testing.assert_frame_equal(got, want.reset_index(drop=True)[list(TICK_COLUMNS)])
        assert all(len(e.batch) <= cfg.batch_ticks for e in mine if e.kind == "t")
        assert [e.batch.src for e in mine if e.kind == "t"] == ["sim"] * (len(mine) - 4)
        # clock markers: all four, in order, each after every tick it covers
        clocks = [(i, e) for i, e in enumerate(mine) if e.kind == "c"]
        assert [e.clock_ns for _, e in clocks] == clock_t
        for i, e in clocks:
            before = tick_frame(mine[:i])
            after = tick_frame(mine[i:])
            assert (after["ts"].astype("int64") > e.clock_ns).all()
            assert len(before) == ((want["ts"].astype("int64") <= e.clock_ns).sum())
    assert consumer.lag() == {s: 0 for s in range(cfg.shards)}


@pytest.mark.integration
@pytest.mark.slow
def test_round_trip_real_equity_day(r, cfg, equity_root) -> None:
    from tickml.ingest import SourceSpec, load_day

    spec = SourceSpec(kind="equity-ticks", path=equity_root, symbols=("IBM", "SPY"))
    ticks = load_day(spec, dt.date(2013, 10, 8)).ticks
    ticks = ticks.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)
    assert len(ticks) > 100_000
    cfg = cfg.model_copy(update={"batch_ticks": 2000, "stream_maxlen": 10_000})
    TickBus(r, cfg).publish(ticks, src="equity")
    consumer = BusConsumer(r, cfg, "g", "c0", range(cfg.shards), block_ms=20, count=128)
    entries = drain(consumer)
    got = tick_frame([e for e in entries if e.shard == cfg.shard_of("IBM")])
    want = ticks[ticks["symbol"].isin(["IBM", "SPY"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want[list(TICK_COLUMNS)])  # NaN books, sizes, order
    # the leader SPY reaches every shard, whole and in order
    for shard in range(cfg.shards):
        spy = tick_frame([e for e in entries if e.shard == shard]).query("symbol == 'SPY'")
        assert spy["seq"].tolist() == ticks.loc[ticks["symbol"] == "SPY", "seq"].tolist()


@pytest.mark.integration
def test_two_consumers_of_one_group_split_the_entries(r, cfg) -> None:
    ticks = sim_ticks()
    n = TickBus(r, cfg, leader=None).publish(ticks)
    a = BusConsumer(r, cfg, "g", "a", range(cfg.shards), block_ms=10, count=3)
    b = BusConsumer(r, cfg, "g", "b", range(cfg.shards), block_ms=10, count=3)
    got: dict[str, list[BusEntry]] = {"a": [], "b": []}
    busy = True
    while busy:
        busy = False
        for name, c in (("a", a), ("b", b)):
            es = c.read()
            c.ack(es)
            got[name] += es
            busy |= bool(es)
    ids_a = {(e.shard, e.id) for e in got["a"]}
    ids_b = {(e.shard, e.id) for e in got["b"]}
    assert ids_a and ids_b and not ids_a & ids_b
    assert len(ids_a | ids_b) == n
    pd.testing.assert_frame_equal(
        tick_frame(got["a"] + got["b"]).sort_values(["symbol", "seq"]).reset_index(drop=True),
        ticks.sort_values(["symbol", "seq"]).reset_index(drop=True)[list(TICK_COLUMNS)],
    )


@pytest.mark.integration
def test_crashed_consumer_entries_are_claimed_by_another(r, cfg) -> None:
    TickBus(r, cfg).publish(sim_ticks())
    dead = BusConsumer(r, cfg, "g", "dead", range(cfg.shards), count=2)
    lost = dead.read()  # never acknowledged: the consumer "crashes"
    assert lost
    alive = BusConsumer(r, cfg, "g", "alive", range(cfg.shards), block_ms=10, claim_idle_ms=300)
    first = drain(alive)  # everything else; the dead one's entries are not idle long enough
    assert {(e.shard, e.id) for e in lost}.isdisjoint({(e.shard, e.id) for e in first})
    time.sleep(0.4)
    claimed = drain(alive)
    assert sorted((e.shard, e.id) for e in claimed) == sorted((e.shard, e.id) for e in lost)
    for shard in range(cfg.shards):
        assert r.xpending(cfg.stream(shard), "g")["pending"] == 0


@pytest.mark.integration
def test_restart_under_the_same_name_rereads_pending_entries(r, cfg) -> None:
    ticks = sim_ticks()
    TickBus(r, cfg).publish(ticks)
    before = BusConsumer(r, cfg, "g", "w0", range(cfg.shards), count=5)
    held = before.read() + before.read()
    before.ack(held[:2])
    after = BusConsumer(r, cfg, "g", "w0", range(cfg.shards), block_ms=10, count=100)
    again = after.read()  # first the entries it held before the restart, per shard in order
    for shard in range(cfg.shards):
        assert [e.id for e in again if e.shard == shard] == [
            e.id for e in held[2:] if e.shard == shard
        ]
    assert len(again) == len(held) - 2
    after.ack(again)
    rest = drain(after)
    total = len(tick_frame(held[:2] + again + rest))
    assert total == sum(len(tick_frame([e])) for e in held[:2] + again + rest)
    assert sum(after.lag().values()) == 0
    n_spy = int((ticks["symbol"] == "SPY").sum())
    assert total == len(ticks) + (cfg.shards - 1) * n_spy


def _reference_dedup(symbols, tss, seqs, state):
    keep = []
    for s, t, q in zip(symbols, tss, seqs, strict=True):
        ok = (int(t), int(q)) > state.get(s, (-(2**63), -(2**63)))
        keep.append(ok)
        if ok:
            state[s] = (int(t), int(q))
    return np.array(keep, dtype=bool)


@pytest.mark.unit
@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.sampled_from(["A", "B", "C", "Ω"]),
                st.integers(0, 3),
                st.one_of(st.integers(-5, 30), st.sampled_from([-(2**63), 2**63 - 1])),
            ),
            max_size=40,
        ),
        max_size=5,
    )
)
def test_seq_dedup_matches_a_reference(batches) -> None:
    d, ref = SeqDedup(), {}
    for i, rows in enumerate(batches):
        syms = np.array([s for s, _, _ in rows], dtype=object)
        tss = np.array([t for _, t, _ in rows], dtype=np.int64)
        seqs = np.array([q for _, _, q in rows], dtype=np.int64)
        b = TickBatch(syms, tss, seqs, np.zeros((len(rows), 6)))
        if i % 3 == 1 and rows:  # through the bus encoding: the entry's own factorization
            codes, uniq = pd.factorize(syms)
            px = np.zeros((len(rows), 6))
            fields = encode_ticks(np.asarray(uniq, dtype=object), codes, tss, seqs, px, 0, "")
            b = decode_entry(0, b"1-0", fields).batch
            assert b is not None and b.factor is not None
            assert (b.factor[1][b.factor[0]] == syms).all()
        assert d.filter(b).tolist() == _reference_dedup(syms, tss, seqs, ref).tolist()
        if i % 2:
            d = SeqDedup.from_json(d.to_json())  # checkpoint and restore mid-stream
        assert d.mark == ref


@pytest.mark.integration
def test_dedup_drops_replays_end_to_end(r, cfg) -> None:
    ticks = sim_ticks()
    bus = TickBus(r, cfg)
    half = len(ticks) // 2
    bus.publish(ticks.iloc[:half])
    bus.publish(ticks.iloc[half // 2 :])  # a feed reconnect replays a quarter of the day
    bus.publish(ticks.iloc[-100:])  # and the tail once more
    consumer = BusConsumer(r, cfg, "g", "c", range(cfg.shards), block_ms=10)
    dedups = {s: SeqDedup() for s in range(cfg.shards)}
    kept = []
    for e in drain(consumer):
        if e.kind == "t":
            kept.append(e.batch.take(dedups[e.shard].filter(e.batch)))
    got = TickBatch.concat(kept).to_frame()
    spy = got.groupby("symbol")["seq"].agg(["count", "nunique"]).loc["SPY"]
    assert spy["count"] == cfg.shards * spy["nunique"]  # each shard's materializer gets SPY once
    rest = got[got["symbol"] != "SPY"].sort_values(["symbol", "seq"]).reset_index(drop=True)
    want = ticks[ticks["symbol"] != "SPY"].sort_values(["symbol", "seq"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(rest, want[list(TICK_COLUMNS)])


@pytest.mark.integration
def test_maxlen_bounds_each_stream_and_trim(r, cfg) -> None:
    cfg = cfg.model_copy(update={"stream_maxlen": 100, "batch_ticks": 1, "shards": 2})
    ticks = sim_ticks(close=dt.time(9, 50))
    written = TickBus(r, cfg, leader=None).publish(ticks)
    assert written == len(ticks) > 2000
    lengths = [r.xlen(cfg.stream(s)) for s in range(cfg.shards)]
    assert all(100 <= n <= 300 for n in lengths), lengths  # "~": whole macro nodes are dropped
    last = r.xrevrange(cfg.stream(0), count=10)
    removed = trim(r, cfg, 0, last[-1][0], approximate=False)
    assert removed == lengths[0] - 10 and r.xlen(cfg.stream(0)) == 10


def _bad_entries() -> list[dict[bytes, bytes]]:
    good = TickBatch.from_frame(sim_ticks(close=dt.time(9, 31)).iloc[:3], wall_ns=1)
    ok = {
        b"k": b"t",
        b"syms": json.dumps(sorted(set(good.symbols))).encode(),
        b"code": np.array([0, 0, 0], "<i4").tobytes(),
        b"ts": good.ts.astype("<i8").tobytes(),
        b"seq": good.seq.astype("<i8").tobytes(),
        b"px": good.px.astype("<f8").tobytes(),
        b"wall": b"1",
        b"src": b"x",
    }
    return [
        {**ok, b"k": b"zz"},
        {**ok, b"px": ok[b"px"][:-3]},
        {**ok, b"code": np.array([0, 0, 7], "<i4").tobytes()},
        {**ok, b"syms": b"{not json"},
        {**ok, b"syms": json.dumps(["A\u0000B"]).encode()},
        {**ok, b"syms": b'["\\ud800"]'},
        {k: v for k, v in ok.items() if k != b"seq"},
        {**ok, b"wall": b"noon"},
        {b"k": b"c", b"t": b"12x", b"wall": b"1"},
        {**ok, b"src": b"\xff\xfe"},
        {**ok, b"ts": np.array([0, -(2**63), 1], "<i8").tobytes()},
    ]


@pytest.mark.integration
def test_malformed_entries_go_to_the_dead_letter_stream(r, cfg, caplog) -> None:
    bus = TickBus(r, cfg, leader=None)
    ticks = sim_ticks(close=dt.time(9, 40))
    bad = _bad_entries()
    for i, fields in enumerate(bad):
        r.xadd(cfg.stream(1), fields)
        if i == 4:
            bus.publish(ticks)
    r.xadd(cfg.stream(1), {b"k": b"c", b"t": b"5", b"wall": b"6"})
    before = REGISTRY.get_sample_value(
        "tickml_worker_errors_total", {"worker": "g", "kind": "bad_input"}
    )
    consumer = BusConsumer(r, cfg, "g", "c", range(cfg.shards), block_ms=10)
    with caplog.at_level(logging.WARNING, logger="live.bus"):
        entries = drain(consumer)
    pd.testing.assert_frame_equal(
        tick_frame(entries).sort_values(["symbol", "seq"]).reset_index(drop=True),
        ticks.sort_values(["symbol", "seq"]).reset_index(drop=True)[list(TICK_COLUMNS)],
    )
    assert [e.clock_ns for e in entries if e.kind == "c"] == [5]
    dead = r.xrange(cfg.key("bus", "dead"))
    assert len(dead) == len(bad)
    assert all(f[b"shard"] == b"1" and f[b"reason"] for _, f in dead)
    assert dead[0][1][b"f.k"] == b"zz" and b"BadEntry" in dead[0][1][b"reason"]
    after = REGISTRY.get_sample_value(
        "tickml_worker_errors_total", {"worker": "g", "kind": "bad_input"}
    )
    assert after - (before or 0) == len(bad)
    assert sum(consumer.lag().values()) == 0  # acknowledged: never delivered again
    assert sum("malformed bus entry" in m.getMessage() for m in caplog.records) == len(bad)


_FIELD_NAMES = st.sampled_from(
    [b"k", b"syms", b"code", b"ts", b"seq", b"px", b"wall", b"src", b"t"]
)
_FIELDS = st.dictionaries(
    st.one_of(_FIELD_NAMES, st.binary(min_size=1, max_size=8)),
    st.one_of(
        st.binary(max_size=64),
        st.sampled_from([b"t", b"c", b"[]", b'["A"]', b'["A", "B"]', b"0", b"-1", b"7"]),
        st.integers(0, 6).map(lambda n: b"\x00" * (4 * n)),
        st.integers(0, 6).map(lambda n: b"\x01" * (8 * n)),
    ),
    min_size=1,
    max_size=10,
)


@pytest.mark.unit
@settings(max_examples=1000, deadline=None)
@given(_FIELDS)
def test_decoder_fuzz_raises_only_bad_entry(fields) -> None:
    try:
        e = decode_entry(0, b"1-0", fields)
    except BadEntry:
        return
    assert e.kind in ("t", "c")
    if e.kind == "t":
        assert len(e.batch.symbols) == len(e.batch.ts) == len(e.batch.seq) == len(e.batch.px)


@pytest.mark.integration
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_FIELDS, min_size=1, max_size=8))
def test_read_never_raises_on_arbitrary_entries(r, cfg, entries) -> None:
    r.flushdb()
    for fields in entries:
        r.xadd(cfg.stream(0), fields)
    consumer = BusConsumer(r, cfg, "g", "c", [0], block_ms=1)
    got = drain(consumer, idle_reads=1)
    assert len(got) + r.xlen(cfg.key("bus", "dead")) == len(entries)
    assert sum(consumer.lag().values()) == 0


@pytest.mark.unit
def test_bus_refuses_a_decoding_client(cfg) -> None:
    client = redis.Redis.from_url(cfg.redis_url, decode_responses=True)
    with pytest.raises(ValueError, match="decode_responses"):
        TickBus(client, cfg)


@pytest.mark.integration
@pytest.mark.slow
def test_throughput_publish_and_read(r, cfg) -> None:
    """About 1M ticks: publish and read+decode must each run far above 50,000 ticks/s."""
    ticks = simulate_day(SimConfig(n_symbols=40), DAY).ticks
    ticks = pd.concat([ticks, ticks.iloc[: 1_000_000 - len(ticks)]], ignore_index=True)
    cfg = cfg.model_copy(update={"batch_ticks": 2000, "stream_maxlen": 10_000})
    t0 = time.perf_counter()
    TickBus(r, cfg, leader=None).publish(ticks)
    t_pub = time.perf_counter() - t0
    consumer = BusConsumer(r, cfg, "g", "c", range(cfg.shards), block_ms=10, count=128)
    t0 = time.perf_counter()
    n = sum(len(e.batch) for e in drain(consumer, idle_reads=1))
    t_read = time.perf_counter() - t0
    log.warning("bus: publish %.0f ticks/s, read+decode+ack %.0f ticks/s", n / t_pub, n / t_read)
    assert n == len(ticks)
    assert n / t_pub > 200_000 and n / t_read > 200_000


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from(["B", "A", "Ω", "A.B", "a", "Z9"]), min_size=1, max_size=30),
    st.lists(st.booleans(), min_size=30, max_size=30),
    st.booleans(),
)
def test_groups_equal_np_unique_after_decode_and_take(syms, mask, listed_twice):
    """The engine's grouping from the entry's factorization equals np.unique of the symbols,
    for a decoded entry, a subset of it (unused symbols) and a producer that listed a symbol
    twice (no factorization kept: computed again)."""
    symbols = np.array(syms, dtype=object)
    codes, uniq = pd.factorize(symbols)
    uniq = np.asarray(uniq, dtype=object)
    n = len(syms)
    z = np.zeros(n, dtype=np.int64)
    fields = encode_ticks(uniq, codes, z, z, np.zeros((n, 6)), 0, "")
    if listed_twice:
        listed = json.loads(fields[b"syms"])
        fields[b"syms"] = json.dumps([*listed, listed[0]]).encode()
    batch = decode_entry(0, b"1-0", fields).batch
    assert batch is not None and (batch.factor is None) == listed_twice
    keep = np.array(mask[:n])
    for b in (batch, batch.take(keep)):
        if not len(b):
            continue
        names, inv = b.groups()
        want, want_inv = np.unique(b.symbols.astype(str), return_inverse=True)
        assert names == want.tolist() and inv.tolist() == want_inv.tolist()
