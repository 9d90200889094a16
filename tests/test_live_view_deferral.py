"""The materializer writes Feast's full ``tick_features`` rows and its checkpoints off the close
-> signals path: after every scorer finished the boundary, or after ``view_delay_s``; the rows
always before the next boundary and before a checkpoint; the rows are the same ones, only
later."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import redis

from live.bus import encode_ticks
from live.config import LiveConfig
from live.consume import BusConsumer
from live.materializer import ShardMaterializer
from live.online import read_rows

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

T0 = pd.Timestamp("2024-03-05 15:00:30", tz="UTC").value
MIN = 60 * 10**9


def _ticks(r: redis.Redis, cfg: LiveConfig, t_ns: int) -> None:
    syms = np.array(["AAA", "BBB"], dtype=object)
    px = np.array([[10.0, 10.1, 1.0, 1.0, np.nan, 0.0], [20.0, 20.2, 2.0, 1.0, np.nan, 0.0]])
    ts = np.array([t_ns, t_ns + 10**9])
    seq = np.array([t_ns // 10**9, t_ns // 10**9 + 1])
    r.xadd(cfg.stream(0), encode_ticks(syms, np.arange(2), ts, seq, px, time.time_ns(), "test"))


def _clock(r: redis.Redis, cfg: LiveConfig, t_ns: int) -> None:
    r.xadd(cfg.stream(0), {"k": "c", "t": str(t_ns), "wall": str(time.time_ns())})


def _drain(mat: ShardMaterializer, consumer: BusConsumer) -> None:
    for e in consumer.read():
        mat.process(e, consumer)


def test_tick_features_rows_wait_for_the_scorer_or_the_delay(redis_url, tmp_path):
    r = redis.Redis.from_url(redis_url)
    cfg = LiveConfig(redis_url=redis_url, shards=1, view_delay_s=30.0, checkpoint_every=100)
    consumer = BusConsumer(r, cfg, "materializer", "m0", [0])
    mat = ShardMaterializer(cfg, 0, r, log_dir=tmp_path)
    b1 = pd.Timestamp("2024-03-05 15:01", tz="UTC").value
    _ticks(r, cfg, T0)
    _clock(r, cfg, b1)
    _drain(mat, consumer)
    assert int(r.xrange(cfg.key("boundaries"))[-1][1][b"b"]) == b1  # announced at once
    rows = read_rows(r, mat.layout, ["AAA", "BBB"])
    assert (rows.event_ts_ns == -1).all()  # ... the full view waits for the scorer
    mat.settle(consumer)
    assert (read_rows(r, mat.layout, ["AAA"]).event_ts_ns == -1).all()
    assert not r.hgetall(mat.ckpt_key)  # nor does the checkpoint come before the scorer
    mat.want_checkpoint()
    mat.settle(consumer)
    assert not r.hgetall(mat.ckpt_key)
    r.set(cfg.key("scorer", "last"), b1)  # the scorer finished b1
    mat.settle(consumer)
    assert int(r.hget(mat.ckpt_key, "last_done")) == b1
    rows = read_rows(r, mat.layout, ["AAA", "BBB"])
    assert rows.event_ts_ns.tolist() == [b1, b1]
    want = mat.engine.snapshot(b1).set_index("symbol").loc[["AAA", "BBB"], mat.names]
    got = rows.values[:, : len(mat.names)]
    assert np.isfinite(got).sum() > 20  # the same rows as the snapshot, bit for bit
    np.testing.assert_array_equal(got, want.to_numpy(np.float64))

    # the next boundary first writes any pending rows (never out of order, never lost)
    b2, b3 = b1 + MIN, b1 + 2 * MIN
    _ticks(r, cfg, b1 + 5 * 10**9)
    _clock(r, cfg, b2)
    _drain(mat, consumer)
    assert read_rows(r, mat.layout, ["AAA"]).event_ts_ns.tolist() == [b1]
    _ticks(r, cfg, b2 + 5 * 10**9)
    _clock(r, cfg, b3)
    _drain(mat, consumer)  # b3's start wrote b2's rows
    assert read_rows(r, mat.layout, ["AAA"]).event_ts_ns.tolist() == [b2]

    r.set(cfg.key("scorer", "last"), b3)
    mat.settle(consumer)  # nothing waits any more
    # the delay bounds the wait when no scorer runs
    mat.cfg = cfg.model_copy(update={"view_delay_s": 0.2})
    b4 = b3 + MIN
    _ticks(r, cfg, b3 + 5 * 10**9)
    _clock(r, cfg, b4)
    _drain(mat, consumer)
    assert read_rows(r, mat.layout, ["AAA"]).event_ts_ns.tolist() == [b3]
    mat.settle(consumer)
    assert read_rows(r, mat.layout, ["AAA"]).event_ts_ns.tolist() == [b3]
    time.sleep(0.3)
    mat.settle(consumer)
    assert read_rows(r, mat.layout, ["AAA"]).event_ts_ns.tolist() == [b4]
    r.close()
