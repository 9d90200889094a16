"""End to end: one real equity day through the live path (real Redis, PostgreSQL, processes).

IBM (quotes + trades) and SPY (trades, the cross-asset leader) on 2013-10-08, replayed at full
speed in lockstep through feed -> Redis Streams bus (2 shards) -> materializer processes ->
Feast's Redis online store -> scorer process (a LightGBM champion) -> signals, and the bus ->
tick writer -> PostgreSQL tick store. Checked against the batch path on the same ticks:

- every tick is in the tick store exactly once;
- the rows the materializers pushed online (their offline log, and Feast's online store for the
  last boundary) equal ``compute_features`` on the same ticks, bit for bit;
- every scored signal carries the probabilities the offline model gives for that row;
- the nightly ``online_consistency`` asset on that day reports 0 mismatches (features and
  scores) and the drift report links to it;
- a real Prometheus scraping every worker and the reports exporter evaluates every recording
  rule, every alert and every dashboard query of ``ops/`` with data (tests/_prom.py).

The replay runs once per module (``replayed``); the monitoring runs while its workers still
serve their metrics (``replay(..., on_drained=...)``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psycopg
import pytest
import redis

from live.config import LiveConfig
from live.layout import layout_for
from live.online import read_vectors
from live.replay import ReplaySpec, replay
from tickml.features import FeatureConfig, compute_features, feature_names
from tickml.labels import CLASSES_3, CLASSES_5, make_labels
from tickml.lake import FeatureTables, TickLake
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


@dataclass
class Replayed:
    """The replayed day and what the operations side saw while its workers still ran."""

    root: Path
    pg_url: str
    redis_url: str
    out: dict
    reg: ModelRegistry
    consistency: dict = field(default_factory=dict)  # check passed, report
    prom: dict = field(default_factory=dict)  # query -> result, rules, scrape text
    skipped_prometheus: str | None = None


def _operations(r: Replayed, base: str | None, ports: dict[str, int]) -> None:
    """While the workers still run: the nightly monitoring of the day (online_consistency,
    drift_report against the day before), then (with a Prometheus) every rule and dashboard
    query through its HTTP API."""
    import _prom
    import dagster as dg

    t0 = time.perf_counter()

    from assets.consistency import online_consistency
    from assets.drift import drift_report
    from assets.resources import (
        LakeResource,
        ModelRegistryResource,
        PipelineConfigResource,
        TickStoreResource,
    )
    from orchestration.grafana import DASHBOARDS, panel_queries, render

    res = dg.materialize(
        [online_consistency, drift_report],
        partition_key=DAY.isoformat(),
        resources={
            "lake": LakeResource(root=str(r.root / "lake")),
            "pipeline": PipelineConfigResource(),
            "registry": ModelRegistryResource(root=str(r.root / "registry")),
            "tick_store": TickStoreResource(url=r.pg_url),
        },
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"drift_report": {"config": {"evidently_max_columns": 10}}}},
    )
    checks = {c.check_name: c.passed for c in res.get_asset_check_evaluations()}
    r.consistency = {
        "passed": checks["online_matches_batch"],
        "drift": json.loads((r.root / "reports" / "drift" / f"{DAY}.json").read_text()),
        "report": json.loads((r.root / "reports" / "consistency" / f"{DAY}.json").read_text()),
    }
    if base is None:
        return
    # the exporter serves the new report at the next scrape; rules see it a second later
    _prom.wait_for(base, "tickml_consistency_check_passed")
    time.sleep(3)
    for name in DASHBOARDS:
        for title, kind, q in panel_queries(json.loads(render(name))):
            if kind == "promql":
                r.prom.setdefault("panels", {})[(title, q)] = _prom.query(
                    base, _prom.grafana_promql(q)
                )
    rules = _prom.rules(base)
    r.prom["rules"] = rules
    for rule in rules:
        if rule["type"] == "recording":
            r.prom.setdefault("recorded", {})[rule["name"]] = _prom.query(base, rule["query"])
        else:
            sig, op, thr = _prom.split_alert(rule["query"])
            r.prom.setdefault("alerts", {})[rule["name"]] = (
                _prom.query(base, sig),
                _prom.query(base, f"{sig} {op} bool {thr}"),
            )
    r.prom["seconds"] = time.perf_counter() - t0  # what the monitoring added to the replay
    r.prom["scrape"] = {
        n: httpx.get(f"http://127.0.0.1:{ports[n]}/metrics", timeout=10).text
        for n in ("scorer", "materializer-0", "writer")
    }


@pytest.fixture(scope="module")
def replayed(
    ticks: pd.DataFrame,
    batch: pd.DataFrame,
    equity_root: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Replayed]:
    """The real day through the live path, once for this module, with every worker serving
    metrics to a real Prometheus (when installed) and the reports exporter beside it."""
    import _prom
    from conftest import REDIS_URL, _temp_db

    root = tmp_path_factory.mktemp("e2e")
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    names = ["materializer-0", "materializer-1", "scorer", "writer", "feed"]
    ports = {n: _prom.free_port() for n in [*names, "exporter"]}
    with ExitStack() as stack:
        pg = stack.enter_context(_temp_db())
        r = Replayed(root, pg, REDIS_URL, {}, train_champion(root / "registry", ticks, batch))
        TickLake(root / "lake").write_day(ticks, DAY)  # the stored ticks (raw_ticks' lake)
        before = read_equity_day(equity_root, DAY - dt.timedelta(days=1), symbols=SYMBOLS).ticks
        FeatureTables(root / "lake").write_day(compute_features(before), DAY - dt.timedelta(days=1))
        exporter = subprocess.Popen(
            [sys.executable, "-m", "live", "exporter", "--metrics-port",
             str(ports["exporter"]), "--reports", str(root / "reports")],
            stderr=subprocess.DEVNULL,
        )
        stack.callback(lambda: (exporter.terminate(), exporter.wait(30)))
        r.skipped_prometheus = _prom.available()
        base = None
        if r.skipped_prometheus is None:
            jobs = {"tickml-live": [ports[n] for n in names], "tickml-reports": [ports["exporter"]]}
            base = stack.enter_context(_prom.prometheus(root / "prometheus", jobs))
        r.out = replay(
            LiveConfig(redis_url=REDIS_URL, pg_url=pg, shards=2),
            ReplaySpec(
                source="equity-ticks",
                ticks=str(equity_root),
                day=DAY.isoformat(),
                symbols=tuple(SYMBOLS),
                registry=str(root / "registry"),
                workdir=str(root),
                metrics_ports={n: ports[n] for n in names},
            ),
            timeout_s=400,
            on_drained=lambda: _operations(r, base, ports),
        )
        yield r
    client.flushdb()


def test_real_day_through_live_path(
    replayed: Replayed, ticks: pd.DataFrame, batch: pd.DataFrame
) -> None:
    out, fresh_pg_url, redis_url, tmp_path = (
        replayed.out, replayed.pg_url, replayed.redis_url, replayed.root
    )
    reg = replayed.reg
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

    # ... and Feast's Redis online store holds the last boundary's vectors, sized to the
    # champion (its features, ret_b1, then mid and spread)
    client = redis.Redis.from_url(redis_url)
    lay = layout_for(reg.manifest(reg.champion()))
    assert lay.columns[-2:] == ("mid", "spread") and len(lay.columns) < len(names)
    vec, ev = read_vectors(client, "tickml", lay.view, "vector", SYMBOLS)
    last = want.groupby("symbol").tail(1).set_index("symbol").loc[SYMBOLS]
    assert (ev == last["event_timestamp"].astype("int64").to_numpy()).all()
    np.testing.assert_array_equal(vec[:, :-2], last[list(lay.columns[:-2])].to_numpy())

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
    runtimes = {f[b"runtime"] for _, f in client.xrange("tickml:signals:boundaries")}
    assert runtimes == {b"tl2cgen"}  # scored by the compiled runtime
    rows = want.merge(sig, on=key)
    assert len(rows) == 780
    np.testing.assert_array_equal(np.vstack(rows["p_short"]), predict_proba(champ.short, rows))
    np.testing.assert_array_equal(np.vstack(rows["p_long"]), predict_proba(champ.long, rows))
    assert out["close_to_signal_ms"]["p50"] is not None


def test_consistency_of_the_replayed_day_is_exact(replayed: Replayed) -> None:
    """The online_consistency asset on the replayed real day: every online row equals the
    batch recomputation from the stored ticks, and every live score the champion's."""
    rep = replayed.consistency["report"]
    f, s = rep["features"], rep["scores"]
    assert replayed.consistency["passed"] and rep["passed"], rep["reasons"]
    assert f["n_batch"] == f["n_online"] == f["n_matched"] == 780
    assert f["n_batch_only"] == f["n_online_only"] == f["n_rows_differing"] == 0
    assert f["n_features_differing"] == 0 and f["max_mismatch_share"] == 0.0
    assert len(f["features"]) == len(feature_names(FeatureConfig()))
    assert s["n_signals"] == s["n_compared"] == 780 and s["n_not_scored"] == 0
    assert s["n_differing"] == 0 and s["max_abs_diff"] == 0.0
    assert s["versions"] == [replayed.reg.champion()]
    # the drift report of the same day links to it (and compared the day with the one before)
    drift = replayed.consistency["drift"]
    assert drift["status"] == "ok" and drift["reference"] == "prior_days"
    assert drift["consistency_report"].endswith(f"consistency/{DAY}.json")


def _prometheus(replayed: Replayed) -> dict:
    if replayed.skipped_prometheus:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(replayed.skipped_prometheus)
        pytest.skip(replayed.skipped_prometheus)
    return replayed.prom


def test_prometheus_evaluates_every_rule_on_the_replay(replayed: Replayed) -> None:
    """A real Prometheus scraped the replay's workers and the reports exporter: every
    recording rule and every alert's signal and condition return series, every rule is
    healthy, and the consistency alert is silent on the exact day."""
    import _prom

    prom = _prometheus(replayed)
    rules = prom["rules"]
    assert len(rules) == 19, [r["name"] for r in rules]
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad, bad
    empty = [n for n, res in prom["recorded"].items() if not res]
    assert not empty, empty
    for name, (signal_, condition) in prom["alerts"].items():
        assert signal_ and condition, f"{name}: no series"
    alerts = {r["name"]: r for r in rules if r["type"] == "alerting"}
    assert alerts["TickmlConsistencyCheckFailed"]["state"] == "inactive"
    passed = prom["alerts"]["TickmlConsistencyCheckFailed"][0]
    assert [float(x["value"][1]) for x in passed] == [1.0]
    # the latency recording rule agrees with what the scorer measured (same boundaries)
    (p99,) = prom["recorded"]["tickml:close_to_signal_seconds:p99_5m"]
    assert 0 < float(p99["value"][1]) < 5
    for name, text in prom["scrape"].items():  # a real worker's scrape passes the linter
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                              capture_output=True, timeout=60)
        assert lint.returncode == 0, (name, lint.stdout, lint.stderr)
    assert _prom.split_alert("a > 1") == ("a", ">", "1")
    print(f"monitoring + queries while the workers waited: {prom['seconds']:.1f} s")


def test_every_dashboard_query_has_data_on_the_replay(replayed: Replayed) -> None:
    """Every PromQL panel of the committed dashboards returns series through the HTTP API;
    every SQL panel runs on the replay's PostgreSQL (the shadow book's paper_fills)."""
    import _prom

    from orchestration.grafana import DASHBOARDS, panel_queries, render

    prom = _prometheus(replayed)
    empty = [k for k, res in prom["panels"].items() if not res]
    assert not empty, empty
    queries = [q for n in DASHBOARDS for q in panel_queries(json.loads(render(n)))]
    assert len(prom["panels"]) == sum(kind == "promql" for _, kind, _ in queries)
    start, end = f"{DAY}T13:30:00Z", f"{DAY}T20:00:00Z"
    with psycopg.connect(replayed.pg_url) as conn:
        for title, kind, sql in queries:
            if kind == "sql":
                rows = conn.execute(_prom.grafana_sql(sql, start, end)).fetchall()
                if "generate_series" in sql:
                    assert len(rows) == 391, title  # one row per minute of the session
