"""End to end: one real equity day through the live path (real Redis, PostgreSQL, processes).

IBM (quotes + trades) and SPY (trades, the cross-asset leader) on 2013-10-08, replayed at full
speed in lockstep through feed -> Redis Streams bus (2 shards) -> materializer processes ->
Feast's Redis online store -> scorer process (a LightGBM champion) -> signals, and the bus ->
tick writer -> PostgreSQL tick store. Checked against the batch path on the same ticks:

- every tick is in the tick store exactly once;
- the rows the materializers pushed online (their offline log, and Feast's online store for the
  last boundary) equal ``compute_features`` on the same ticks, bit for bit;
- every scored signal carries the probabilities the offline model gives for that row.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
import redis

from live.config import LiveConfig
from live.materializer import vector_columns
from live.online import read_vectors
from live.replay import ReplaySpec, replay
from tickml.features import FeatureConfig, compute_features, feature_names
from tickml.labels import CLASSES_3, CLASSES_5, make_labels
from tickml.models.registry import ModelRegistry
from tickml.models.train import TrainConfig, predict_proba, train_model
from tickml.readers.equity import read_equity_day

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAY = dt.date(2013, 10, 8)
SYMBOLS = ["IBM", "SPY"]


@pytest.fixture(scope="module")
def ticks(equity_root: Path) -> pd.DataFrame:
    t = read_equity_day(equity_root, DAY, symbols=SYMBOLS).ticks
    assert len(t) > 400_000
    return t


@pytest.fixture(scope="module")
def batch(ticks: pd.DataFrame) -> pd.DataFrame:
    return compute_features(ticks, FeatureConfig())


def train_champion(root: Path, ticks: pd.DataFrame, batch: pd.DataFrame) -> ModelRegistry:
    """A small real champion (trained on this day: the test checks plumbing, not edge)."""
    labels = make_labels(ticks, batch[["symbol", "event_timestamp"]])
    ds = batch.merge(labels, on=["symbol", "event_timestamp"])
    feats = list(dict.fromkeys(feature_names(FeatureConfig())[:40] + ["spread_bps", "ret_b1"]))
    cfg = TrainConfig(n_estimators=40, num_leaves=15, min_child_samples=10)
    half = len(ds) // 2
    models = {
        "short": train_model(
            ds[feats][:half],
            ds["label_short"][:half],
            ds[feats][half:],
            ds["label_short"][half:],
            CLASSES_5,
            cfg,
            feats,
        ),
        "long": train_model(
            ds[feats][:half],
            ds["label_long"][:half],
            ds[feats][half:],
            ds["label_long"][half:],
            CLASSES_3,
            cfg,
            feats,
        ),
    }
    reg = ModelRegistry(root)
    reg.set_champion(reg.save(models))
    return reg


def test_real_day_through_live_path(
    ticks: pd.DataFrame,
    batch: pd.DataFrame,
    equity_root: Path,
    redis_url: str,
    fresh_pg_url: str,
    tmp_path: Path,
) -> None:
    reg = train_champion(tmp_path / "registry", ticks, batch)
    cfg = LiveConfig(redis_url=redis_url, pg_url=fresh_pg_url, shards=2)
    out = replay(
        cfg,
        ReplaySpec(
            source="equity-ticks",
            ticks=str(equity_root),
            day=DAY.isoformat(),
            symbols=tuple(SYMBOLS),
            registry=str(tmp_path / "registry"),
            workdir=str(tmp_path),
        ),
        timeout_s=400,
    )
    assert not out["restarts"], out

    # 1. the tick store holds every tick exactly once
    with psycopg.connect(fresh_pg_url) as conn:
        stored = conn.execute("SELECT symbol, seq, count(*) FROM ticks GROUP BY 1, 2").fetchall()
    assert len(stored) == len(ticks)
    assert max(c for _, _, c in stored) == 1
    assert {(s, q) for s, q, _ in stored} == set(zip(ticks["symbol"], ticks["seq"], strict=True))

    # 2. online rows == batch rows (the materializers' offline log of what they pushed)
    logged = pd.concat(
        pd.read_parquet(p) for p in (tmp_path / "lake" / "online_log").rglob("*.parquet")
    )
    names = feature_names(FeatureConfig())
    key = ["symbol", "event_timestamp"]
    live = logged.sort_values(key).reset_index(drop=True)
    want = batch.sort_values(key).reset_index(drop=True)
    assert len(live) == len(want) == 780
    pd.testing.assert_frame_equal(live[key + names], want[key + names], check_exact=True)
    assert (live["last_tick_ts"] == want["last_tick_ts"]).all()

    # ... and Feast's Redis online store holds the last boundary's vectors
    client = redis.Redis.from_url(redis_url)
    vec, ev = read_vectors(client, "tickml", "model_vector", "vector", SYMBOLS)
    last = want.groupby("symbol").tail(1).set_index("symbol").loc[SYMBOLS]
    assert (ev == last["event_timestamp"].astype("int64").to_numpy()).all()
    np.testing.assert_array_equal(vec[:, : len(names)], last[names].to_numpy())
    assert vector_columns(FeatureConfig())[len(names) :] == ["mid", "spread"]

    # 3. signals carry the offline model's scores for those rows
    with psycopg.connect(fresh_pg_url) as conn:
        sig = pd.DataFrame(
            conn.execute(
                "SELECT symbol, event_timestamp, feature_ts, p_short, p_long, score, decision, "
                "gate, model_version FROM live_signals"
            ).fetchall(),
            columns=[
                "symbol",
                "event_timestamp",
                "feature_ts",
                "p_short",
                "p_long",
                "score",
                "decision",
                "gate",
                "model_version",
            ],
        )
    assert len(sig) == 780 and out["boundaries"] == 390
    assert (sig["feature_ts"] == sig["event_timestamp"]).all()  # lockstep: never stale
    champ = reg.load()
    assert set(sig["model_version"]) == {champ.version}
    rows = want.merge(sig, on=key)
    assert len(rows) == 780
    np.testing.assert_array_equal(np.vstack(rows["p_short"]), predict_proba(champ.short, rows))
    np.testing.assert_array_equal(np.vstack(rows["p_long"]), predict_proba(champ.long, rows))
    assert out["close_to_signal_ms"]["p50"] is not None
