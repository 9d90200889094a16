"""A promotion in the middle of a replay: materializer and scorer (real loops, real Redis, real
registry with compiled runtimes) switch layouts without ever scoring a boundary with a layout
that does not match the loaded models.

Simulated ticks go through the bus to ``run_materializer`` (with the registry) and
``run_scorer`` in threads. Half-way, v2 (other features, so another layout) becomes champion.
Checked: the materializer writes v2's layout before any boundary is scored with v2 (the first
v2 boundary is announced with v2's layout); every boundary's probabilities equal the offline
model of the version it names, on the batch features of that boundary (so the vector held
exactly that version's columns); v1's layout is no longer written once the scorer switched.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from live.bus import TickBus
from live.config import LiveConfig
from live.feeds import ReplayFeed
from live.layout import VECTOR_FEATURE, layout_for
from live.materializer import run_materializer
from live.online import read_vectors
from live.scorer import Scored, run_scorer
from tickml.features import FeatureConfig, compute_features, feature_names
from tickml.labels import CLASSES_3, CLASSES_5, make_labels
from tickml.models.registry import ModelRegistry
from tickml.models.train import TrainConfig, predict_proba, train_model
from tickml.simulator import SimConfig, simulate_day

pytestmark = pytest.mark.integration

SIM = SimConfig(n_symbols=4, signal_strength=1.0, session_close=dt.time(10, 30))
FC = FeatureConfig(leader=SIM.leader_name)
NAMES = feature_names(FC)


def _models(day: dt.date, feats: list[str], seed: int) -> dict:
    t = simulate_day(SIM, day).ticks
    f = compute_features(t, FC)
    ds = f.merge(make_labels(t, f[["symbol", "event_timestamp"]]), on=["symbol", "event_timestamp"])
    cfg = TrainConfig(n_estimators=15, num_leaves=7, seed=seed, min_child_samples=5)
    h = len(ds) // 2
    return {
        n: train_model(ds[feats][:h], ds[f"label_{n}"][:h], ds[feats][h:], ds[f"label_{n}"][h:],
                       c, cfg, feats)
        for n, c in (("short", CLASSES_5), ("long", CLASSES_3))
    }


def _wait(cond, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("follows_registry", [True, False], ids=["registry", "declared"])
def test_promotion_mid_replay_never_scores_a_mismatched_layout(
    redis_url: str, tmp_path: Path, follows_registry: bool
) -> None:
    """``declared``: materializers started without the registry (they write what scorers
    declare); the scorer asks for v2's layout first and switches once it was written."""
    reg = ModelRegistry(tmp_path / "reg")
    reg.set_champion(reg.save(_models(dt.date(2024, 3, 4), NAMES[:30], 1)))
    v1 = reg.champion()
    v2 = reg.save(_models(dt.date(2024, 3, 4), NAMES[40:65], 2))
    lay1, lay2 = layout_for(reg.manifest(v1)), layout_for(reg.manifest(v2))
    assert lay1.view != lay2.view

    day = dt.date(2024, 3, 5)
    ticks = simulate_day(SIM, day).ticks
    batch = compute_features(ticks, FC).set_index(["event_timestamp", "symbol"]).sort_index()
    cfg = LiveConfig(redis_url=redis_url, pg_url=None, shards=2, online_log_dir=str(tmp_path))
    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    bus = TickBus(r, cfg, leader=FC.leader)
    events = list(ReplayFeed(ticks, FC))
    clocks = [i for i, e in enumerate(events) if not hasattr(e, "frame")]
    half = clocks[len(clocks) // 2]

    scored: list[Scored] = []
    stop = threading.Event()
    workers = [
        threading.Thread(target=run_materializer, args=(cfg, [0, 1], stop, FC),
                         kwargs={"registry": reg.root if follows_registry else None},
                         daemon=True),
        threading.Thread(target=run_scorer, args=(cfg, reg.root, stop, None, FC, scored.append),
                         daemon=True),
    ]
    for w in workers:
        w.start()

    def scored_until(t: int) -> bool:
        v = r.get(cfg.key("scorer", "last"))
        return v is not None and int(v) >= t

    def publish(evs: list) -> int:
        """In lockstep (a vector is overwritten at the next boundary: a materializer running
        ahead makes the scorer see the future, which it never scores)."""
        last = -1
        for e in evs:
            if hasattr(e, "frame"):
                bus.publish(e.frame)
            else:
                bus.publish_clock(e.t_ns, e.wall_ns)
                last = e.t_ns
                _wait(lambda t=last: scored_until(t) or _empty(t), "a boundary")
        return last

    def _empty(t: int) -> bool:  # boundaries without rows are not scored
        done = r.hmget(cfg.key("progress"), ["done:0", "done:1", "rows:0", "rows:1"])
        d = [int(v) if v else -1 for v in done]
        return min(d[:2]) >= t and max(d[2:]) < t

    try:  # the scorer declared its layout and the materializer is up before the first tick
        _wait(lambda: all(r.hmget(cfg.key("ready"), ["scorer", "mat:0", "mat:1"])), "workers")
        t_half = publish(events[: half + 1])
        _wait(lambda: scored_until(t_half), "the first half")
        reg.set_champion(v2)  # mid-replay promotion (builds v2's runtime first)
        t_end = publish(events[half + 1 :])
        _wait(lambda: scored_until(t_end), "the second half")
    finally:
        stop.set()
        for w in workers:
            w.join(30)

    ann = pd.DataFrame(
        [{k.decode(): v.decode() for k, v in f.items()}
         for _, f in r.xrange(cfg.key("boundaries"))]
    )
    ann["b"] = ann["b"].astype("int64")
    versions = [s.model_version for s in scored]
    k = versions.index(v2)
    assert set(versions[:k]) == {v1} and set(versions[k:]) == {v2} and k > 0
    first_v2 = scored[k].boundary_ns
    # every shard wrote v2's layout at the first v2 boundary ...
    at = ann[ann["b"] == first_v2]
    assert at["layouts"].str.contains(lay2.view).all()
    if follows_registry:
        # ... and it is the first boundary all shards announced with v2 (no delay either)
        assert (at["champion"] == v2).all()
        all_v2 = ann.groupby("b")["champion"].apply(lambda c: bool((c == v2).all()))
        assert all_v2[all_v2].index.min() == first_v2
    else:  # ... which they did because the scorer asked (no champion in the announcements)
        assert "champion" not in ann.columns
        before = ann[ann["b"] < first_v2]
        assert not before.groupby("b")["layouts"].apply(
            lambda c: bool(c.str.contains(lay2.view).all())).any()

    # each boundary: the named version's offline scores on the batch rows of that boundary
    for res in scored:
        m = reg.load(res.model_version)
        rows = batch.loc[pd.Timestamp(res.boundary_ns, tz="UTC")].loc[res.symbols]
        np.testing.assert_array_equal(res.p_short, predict_proba(m.short, rows))
        np.testing.assert_array_equal(res.p_long, predict_proba(m.long, rows))

    # v1's layout stopped being written after the switch (the scorer declared v2's)
    syms = sorted(ticks["symbol"].unique())
    _, ev1 = read_vectors(r, "tickml", lay1.view, VECTOR_FEATURE, syms)
    _, ev2 = read_vectors(r, "tickml", lay2.view, VECTOR_FEATURE, syms)
    assert ev2.max() == scored[-1].boundary_ns
    assert first_v2 <= ev1.max() < scored[-1].boundary_ns
