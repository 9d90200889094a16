"""Feast over the real feature tables: apply, point-in-time historical join, push -> online read.

Runs against the embedded store (sqlite online, DuckDB offline) and the production layout
(real Redis online store, SQL registry in real PostgreSQL)."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tickml.features import FeatureConfig, compute_features, feature_names, with_pit_columns
from tickml.lake import FeatureTables
from tickml.simulator import SimConfig, simulate_day
from tickml.workdir import Workdir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DAYS = [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
CHECK = ["ticks_in_interval", "ret_t20", "spread_t60"]  # a few to compare by name


@pytest.fixture(scope="module")
def feature_tables(tmp_path_factory):
    work = tmp_path_factory.mktemp("work")
    tables = FeatureTables(work / "lake")
    cfg = FeatureConfig(leader=None)
    frames = []
    for day in DAYS:
        ticks = simulate_day(SimConfig(n_symbols=3, seed=5), day).ticks
        feats = with_pit_columns(compute_features(ticks, cfg))
        tables.write_day(feats, day)
        frames.append(feats)
    return work, pd.concat(frames, ignore_index=True)


@pytest.fixture()
def feast_env(feature_tables):
    work, feats = feature_tables
    return Workdir(work), feats


def _names():
    names = feature_names(FeatureConfig())
    missing = [c for c in CHECK if c not in names]
    assert not missing, f"expected features {missing} in the default config"
    return names


def _pit_expected(feats: pd.DataFrame, entity: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Plain as-of join: the latest row with event_timestamp <= t, within the 1-day TTL."""
    out = []
    for _, row in entity.iterrows():
        f = feats[(feats["symbol"] == row["symbol"]) & (feats["event_timestamp"] <= row["ts"])
                  & (feats["event_timestamp"] > row["ts"] - pd.Timedelta(days=1))]
        if f.empty:
            out.append({c: np.nan for c in cols})
        else:
            out.append(f.sort_values("event_timestamp").iloc[-1][cols].to_dict())
    return pd.DataFrame(out)


def _entity(feats: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = feats.sample(25, random_state=1)[["symbol", "event_timestamp"]].copy()
    # between grid points (must see the previous close), exactly on one, and before any data
    jitter = pd.to_timedelta(rng.integers(0, 59_000, len(rows)), unit="ms")
    rows["ts"] = rows["event_timestamp"] + jitter
    early = pd.DataFrame({"symbol": [rows["symbol"].iloc[0]],
                          "ts": [feats["event_timestamp"].min() - pd.Timedelta(minutes=5)]})
    return pd.concat([rows[["symbol", "ts"]], early], ignore_index=True)


def _historical(store, entity: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    edf = entity.rename(columns={"ts": "event_timestamp"}).copy()
    edf["row"] = np.arange(len(edf))
    got = store.get_historical_features(
        entity_df=edf, features=[f"tick_features:{c}" for c in cols]
    ).to_df()
    return got.sort_values("row").reset_index(drop=True)


def _push_and_read(store, feats: pd.DataFrame, cols: list[str]):
    from feast.data_source import PushMode

    last = feats.sort_values("event_timestamp").groupby("symbol").tail(1).reset_index(drop=True)
    push = last[["symbol", "event_timestamp", *feature_names(FeatureConfig()),
                 "row_event_ns", "last_tick_ns"]].copy()
    store.push("tick_features_push", push, to=PushMode.ONLINE)
    online = store.get_online_features(
        features=[f"tick_features:{c}" for c in cols],
        entity_rows=[{"symbol": s} for s in last["symbol"]],
    ).to_df()
    return last, online


def _check_store(store, feats, layout):
    from feature_repo.store import apply

    cols = list(dict.fromkeys(_names()[:12] + CHECK))
    applied = apply(store, layout)
    assert {"tick_features", "tick_features_v1", "tick_features_push"} <= set(applied)
    assert store.get_feature_service("tick_features_v1").name == "tick_features_v1"
    assert len(store.get_feature_view("tick_features").features) == len(_names()) + 2  # + PIT

    entity = _entity(feats)
    got = _historical(store, entity, cols)
    want = _pit_expected(feats, entity, cols).iloc[got["row"].to_numpy()]
    np.testing.assert_allclose(
        got[cols].to_numpy(float), want[cols].to_numpy(float), rtol=0, atol=0, equal_nan=True
    )
    # the row before any feature existed gets nulls, never a later value
    early = len(entity) - 1
    assert early not in set(got["row"]) or got.loc[got["row"] == early, cols].isna().all().all()
    assert len(got) >= len(entity) - 1
    # the served point-in-time columns prove it row by row
    pit = _historical(store, entity, ["row_event_ns", "last_tick_ns"])
    ts_ns = entity["ts"].astype("int64").to_numpy()[pit["row"].to_numpy()]
    served = pit["row_event_ns"].notna().to_numpy()
    assert served.sum() == len(entity) - 1  # all but the row before any data
    assert (pit["row_event_ns"].to_numpy()[served] <= ts_ns[served]).all()
    assert (pit["last_tick_ns"].to_numpy()[served] <= pit["row_event_ns"].to_numpy()[served]).all()

    last, online = _push_and_read(store, feats, cols)
    online = online.set_index("symbol").loc[last["symbol"]]
    np.testing.assert_allclose(
        online[cols].to_numpy(float), last[cols].to_numpy(float), rtol=0, atol=0, equal_nan=True
    )


def test_embedded_store_pit_join_and_online_round_trip(feast_env):
    from feature_repo.store import load_store

    layout, feats = feast_env
    _check_store(load_store("local", layout), feats, layout)


def test_production_store_redis_online_postgres_registry(feast_env, redis_url, pg_url):
    from feature_repo.store import load_store

    layout, feats = feast_env
    registry = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
    store = load_store("prod", layout, redis_url=redis_url, registry_url=registry)
    _check_store(store, feats, layout)
    import redis

    assert redis.Redis.from_url(redis_url).dbsize() == feats["symbol"].nunique()


@pytest.mark.unit
def test_views_follow_the_run_feature_config(tmp_path) -> None:
    """tick_features has the columns the run's feature section outputs (a family switched off
    is not asked for by the training set), default: every family."""
    from feature_repo.store import definitions

    def view_cols(cfg: FeatureConfig | None) -> list[str]:
        (view,) = [o for o in definitions(Workdir(tmp_path), cfg) if o.name == "tick_features"]
        return [f.name for f in view.features]

    full = view_cols(None)
    assert full[: len(feature_names())] == feature_names() and "mdev_z_t180" in full
    fams = tuple(f for f in FeatureConfig().families if f != "normalized")
    off = view_cols(FeatureConfig(families=fams))
    assert off[: len(feature_names(FeatureConfig(families=fams)))] == feature_names(
        FeatureConfig(families=fams)
    )
    assert "mdev_z_t180" not in off and len(off) == len(full) - 16
