"""Scoring worker on real Redis + PostgreSQL with real LightGBM champions.

Vectors are written with the materializer's fast writer; the scorer reads the universe, runs
the champion, applies the shared decision function and publishes. Checked: scores equal the
offline model's, stale/missing/future vectors are never scored, a promotion is picked up
without a restart (hot reload), a champion with a direction model scores and decides with its
prediction (equal to the offline ``predict_value``), no champion means the fallback gate, the
decision state and the volatility state survive a restart, each boundary commits its record for
the shadow ledger, and signals land in Redis and PostgreSQL.
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
from live.layout import VECTOR_FEATURE, layout_for
from live.ledger_records import Rows
from live.online import write_vectors
from live.scorer import Scorer
from tickml.decision import DecisionConfig, DecisionState, decide
from tickml.features import FeatureConfig, compute_features, feature_names
from tickml.labels import CLASSES_3, CLASSES_5, make_labels
from tickml.market import EPOCH
from tickml.models.registry import ModelRegistry
from tickml.models.train import (
    TrainConfig,
    predict_proba,
    predict_value,
    train_model,
    train_regressor,
)
from tickml.simulator import SimConfig, simulate_day
from tickml.volatility import RecentVol

pytestmark = pytest.mark.integration

SIM = SimConfig(n_symbols=5, signal_strength=1.0)
FC = FeatureConfig(leader=SIM.leader_name)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    ticks = simulate_day(SIM, dt.date(2024, 3, 5)).ticks
    f = compute_features(ticks, FC)
    ds = f.merge(
        make_labels(ticks, f[["symbol", "event_timestamp"]]), on=["symbol", "event_timestamp"]
    )
    book = ticks.groupby("symbol")[["bid", "ask", "bid_size", "ask_size"]].last()
    ds["mid"] = ds["symbol"].map((book["bid"] + book["ask"]) / 2)
    ds["spread"] = ds["symbol"].map(book["ask"] - book["bid"])
    ds["bid_size"] = ds["symbol"].map(book["bid_size"])
    ds["ask_size"] = ds["symbol"].map(book["ask_size"])
    return ds


def _models(ds: pd.DataFrame, seed: int) -> dict:
    feats = feature_names(FC)[:30]
    cfg = TrainConfig(n_estimators=20, num_leaves=7, seed=seed)
    h = len(ds) // 2
    return {
        n: train_model(
            ds[feats][:h], ds[f"label_{n}"][:h], ds[feats][h:], ds[f"label_{n}"][h:], c, cfg, feats
        )
        for n, c in (("short", CLASSES_5), ("long", CLASSES_3))
    }


def _with_direction(ds: pd.DataFrame, seed: int) -> dict:
    """The two classifiers and a direction model (a regression of the vol-normalized forward
    return on other features, so the layout grows)."""
    models = _models(ds, seed)
    feats = feature_names(FC)[20:40]
    y = ds["fwd_return_short"] / ds["fwd_return_short"].std()
    h = len(ds) // 2
    cfg = TrainConfig(n_estimators=20, num_leaves=7, seed=seed)
    models["direction"] = train_regressor(ds[feats][:h], y[:h], ds[feats][h:], y[h:], cfg, feats)
    return models


def _write(
    r: redis.Redis, frame: pd.DataFrame, ts_ns: np.ndarray | int, reg: ModelRegistry
) -> None:
    """The vectors a materializer writes for the registry's champion (its sized layout)."""
    champ = reg.champion()
    lay = layout_for(reg.manifest(champ) if champ else None)
    write_vectors(
        r,
        "tickml",
        lay.view,
        VECTOR_FEATURE,
        list(frame["symbol"]),
        frame[list(lay.columns)].to_numpy(np.float64),
        ts_ns,
    )
    r.sadd("tickml:universe", *frame["symbol"])


def test_scores_gates_hot_reload_and_restart(
    rows: pd.DataFrame, redis_url: str, fresh_pg_url: str, tmp_path: Path
) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    r = redis.Redis.from_url(redis_url)
    cfg = LiveConfig(redis_url=redis_url, pg_url=fresh_pg_url, shards=1)

    # no champion: the "last move persists" fallback decides, nothing is model-scored
    times = sorted(rows["event_timestamp"].unique())
    b0 = pd.Timestamp(times[200])
    snap = rows[rows["event_timestamp"] == b0].reset_index(drop=True)
    _write(r, snap, b0.value, reg)
    scorer = Scorer(cfg, reg.root, feature_config=FC, client=r)
    scorer.warm_up()  # run_scorer's start-up step, without a champion
    res = scorer.score(b0.value)
    assert res.model_version is None
    assert "min_confidence" not in set(res.decisions.gate_names)  # no model was consulted
    assert {"fallback", "traded"} & set(res.decisions.gate_names)
    assert np.isnan(res.p_short).all()

    # a champion appears: picked up at the next boundary, scores == offline model's
    v1 = reg.save(_models(rows, 1))
    reg.set_champion(v1)
    b1 = pd.Timestamp(times[201])
    snap = rows[rows["event_timestamp"] == b1].reset_index(drop=True)
    stale = snap.iloc[:1]  # one symbol keeps an old vector: never scored
    _write(r, snap.iloc[1:], b1.value, reg)
    _write(r, stale, b1.value - 10 * 60 * 10**9, reg)
    res = scorer.score(b1.value)
    assert res.model_version == v1
    assert scorer.models.runtime == "tl2cgen"  # the compiled runtime built at promotion
    got = dict(zip(res.symbols, res.p_short, strict=True))
    want = predict_proba(reg.load(v1).short, snap.iloc[1:])
    for s, p in zip(snap["symbol"].iloc[1:], want, strict=True):
        np.testing.assert_array_equal(got[s], p)
    k = res.symbols.index(stale["symbol"].iloc[0])
    assert res.decisions.gate_names[k] == "stale" and np.isnan(res.p_short[k]).all()

    # a vector from the future (a replay running ahead) is not scored at an earlier boundary
    _write(r, snap.iloc[1:2], b1.value + 60 * 10**9, reg)
    res_f = scorer.score(b1.value + 1000)  # timestamptz keeps microseconds
    k = res_f.symbols.index(snap["symbol"].iloc[1])
    assert np.isnan(res_f.p_short[k]).all() and res_f.decisions.gate_names[k] == "stale"

    # promotion while running: hot reload, no restart
    v2 = reg.save(_models(rows, 2))
    reg.set_champion(v2)
    b2 = pd.Timestamp(times[202])
    snap2 = rows[rows["event_timestamp"] == b2].reset_index(drop=True)
    _write(r, snap2, b2.value, reg)
    res2 = scorer.score(b2.value)
    assert res2.model_version == v2
    np.testing.assert_array_equal(
        np.vstack([res2.p_short[res2.symbols.index(s)] for s in snap2["symbol"]]),
        predict_proba(reg.load(v2).short, snap2),
    )

    assert np.isnan(res2.direction).all()  # no direction model: no direction, as before
    assert "trap" not in set(res2.decisions.gate_names)

    # a champion with a direction model: computed on the same vectors (its features are in the
    # layout), equal to the offline prediction, passed to the decision, stored with the signal
    v3 = reg.save(_with_direction(rows, 3))
    reg.set_champion(v3)
    assert set(reg.load(v3).direction.features) - set(reg.load(v3).short.features)
    assert set(reg.load(v3).direction.features) <= set(layout_for(reg.manifest(v3)).columns)
    b3 = pd.Timestamp(times[203])
    snap3 = rows[rows["event_timestamp"] == b3].reset_index(drop=True)
    _write(r, snap3, b3.value, reg)
    before = DecisionState.from_json(scorer.state.to_json())
    vol_before = RecentVol.from_bytes(scorer.vol.to_bytes())
    res3 = scorer.score(b3.value)
    assert res3.model_version == v3 and scorer.models.runtime == "tl2cgen"
    champ3 = reg.load(v3)
    order = [res3.symbols.index(s) for s in snap3["symbol"]]
    np.testing.assert_array_equal(res3.direction[order], predict_value(champ3.direction, snap3))
    np.testing.assert_array_equal(res3.decisions.score, res3.direction)  # the score IS it
    # the decision is decide() with that direction (the backtest's call, same state and inputs)
    rvol = vol_before.step((FC.market.local_day(b3.value) - EPOCH).days, res3.symbols,
                           snap3.set_index("symbol").loc[res3.symbols, "ret_b1"].to_numpy(),
                           np.ones(len(res3.symbols), bool))  # fmt: skip
    want = decide(DecisionConfig(), before, b3.value, res3.symbols, res3.p_short, res3.p_long,
                  snap3.set_index("symbol").loc[res3.symbols, "ret_b1"].to_numpy(), rvol,
                  np.zeros(len(res3.symbols)), direction=res3.direction)  # fmt: skip
    assert res3.decisions.gate_names.tolist() == want.gate_names.tolist()
    assert res3.decisions.decision.tolist() == want.decision.tolist()
    small = np.abs(res3.direction) < DecisionConfig().min_direction
    assert (res3.decisions.gate_names[small] == "min_confidence").all()
    # stored with the signal: PostgreSQL live_signals.direction, the Redis stream's field
    with psycopg.connect(fresh_pg_url) as conn:
        stored = dict(conn.execute(
            "SELECT symbol, direction FROM live_signals WHERE model_version = %s", (v3,)
        ).fetchall())  # fmt: skip
    assert [stored[s] for s in res3.symbols] == res3.direction.tolist()
    acted = [f for _, f in r.xrange("tickml:signals") if f[b"model_version"] == v3.encode()]
    assert len(acted) == int((res3.decisions.decision != 0).sum())
    for f in acted:
        assert float(f[b"direction"]) == res3.direction[res3.symbols.index(f[b"symbol"].decode())]

    # the start-up warm-up with every model leaves no trace: state, volatility, streams
    state, vol = scorer.state.to_json(), scorer.vol.to_bytes()
    streams = r.xlen("tickml:signals"), r.xlen("tickml:decisions")
    scorer.warm_up()
    assert (scorer.state.to_json(), scorer.vol.to_bytes()) == (state, vol)
    assert (r.xlen("tickml:signals"), r.xlen("tickml:decisions")) == streams

    # restart: the decision state (cooldowns, daily counts) and the recent-volatility state
    # come back; every boundary committed one record for the shadow ledger, with its fresh rows
    state, vol = scorer.state.to_json(), scorer.vol.to_bytes()
    scorer.signals.close()
    again = Scorer(cfg, reg.root, feature_config=FC, client=r)
    assert again.state.to_json() == state and again.vol.to_bytes() == vol
    records = [Rows.decode(f) for _, f in r.xrange("tickml:decisions")]
    assert [x.b for x in records] == [b0.value, b1.value, b1.value + 1000, b2.value, b3.value]
    assert records[1].symbols == sorted(snap["symbol"].iloc[1:])  # the stale one is left out
    assert records[3].decision.tolist() == res2.decisions.decision.tolist()
    np.testing.assert_array_equal(records[3].f["mid"], snap2.sort_values("symbol")["mid"])
    # the shadow ledger's score (the book's strength) is the direction with a direction model
    assert records[4].symbols == res3.symbols  # every row fresh
    np.testing.assert_array_equal(records[4].f["score"], res3.direction)
    assert int(r.get("tickml:scorer:last")) == b3.value

    # signals in PostgreSQL (every scored row) and on the Redis stream (actionable ones)
    with psycopg.connect(fresh_pg_url) as conn:
        n, versions = conn.execute(
            "SELECT count(*), array_agg(DISTINCT model_version) FROM live_signals"
        ).fetchone()
    assert n == 4 * len(snap) + len(snap3) and set(versions) == {"", v1, v2, v3}
    acts = int(sum((x.decisions.decision != 0).sum() for x in (res, res_f, res2, res3)))
    assert r.xlen("tickml:signals") >= acts


def test_a_version_trained_under_another_feature_configuration_is_refused(
    rows: pd.DataFrame, redis_url: str, tmp_path: Path
) -> None:
    """A champion records the feature configuration its features were computed with; a scorer
    whose features come from another one (same names, other values: here another fracdiff
    order) refuses it, keeps the current version, says why and counts it. The family switches
    do not count (they only add or remove names); a version without a record loads."""
    from prometheus_client import REGISTRY

    reg = ModelRegistry(tmp_path / "reg")
    r = redis.Redis.from_url(redis_url)
    cfg = LiveConfig(redis_url=redis_url, pg_url=None, shards=1)
    b0 = pd.Timestamp(sorted(rows["event_timestamp"].unique())[200])
    snap = rows[rows["event_timestamp"] == b0].reset_index(drop=True)
    v1 = reg.save(_models(rows, 1), feature_config=FC)
    assert reg.manifest(v1)["feature_config_digest"] == FC.value_digest()
    assert reg.manifest(v1)["feature_config"]["fracdiff_d"] == FC.fracdiff_d
    reg.set_champion(v1)
    _write(r, snap, b0.value, reg)
    fewer = FC.model_copy(update={"families": FC.families[:-1]})
    assert fewer.value_digest() == FC.value_digest()  # switches only: the same values
    assert Scorer(cfg, reg.root, feature_config=fewer, client=r).score(b0.value).model_version == v1

    other = FC.model_copy(update={"fracdiff_d": FC.fracdiff_d + 0.1})
    assert other.value_digest() != FC.value_digest()
    key = {"worker": "scorer", "reason": "feature_config"}
    before = REGISTRY.get_sample_value("tickml_model_versions_refused_total", key) or 0
    scorer = Scorer(cfg, reg.root, feature_config=other, client=r, index=0)
    res = scorer.score(b0.value)
    assert res.model_version is None  # refused: nothing model-scored, the fallback decides
    assert np.isnan(res.p_short).all()
    assert REGISTRY.get_sample_value("tickml_model_versions_refused_total", key) == before + 1

    v2 = reg.save(_models(rows, 2))  # no record (saved before the digest existed): loads
    assert reg.manifest(v2)["feature_config_digest"] is None
    reg.set_champion(v2)
    _write(r, snap, b0.value + 60 * 10**9, reg)
    assert scorer.score(b0.value + 60 * 10**9).model_version == v2
    r.close()
