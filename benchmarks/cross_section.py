"""Interval close -> decisions for a universe: the live scorer's step, 5,000 symbols by default.

One timed step = :func:`live.online.read_vectors` of the whole universe (Feast's Redis layout,
packed ``model_vector`` view, float64) + :func:`tickml.models.train.predict_proba` of the
5-class short and the 3-class long model + :func:`tickml.decision.decide` (default
:class:`~tickml.decision.DecisionConfig`, one :class:`~tickml.decision.DecisionState`, one
boundary per step, 1 minute apart inside the New York session). Before each step the vectors
are rewritten with the step's boundary (``write_vectors``, timed apart: the materializer's
cost, not the scorer's). ``value`` = p50 of the step; p50/p99 of the step and of each part.

Data: ``sim_days`` simulated days of ``sim_symbols`` symbols (:mod:`tickml.simulator`) through
the real chain (features, labels, ``prepare_dataset``); both models trained with
``train_model`` and the default :class:`~tickml.models.train.TrainConfig` (sizes reported);
the universe's vectors are feature rows of that data drawn at random and perturbed
(x (1 + 0.01 N(0, 1))), in the materializer's layout (every feature, then ``mid``, ``spread``).

Baseline, same run: the same step with the read done by Feast's SDK
(``get_online_features(...).to_dict()`` over the same Redis rows; ``baseline_repeats`` steps).
``threads``: LightGBM ``num_threads`` of predict (1 and 2) for both models, passed to the
booster's ``predict`` (``predict_proba`` itself unchanged); the step uses LightGBM's default.

``malloc_tuned``: the same steps again after :func:`live.online.tune_allocator` (glibc keeps
the megabytes of each read instead of returning them to the OS and faulting them in again).

``read_cpu``/``step_cpu``: this process's CPU time for the read / the step (Redis's own work
excluded); ``host_idle_share``: the host's idle CPU share during the timed steps (other
processes on the 2-core box inflate wall times).

Redis: ``$TICKML_BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/14``), that db flushed
before and after. Python's gc: ``gc.freeze()`` after set-up, default thresholds.
"""

from __future__ import annotations

import dataclasses
import gc
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tickml.settings import Settings

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
TARGET_MS, BUDGET_P99_MS = 20.0, 50.0
VIEW, FEATURE, PROJECT = "model_vector", "vector", "tickml"


class _Threads:
    """A booster whose predict runs with a fixed ``num_threads`` (for predict_proba)."""

    def __init__(self, booster: Any, k: int) -> None:
        self.booster, self.k = booster, k

    def predict(self, x: Any, **kw: Any) -> Any:
        return self.booster.predict(x, num_threads=self.k, **kw)


def _dataset(days: int, n_sym: int, seed: int) -> tuple[pd.DataFrame, list[str]]:
    from tickml.features import FeatureConfig, compute_features, feature_names
    from tickml.labels import LabelConfig, make_labels
    from tickml.models import prepare_dataset
    from tickml.simulator import SimConfig, simulate_day

    cfg = SimConfig(n_symbols=n_sym, seed=seed, signal_strength=1.0)
    dates = list(pd.bdate_range("2024-01-08", periods=days).date)
    ticks = pd.concat([simulate_day(cfg, d).ticks for d in dates], ignore_index=True)
    fcfg = FeatureConfig(leader=cfg.leader_name)
    feats = compute_features(ticks, fcfg)
    labels = make_labels(ticks, feats[["symbol", "event_timestamp"]], LabelConfig())
    return prepare_dataset(feats, labels), feature_names(fcfg)


def _models(ds: pd.DataFrame, names: list[str]) -> tuple[Any, Any]:
    from tickml.labels import CLASSES_3, CLASSES_5
    from tickml.models.train import TrainConfig, train_model

    last = ds["event_timestamp"].dt.date.max()
    tr, va = ds[ds["event_timestamp"].dt.date < last], ds[ds["event_timestamp"].dt.date == last]
    cfg = TrainConfig()
    short = train_model(tr, tr["label_short"], va, va["label_short"], CLASSES_5, cfg, names)
    long_ = train_model(tr, tr["label_long"], va, va["label_long"], CLASSES_3, cfg, names)
    return short, long_


def _cpu_idle(start: tuple[int, int] | None = None) -> Any:
    """(idle, total) jiffies of the host from /proc/stat, or the idle share since ``start``
    (other processes on the box inflate wall times; this says how busy it was)."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return None
    now = (v[3] + v[4], sum(v))
    if start is None:
        return now
    return round((now[0] - start[0]) / max(1, now[1] - start[1]), 3)


def _pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(xs, q)), 3)


def run(
    symbols: int = 5000,
    repeats: int = 50,
    baseline_repeats: int = 5,
    warmup: int = 5,
    sim_days: int = 4,
    sim_symbols: int = 10,
    seed: int = 11,
    redis_url: str | None = None,
) -> list[dict[str, Any]]:
    import redis

    from live.online import read_vectors, tune_allocator, write_vectors
    from live.scorer import predict_both
    from tickml.decision import DecisionConfig, DecisionState, decide
    from tickml.models.train import predict_proba

    url = redis_url or Settings.from_env().bench_redis_url or DEFAULT_REDIS_URL
    r = redis.Redis.from_url(url)
    r.flushdb()
    ds, names = _dataset(sim_days, sim_symbols, seed)
    short, long_ = _models(ds, names)
    cols = [*names, "mid", "spread"]
    rng = np.random.default_rng(seed)
    pool = ds[cols].to_numpy(np.float64)
    vectors = pool[rng.integers(0, len(pool), symbols)]
    vectors *= 1.0 + 0.01 * rng.standard_normal(vectors.shape)
    rvol = ds["recent_vol"].to_numpy(np.float64)[rng.integers(0, len(ds), symbols)]
    universe = [f"U{i:05d}" for i in range(symbols)]
    i_ret, nf = cols.index("ret_b1"), len(names)
    dcfg = DecisionConfig()
    state = DecisionState()
    t0 = pd.Timestamp("2024-01-16 10:00", tz="America/New_York").tz_convert("UTC").value
    step_no = [0]

    def step(read: Callable[[], tuple[np.ndarray, np.ndarray]], parts: dict[str, list[float]]):
        b = t0 + step_no[0] * 60_000_000_000
        step_no[0] += 1
        w = time.perf_counter()
        write_vectors(r, PROJECT, VIEW, FEATURE, universe, vectors, b)
        parts["write"].append((time.perf_counter() - w) * 1e3)
        c0, u0 = time.perf_counter(), time.process_time()
        x, ev = read()
        c1, u1 = time.perf_counter(), time.process_time()
        ps, pl = predict_both(short, long_, x[:, :nf])  # the scorer's call: 2 threads at once
        c3 = time.perf_counter()
        age = np.where(ev >= 0, (b - ev) / 1e9, np.inf)
        d = decide(dcfg, state, b, universe, ps, pl, x[:, i_ret], rvol, age)
        c4, u4 = time.perf_counter(), time.process_time()
        assert len(d.decision) == symbols and (ev == b).all()
        parts["read_cpu"].append((u1 - u0) * 1e3)
        parts["step_cpu"].append((u4 - u0) * 1e3)
        for k, a, z in (
            ("read", c0, c1),
            ("models", c1, c3),
            ("decide", c3, c4),
            ("step", c0, c4),
        ):
            parts[k].append((z - a) * 1e3)

    def fast() -> tuple[np.ndarray, np.ndarray]:
        return read_vectors(r, PROJECT, VIEW, FEATURE, universe)

    def measure(read: Callable, n: int) -> dict[str, list[float]]:
        parts: dict[str, list[float]] = {
            k: [] for k in ("write", "read", "models", "decide", "step", "read_cpu", "step_cpu")
        }
        for _ in range(n):
            step(read, parts)
        return parts

    measure(fast, warmup)
    got, _ = fast()
    assert np.array_equal(got, vectors, equal_nan=True), (
        "read_vectors returned other values than written"
    )
    tmp = tempfile.TemporaryDirectory(prefix="tickml-bench-feast-")
    feast = _feast_reader(url, universe, tmp.name)
    gc.freeze()
    idle0 = _cpu_idle()
    main = measure(fast, repeats)
    idle = _cpu_idle(idle0)
    base = measure(feast, baseline_repeats)
    tuned_ok = tune_allocator()  # process-wide from here on (see live.online.tune_allocator)
    measure(fast, warmup)
    tuned = measure(fast, repeats)
    threads = {}
    x = fast()[0][:, :nf]
    for k in (1, 2):
        for name, m in (("short", short), ("long", long_)):
            mk = dataclasses.replace(m, booster=_Threads(m.booster, k))
            np.testing.assert_array_equal(predict_proba(mk, x), predict_proba(m, x))
            ts = []
            for _ in range(max(10, repeats // 2)):
                a = time.perf_counter()
                predict_proba(mk, x)
                ts.append((time.perf_counter() - a) * 1e3)
            threads[f"{name}_p50_ms_{k}_thread"] = _pct(ts, 50)
            threads[f"{name}_p99_ms_{k}_thread"] = _pct(ts, 99)
    gc.unfreeze()
    r.flushdb()
    tmp.cleanup()
    sizes = {"short": short.size(), "long": long_.size()}
    p50, p99 = _pct(main["step"], 50), _pct(main["step"], 99)
    row: dict[str, Any] = {
        "name": "cross-section",
        "value": p50,
        "unit": f"ms per boundary, {symbols} symbols (read + 2 models + decide)",
        "p50_ms": p50,
        "p99_ms": p99,
        **{
            f"{k}_{q}_ms": _pct(main[k], int(q[1:]))
            for k in ("read", "models", "decide", "write", "read_cpu", "step_cpu")
            for q in ("p50", "p99")
        },
        "cpu": "read_cpu/step_cpu: this process's CPU time (all threads), not waiting on Redis",
        "host_idle_share": idle,
        "malloc_tuned": {
            "applied": tuned_ok,
            **{
                f"{k}_{q}_ms": _pct(tuned[k], int(q[1:]))
                for k in ("step", "read", "models", "decide", "write")
                for q in ("p50", "p99")
            },
        },
        "malloc": "glibc defaults (malloc_tuned: after live.online.tune_allocator())",
        "baseline_p50_ms": _pct(base["step"], 50),
        "baseline_p99_ms": _pct(base["step"], 99),
        "baseline_read_p50_ms": _pct(base["read"], 50),
        "baseline": f"the same step reading through Feast get_online_features().to_dict() "
        f"({baseline_repeats} repetitions; the fast path {repeats})",
        "ratio": round(_pct(base["step"], 50) / p50, 1),
        "target_ms": TARGET_MS,
        "budget_p99_ms": BUDGET_P99_MS,
        "meets_budget": p99 <= BUDGET_P99_MS,
        "read_meets_target": _pct(main["read"], 50) <= TARGET_MS,
        "symbols": symbols,
        "vector_length": len(cols),
        "model_features": nf,
        "model_sizes": sizes,
        "lightgbm_threads": "default (predict without num_threads)",
        "data": f"simulated {sim_days} days x {sim_symbols} symbols, rows drawn and perturbed",
        "gc": "gc.freeze() after set-up, default thresholds",
        "redis_db": url.rsplit("/", 1)[-1],
        "repeats": repeats,
        "warmup": warmup,
    }
    return [
        row,
        {
            "name": "cross-section-threads",
            "value": threads["short_p50_ms_2_thread"],
            "unit": f"ms, short model predict_proba, {symbols} rows, 2 threads",
            **threads,
            "model_sizes": sizes,
        },
    ]


def _feast_reader(
    url: str, universe: list[str], tmp: str
) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """Feast's SDK over the same Redis rows (a throw-away sqlite registry under ``tmp``)."""
    from feature_repo.store import apply, load_store
    from tickml.workdir import Workdir

    layout = Workdir(Path(tmp))
    store = load_store("prod", layout, redis_url=url, registry_url=f"sqlite:///{tmp}/registry.db")
    apply(store, layout)
    rows = [{"symbol": s} for s in universe]
    ref = f"{VIEW}:{FEATURE}"

    def read() -> tuple[np.ndarray, np.ndarray]:
        resp = store.get_online_features(features=[ref], entity_rows=rows)
        d = resp.to_dict(include_event_timestamps=True)
        names = list(resp.proto.metadata.feature_names.val)
        ts = resp.proto.results[names.index(FEATURE)].event_timestamps
        ev = np.array([t.seconds * 1_000_000_000 + t.nanos for t in ts], dtype=np.int64)
        return np.array(d[FEATURE], dtype=np.float64), ev

    return read


if __name__ == "__main__":
    import json

    for out in run():
        print(json.dumps(out, default=str))
