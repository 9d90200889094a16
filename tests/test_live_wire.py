"""live.wire's batched XADD commands: byte-identical to one ``resp`` per entry, and what a real
Redis stores from them (fields and values, in order, across chunk boundaries); the online
store's chunked vector writes (:func:`live.online.vector_commands`): one HSET per symbol."""

from __future__ import annotations

import numpy as np
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from live.online import _vector_header, vector_commands, vector_payload
from live.wire import (
    VECTOR_JOIN_KEY,
    entity_key,
    field_key,
    resp,
    roundtrip,
    timestamp_bytes,
    ts_field,
    xadd_commands,
)

pytestmark = [pytest.mark.integration]

VALUES = st.binary(min_size=0, max_size=12)  # %, \r\n, NUL and empty values included


def _per_entry(stream: bytes, maxlen: int, fields, n: int) -> bytes:
    def at(v, i):
        return v if isinstance(v, bytes) else v[i]

    return b"".join(
        resp(b"XADD", stream, b"MAXLEN", b"~", b"%d" % maxlen, b"*",
             *(x for name, v in fields for x in (name, at(v, i))))
        for i in range(n)
    )  # fmt: skip


@st.composite
def _fields(draw):
    n = draw(st.integers(0, 40))
    names = draw(st.lists(st.binary(min_size=1, max_size=6), min_size=1, max_size=5))
    fields = [
        (
            name,
            draw(VALUES) if draw(st.booleans()) else draw(st.lists(VALUES, min_size=n, max_size=n)),
        )
        for name in names
    ]
    return n, fields


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(_fields(), st.integers(1, 9), st.binary(min_size=1, max_size=8))
def test_xadd_commands_equal_one_resp_per_entry(case, chunk, stream):
    n, fields = case
    parts = list(xadd_commands(stream, 100_000, fields, n, chunk=chunk))
    assert b"".join(parts) == _per_entry(stream, 100_000, fields, n)
    assert len(parts) == -(-n // chunk)  # ceil: every part holds at most `chunk` commands


@pytest.mark.unit
def test_xadd_commands_reject_a_short_column():
    with pytest.raises(ValueError, match="every per-entry field needs 3 values"):
        list(xadd_commands(b"s", 10, [(b"symbol", [b"A", b"B"])], 3))


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_fields())
def test_redis_stores_each_entry_as_sent(redis_url, case):
    n, fields = case
    r = redis.Redis.from_url(redis_url)
    r.delete("wire:s")
    ids = roundtrip(r, xadd_commands(b"wire:s", 100_000, fields, n, chunk=7), n)
    got = r.xrange("wire:s")
    assert [i for i, _ in got] == ids and len(got) == n
    for i, (_, f) in enumerate(got):
        want = {}
        for name, v in fields:  # a repeated field name: Redis keeps the last value
            want[name] = v if isinstance(v, bytes) else v[i]
        assert f == want


@st.composite
def _vectors(draw):
    n, d = draw(st.integers(0, 40)), draw(st.integers(1, 4))
    floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
    m = np.array(draw(st.lists(floats, min_size=n * d, max_size=n * d)), "<f8").reshape(n, d)
    syms = draw(st.lists(st.text(min_size=1, max_size=5), min_size=n, max_size=n))
    per_row = draw(st.booleans())
    ts = np.array(draw(st.lists(st.integers(0, 2**62), min_size=n, max_size=n)), np.int64)
    return syms, m, ts if per_row else draw(st.integers(0, 2**62))


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(_vectors(), st.integers(1, 9))
def test_vector_commands_equal_one_hset_per_symbol(case, chunk):
    """The chunked writer's bytes are one ``resp`` HSET per symbol, in order, at most
    ``chunk`` per part (any symbol text, NaN/inf/-0.0 values, one or per-row times)."""
    syms, m, ts = case
    parts = list(vector_commands("proj", "model_vector_x", "vector", syms, m, ts, chunk=chunk))
    times = [int(ts)] * len(syms) if np.ndim(ts) == 0 else [int(t) for t in ts]
    want = b"".join(
        resp(b"HSET", entity_key(s, "proj", VECTOR_JOIN_KEY), field_key("model_vector_x", "vector"),
             _vector_header(m.shape[1]) + row.tobytes(), ts_field("model_vector_x"),
             timestamp_bytes(t))
        for s, row, t in zip(syms, m, times, strict=True)
    )  # fmt: skip
    assert b"".join(parts) == want
    assert len(parts) == -(-len(syms) // chunk)
    assert vector_payload("proj", "model_vector_x", "vector", syms, m, ts) == want


@pytest.mark.unit
def test_vector_commands_check_their_arguments_before_the_first_part():
    with pytest.raises(ValueError, match="expected \\(2, d >= 1\\)"):
        vector_commands("p", "v", "vector", ["A", "B"], np.zeros((3, 2)), 0)
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        vector_commands("p", "v", "vector", ["A"], np.zeros((1, 2)), 0, chunk=0)
