"""live.online against a real Feast store (Redis online store, SQL registry in PostgreSQL).

Both directions for both views: rows written by the fast writer read back identically through
``FeatureStore.get_online_features``, rows pushed through Feast read back identically through
the fast reader (values bit for bit, NaN positions, event timestamps); missing and stale
entities; layout mismatches raise clear errors. Feature values are real: the feature engine
over a simulated day, plus edge values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import redis

from live.online import (
    MISSING_INT,
    UNIVERSE_TTL_S,
    OnlineLayout,
    entity_key,
    field_key,
    read_rows,
    read_vectors,
    timestamp_bytes,
    timestamp_ns,
    write_rows,
    write_vectors,
)
from live.wire import VECTOR_JOIN_KEY as VJ
from tickml.features import FeatureConfig, compute_features, feature_names, with_pit_columns
from tickml.simulator import SimConfig, simulate_day

pytestmark = [pytest.mark.integration]

PROJECT = "tickml"
NAMES = feature_names(FeatureConfig())
PIT = ["row_event_ns", "last_tick_ns"]
EDGES = [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-300, 5e-324, -1.7976931348623157e308]


@pytest.fixture(scope="module")
def feats() -> pd.DataFrame:
    """The last row of a simulated day per symbol (real feature engine), its first row (many
    NaN features) under the name <symbol>_OPEN, and a row of edge values under EDGE0.."""
    sim = SimConfig(n_symbols=3, seed=5)
    ticks = simulate_day(sim, dt.date(2024, 1, 2)).ticks
    f = with_pit_columns(compute_features(ticks, FeatureConfig(leader=sim.leader_name)))
    last = f.groupby("symbol").tail(1).reset_index(drop=True)
    first = f.groupby("symbol").head(1).reset_index(drop=True)
    first["symbol"] = first["symbol"] + "_OPEN"
    rows = pd.concat([last, first], ignore_index=True)
    assert rows[NAMES].isna().any().any() and rows[NAMES].notna().any().any()
    edge = last.copy()
    edge["symbol"] = [f"EDGE{i}" for i in range(len(edge))]
    x = edge[NAMES].to_numpy(np.float64)
    for j in range(x.shape[1]):
        x[:, j] = EDGES[j % len(EDGES)] if j % 3 == 0 else x[:, j]
    edge[NAMES] = x
    edge["last_tick_ns"] = [-5, 0, 2**62 + 3][: len(edge)]
    # one event time with microseconds (Feast keeps microseconds)
    ev = edge["event_timestamp"].to_numpy().copy()
    ev[0] += np.timedelta64(123_457, "us")
    edge["event_timestamp"] = pd.to_datetime(ev, utc=True)
    edge["row_event_ns"] = edge["event_timestamp"].astype("int64")
    out = pd.concat([rows, edge], ignore_index=True)
    return out[["symbol", "event_timestamp", *NAMES, *PIT]].reset_index(drop=True)


@pytest.fixture()
def store(redis_url, pg_url, tmp_path):
    from feature_repo.store import apply, load_store
    from tickml.workdir import Workdir

    layout = Workdir(tmp_path)
    registry = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    fs = load_store("prod", layout, redis_url=redis_url, registry_url=registry)
    apply(fs, layout)
    return fs


def _layout(store) -> OnlineLayout:
    lay = OnlineLayout.from_feature_view(PROJECT, store.get_feature_view("tick_features"))
    assert lay.features == [*NAMES, *PIT] and lay.dtypes[-2:] == ["int64", "int64"]
    return lay


def _same(got: np.ndarray, want: np.ndarray) -> None:
    """Bit-identical float64 (so -0.0 != 0.0), NaN at the same places."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(got[ok].view(np.int64), want[ok].view(np.int64))


def _feast_read(store, symbols: list[str]):
    refs = [f"tick_features:{c}" for c in [*NAMES, *PIT]] + ["model_vector:vector"]
    rows = [{"symbol": s, "vector_symbol": s} for s in symbols]
    resp = store.get_online_features(features=refs, entity_rows=rows)
    d = resp.to_dict(include_event_timestamps=True)
    names = list(resp.proto.metadata.feature_names.val)

    def ts_ns(name: str) -> np.ndarray:
        ts = resp.proto.results[names.index(name)].event_timestamps
        return np.array([t.seconds * 1_000_000_000 + t.nanos for t in ts], dtype=np.int64)

    return d, ts_ns


def _nan_for_none(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def test_layout_is_feasts(redis_url):
    """Keys, field names, timestamps and ValueProtos are byte-identical to Feast's own."""
    from feast.infra.online_stores.helpers import _mmh3, _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import DoubleList
    from feast.protos.feast.types.Value_pb2 import Value as ValueProto
    from google.protobuf.timestamp_pb2 import Timestamp

    ek = EntityKey(join_keys=["symbol"], entity_values=[ValueProto(string_val="BRK.B")])
    assert entity_key("BRK.B", PROJECT) == _redis_key(PROJECT, ek, 3)
    assert field_key("tick_features", NAMES[0]) == _mmh3(f"tick_features:{NAMES[0]}")
    for t in (
        dt.datetime(2024, 1, 2, 15, 0, tzinfo=dt.UTC),
        dt.datetime(2024, 1, 2, 15, 0, 1, 123_456, tzinfo=dt.UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=dt.UTC),
    ):
        ts = Timestamp()
        ts.FromDatetime(t)
        ns = pd.Timestamp(t).value
        assert timestamp_bytes(ns) == ts.SerializeToString()
        assert timestamp_ns(ts.SerializeToString()) == ns
    r = redis.Redis.from_url(redis_url)
    vec = [1.5, np.nan, -0.0, 1e-300, np.inf]
    write_vectors(r, PROJECT, "model_vector", "vector", ["A"], np.array([vec]), 0)
    raw = r.hget(entity_key("A", PROJECT, VJ), field_key("model_vector", "vector"))
    assert not r.exists(entity_key("A", PROJECT))  # vectors: their own entity, own hash
    assert raw == ValueProto(double_list_val=DoubleList(val=vec)).SerializeToString()
    lay = OnlineLayout(PROJECT, "v", ["x", "n"], {"n": "int64"})
    write_rows(r, lay, ["A", "B"], np.array([[-0.0, 7], [np.nan, np.nan]]), 0)
    h = r.hgetall(entity_key("A", PROJECT))
    assert h[field_key("v", "x")] == ValueProto(double_val=-0.0).SerializeToString()
    assert h[field_key("v", "n")] == ValueProto(int64_val=7).SerializeToString()
    hb = r.hgetall(entity_key("B", PROJECT))
    assert hb[field_key("v", "x")] == b"" == hb[field_key("v", "n")]  # Feast's null (NaN pushed)
    assert hb[b"_ts:v"] == b""  # Timestamp of the epoch


def test_fast_writer_reads_back_through_feast(store, redis_url, feats):
    r = redis.Redis.from_url(redis_url)
    lay = _layout(store)
    syms = feats["symbol"].tolist()
    ev = feats["event_timestamp"].astype("int64").to_numpy()
    vals = feats[[*NAMES, *PIT]].to_numpy(np.float64)
    ints = {c: feats[c].to_numpy(np.int64) for c in PIT}
    write_rows(r, lay, syms, vals, ev, ints)
    vectors = feats[NAMES].to_numpy(np.float64)
    write_vectors(r, PROJECT, "model_vector", "vector", syms, vectors, ev)

    d, ts_ns = _feast_read(store, syms)
    for j, name in enumerate(NAMES):
        _same(_nan_for_none(d[name]), vals[:, j])
    for c in PIT:
        assert d[c] == feats[c].tolist()
    _same(np.array(d["vector"], dtype=np.float64), vectors)
    # Feast reads the stored time through a float of seconds: exact to the microsecond
    want_us = ev // 1000 * 1000
    for name in (NAMES[0], "last_tick_ns", "vector"):
        np.testing.assert_array_equal(ts_ns(name), want_us)
        assert d[f"{name}__ts"] == (ev // 1_000_000_000).tolist()
    # and the fast reader gives back exactly what was written, nanoseconds included
    rows = read_rows(r, lay, syms)
    _same(rows.values, vals)
    np.testing.assert_array_equal(rows.event_ts_ns, ev)
    for c in PIT:
        np.testing.assert_array_equal(rows.ints[c], ints[c])
    x, t = read_vectors(r, PROJECT, "model_vector", "vector", syms)
    _same(x, vectors)
    np.testing.assert_array_equal(t, ev)


def test_feast_push_reads_back_through_fast_reader(store, redis_url, feats):
    from feast.data_source import PushMode

    r = redis.Redis.from_url(redis_url)
    lay = _layout(store)
    store.push("tick_features_push", feats, to=PushMode.ONLINE)
    vec_df = feats[["symbol", "event_timestamp"]].rename(columns={"symbol": "vector_symbol"})
    vec_df["vector"] = list(feats[NAMES].to_numpy(np.float64))
    store.push("model_vector_push", vec_df, to=PushMode.ONLINE)

    syms = feats["symbol"].tolist()
    ev_us = feats["event_timestamp"].astype("int64").to_numpy() // 1000 * 1000  # Feast keeps us
    rows = read_rows(r, lay, syms)
    _same(rows.values[:, : len(NAMES)], feats[NAMES].to_numpy(np.float64))
    for c in PIT:
        np.testing.assert_array_equal(rows.ints[c], feats[c].to_numpy(np.int64))
    np.testing.assert_array_equal(rows.event_ts_ns, ev_us)
    x, t = read_vectors(r, PROJECT, "model_vector", "vector", syms)
    _same(x, feats[NAMES].to_numpy(np.float64))
    np.testing.assert_array_equal(t, ev_us)


def test_missing_stale_and_overwritten(store, redis_url, feats):
    from feast.data_source import PushMode

    r = redis.Redis.from_url(redis_url)
    lay = _layout(store)
    real = feats.iloc[:2]
    syms = real["symbol"].tolist()
    x = real[NAMES].to_numpy(np.float64)
    old, new = 1_704_207_600_000_000_000, 1_704_207_660_000_000_000  # one minute apart
    write_vectors(r, PROJECT, "model_vector", "vector", syms, x + 1.0, old)
    write_vectors(r, PROJECT, "model_vector", "vector", syms[:1], x[:1], new)
    write_rows(r, lay, syms[:1], real[[*NAMES, *PIT]].to_numpy(np.float64)[:1], new)

    ask = [syms[0], "NEVER", syms[1], "NEVER2"]
    got, ts = read_vectors(r, PROJECT, "model_vector", "vector", ask)
    _same(got[0], x[0])  # the newer row replaced the older one
    _same(got[2], x[1] + 1.0)  # only the older row was written
    assert np.isnan(got[[1, 3]]).all()
    np.testing.assert_array_equal(ts, [new, -1, old, -1])
    bound = new - 30_000_000_000  # "no older than 30 s before the newest boundary"
    np.testing.assert_array_equal((ts >= 0) & (ts >= bound), [True, False, False, False])
    rows = read_rows(r, lay, ask)
    assert np.isnan(rows.values[1:]).all() and rows.ints["last_tick_ns"][1] == MISSING_INT
    np.testing.assert_array_equal(rows.event_ts_ns, [new, -1, -1, -1])  # no tick_features row

    d, ts_ns = _feast_read(store, ask)
    assert d["vector"][1] is None and d["vector"][3] is None and d[NAMES[0]][2] is None
    _same(np.array(d["vector"][0]), x[0])
    np.testing.assert_array_equal(ts_ns("vector")[[0, 2]], [new, old])

    # Feast's push skips a row that is not newer than what is stored: it reads our timestamp
    stale = pd.DataFrame(
        {"vector_symbol": [syms[0]], "event_timestamp": [pd.Timestamp(old, tz="UTC")],
         "vector": [x[1]]}
    )
    store.push("model_vector_push", stale, to=PushMode.ONLINE)
    got2, ts2 = read_vectors(r, PROJECT, "model_vector", "vector", syms[:1])
    _same(got2[0], x[0])
    assert ts2[0] == new


def test_mismatched_layouts_raise(redis_url):
    r = redis.Redis.from_url(redis_url)
    write_vectors(r, PROJECT, "model_vector", "vector", ["A"], np.zeros((1, 5)), 1)
    write_vectors(r, PROJECT, "model_vector", "vector", ["B"], np.zeros((1, 6)), 1)
    with pytest.raises(ValueError, match="not float64 vectors of one length"):
        read_vectors(r, PROJECT, "model_vector", "vector", ["A", "B"])
    # a scalar where a vector is expected (e.g. another view's layout)
    r.hset(entity_key("C", PROJECT, VJ), field_key("model_vector", "vector"), b")" + bytes(8))
    with pytest.raises(ValueError, match="not a packed float64 list"):
        read_vectors(r, PROJECT, "model_vector", "vector", ["C"])
    lay = OnlineLayout(PROJECT, "v", ["a", "b"], ["float64", "int64"])
    with pytest.raises(ValueError, match="shape"):
        write_rows(r, lay, ["A"], np.zeros((1, 3)), 1)
    with pytest.raises(ValueError, match="non-integral"):
        write_rows(r, lay, ["A"], np.array([[0.0, 0.5]]), 1)
    with pytest.raises(ValueError, match="dtypes"):
        OnlineLayout(PROJECT, "v", ["a"], ["float32"])
    with pytest.raises(ValueError, match="decode_responses"):
        read_vectors(
            redis.Redis.from_url(redis_url, decode_responses=True), PROJECT, "v", "f", ["A"]
        )
    # nothing was left half-read on the connection: the client still works
    assert read_vectors(r, PROJECT, "model_vector", "vector", ["A"])[0].shape == (1, 5)


def test_pure_python_parser_gives_the_same(redis_url, feats):
    """The hiredis fast path and redis-py's pure-Python reply parser agree (partial rows too)."""
    from redis._parsers import _RESP2Parser

    fast = redis.Redis.from_url(redis_url)
    slow = redis.Redis(
        connection_pool=redis.ConnectionPool.from_url(redis_url, parser_class=_RESP2Parser)
    )
    syms = feats["symbol"].tolist()
    x = feats[NAMES].to_numpy(np.float64)
    write_vectors(fast, PROJECT, "model_vector", "vector", syms[1:], x[1:], 42)
    ask = [*syms, "NEVER"]
    a, ta = read_vectors(fast, PROJECT, "model_vector", "vector", ask)
    b, tb = read_vectors(slow, PROJECT, "model_vector", "vector", ask)
    _same(a, b)
    np.testing.assert_array_equal(ta, tb)
    _same(a[1:-1], x[1:])
    assert np.isnan(a[[0, -1]]).all() and ta.tolist() == [-1, *[42] * (len(syms) - 1), -1]


def test_universe_list_and_pipeline_fallback(redis_url, feats, caplog):
    """The hot path keeps a list of the universe's entity keys for SORT_RO; it is recreated when
    it vanishes; a client that may not run SORT_RO (an ACL here) reads the same through
    pipelined HMGET."""
    import uuid
    from urllib.parse import urlparse

    r = redis.Redis.from_url(redis_url)
    syms = feats["symbol"].tolist()
    x = feats[NAMES].to_numpy(np.float64)
    write_vectors(r, PROJECT, "model_vector", "vector", syms, x, 7)
    got, ts = read_vectors(r, PROJECT, "model_vector", "vector", syms)
    _same(got, x)
    lists = r.keys(f"{PROJECT}:online:universe:*")
    assert len(lists) == 1 and 0 < r.ttl(lists[0]) <= UNIVERSE_TTL_S
    assert r.lrange(lists[0], 0, -1) == [entity_key(s, PROJECT, VJ) for s in syms]
    r.delete(lists[0])
    got, ts = read_vectors(r, PROJECT, "model_vector", "vector", syms)
    _same(got, x)
    assert r.exists(lists[0]) and (ts == 7).all()

    user = f"tickml_test_nosort_{uuid.uuid4().hex[:8]}"
    r.acl_setuser(
        user, enabled=True, nopass=True, keys=["*"], channels=["*"], commands=["+@all", "-sort_ro"]
    )
    try:
        u = urlparse(redis_url)
        limited = redis.Redis(
            host=u.hostname,
            port=u.port or 6379,
            db=int(u.path[1:] or 0),
            username=user,
            password="unused",
        )
        with pytest.raises(redis.exceptions.NoPermissionError):
            limited.execute_command("SORT_RO", lists[0], "BY", "nosort")
        with caplog.at_level("WARNING", logger="live.online"):
            got2, ts2 = read_vectors(limited, PROJECT, "model_vector", "vector", [*syms, "NEVER"])
        assert "SORT_RO refused" in caplog.text
        _same(got2[:-1], x)
        assert np.isnan(got2[-1]).all() and ts2.tolist() == [7] * len(syms) + [-1]
        limited.close()
    finally:
        r.acl_deluser(user)


def test_a_view_whose_field_starts_with_nul_is_read_exactly(redis_url, feats):
    """SORT's ``GET *-><field>`` takes a field starting with a NUL byte for "no field" (found
    with a real layout name): such a view is read with HMGET, and layouts avoid such names."""
    from live.layout import layout_for
    from live.wire import field_key

    view = "model_vector_c50b3ed6400e"
    assert field_key(view, "vector")[:1] == b"\0"
    r = redis.Redis.from_url(redis_url)
    syms = feats["symbol"].tolist()
    x = feats[NAMES].to_numpy(np.float64)
    write_vectors(r, PROJECT, view, "vector", syms, x, 11)
    got, ts = read_vectors(r, PROJECT, view, "vector", syms)
    _same(got, x)
    assert (ts == 11).all()
    for k in range(300):  # layout names never start their field with NUL
        lay = layout_for({"features": [f"f{k}", "g"], "feature_service": "x"})
        assert field_key(lay.view, "vector")[:1] != b"\0"
