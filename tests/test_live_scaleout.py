"""Two scorers (each owning half the shards) emit exactly the signals of one scorer, across a
promotion, on real Redis with real LightGBM champions (compiled runtime).

Boundaries are announced as materializers announce them (champion version, layouts written) and
the vectors written with the same writer; the scorers run their real loop (``run_scorer``) in
threads: one configuration with one scorer, one with two, on the same vectors. Checked per
boundary and symbol: decision, gate, score and probabilities equal; the circuit breaker tripped
on some boundaries where either half alone would have decided otherwise (the exchange matters);
the promotion switches both configurations at the same boundary, the first one every shard
announced with the new champion, and every score equals the offline model of the version it
names on the layout of that version. The new champion has a direction model (its prediction is
the score and the circuit breaker counts its signs, exchanged between the scorers).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from live.config import LiveConfig
from live.layout import VECTOR_FEATURE, layout_for
from live.online import write_vectors
from live.scaleout import scorer_name
from live.scorer import Scored, run_scorer
from tickml.decision import DecisionConfig, breaker_counts
from tickml.features import FeatureConfig, feature_names
from tickml.labels import CLASSES_3, CLASSES_5
from tickml.models.registry import ModelRegistry
from tickml.models.train import (
    TrainConfig,
    predict_proba,
    predict_value,
    train_model,
    train_regressor,
)

pytestmark = pytest.mark.integration

NAMES = feature_names(FeatureConfig())
SYMBOLS = [f"S{i:02d}" for i in range(16)]
SHARDS = 4
COLS = [*dict.fromkeys([*NAMES[:12], "ret_b1"]), "mid", "spread", "bid_size", "ask_size"]
DC = DecisionConfig(
    session_open=None,
    session_close=None,
    min_confidence=0.2,
    min_score=0.02,
    cooldown="PT0S",
    max_trades_per_day=None,
    circuit_breaker_min_symbols=6,
    circuit_breaker_share=0.7,
    vol_halt_k=None,
)
B0 = pd.Timestamp("2024-03-05 15:00", tz="UTC").value
STEP = 60 * 10**9
SWITCH = 6  # the first boundary every shard announces with v2


def _models(features: list[str], seed: int, direction: list[str] | None = None) -> dict:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.standard_normal((3000, len(features))), columns=features)
    s = x[features[0]] + 0.5 * x[features[1]] + 0.5 * rng.standard_normal(len(x))
    short = np.select([s > 1, s < -1, s > 0.4, s < -0.4], ["UP", "DOWN", "TRAP_UP", "TRAP_DOWN"],
                      "FLAT")
    long_ = np.select([s > 0.2, s < -0.2], ["UP", "DOWN"], "FLAT")
    cfg = TrainConfig(n_estimators=20, num_leaves=7, seed=seed)
    h = 2000
    out = {
        "short": train_model(x[:h], short[:h], x[h:], short[h:], CLASSES_5, cfg, features),
        "long": train_model(x[:h], long_[:h], x[h:], long_[h:], CLASSES_3, cfg, features),
    }
    if direction:  # a direction model on its own features (its first two drive its target)
        xd = pd.DataFrame(rng.standard_normal((3000, len(direction))), columns=direction)
        y = xd[direction[0]] + 0.5 * xd[direction[1]] + 0.5 * rng.standard_normal(len(xd))
        out["direction"] = train_regressor(xd[:h], y[:h], xd[h:], y[h:], cfg, direction)
    return out


def _vectors(k: int) -> np.ndarray:
    rng = np.random.default_rng(100 + k)
    x = rng.standard_normal((len(SYMBOLS), len(COLS) - 2))
    x = np.hstack([x, np.full((len(SYMBOLS), 2), 500.0)])  # displayed sizes
    x[:, :2] += (1.5 if k % 3 == 0 else -1.2 if k % 3 == 1 else 0.0)  # one-sided boundaries
    x[:, COLS.index("mid")] = 100 + rng.random(len(SYMBOLS))
    x[:, COLS.index("spread")] = 0.01
    return x


def _run(configs: list[LiveConfig], reg: ModelRegistry) -> dict[str, list[Scored]]:
    r = redis.Redis.from_url(configs[0].redis_url)
    out: dict[str, list[Scored]] = {c.prefix: [] for c in configs}
    lock = threading.Lock()
    stop = threading.Event()
    threads = []
    for cfg in configs:
        r.sadd(cfg.key("universe"), *SYMBOLS)
        for i in range(cfg.scorers):
            def keep(res: Scored, p: str = cfg.prefix) -> None:
                with lock:
                    out[p].append(res)

            th = threading.Thread(
                target=run_scorer,
                args=(cfg, reg.root, stop, DC, FeatureConfig(), keep, i),
                daemon=True,
            )
            th.start()
            threads.append(th)
    v1 = reg.champion()
    v2 = reg.versions()[-1]
    lay = {v: layout_for(reg.manifest(v)) for v in (v1, v2)}
    try:
        for k in range(12):
            b = B0 + k * STEP
            if k == SWITCH - 1:
                reg.set_champion(v2)  # compiles v2's runtime, then flips the pointer
            x = _vectors(k)
            for v in (v1, v2):
                cols = [COLS.index(c) for c in lay[v].columns]
                write_vectors(r, "tickml", lay[v].view, VECTOR_FEATURE, SYMBOLS, x[:, cols], b)
            for shard in range(SHARDS):
                # k = SWITCH - 1: half the shards already saw v2 (and wrote its layout too), the
                # others not yet: no scorer may switch; from SWITCH on every shard says v2
                champ = v2 if k >= SWITCH or (k == SWITCH - 1 and shard < 2) else v1
                written = [lay[v1].view, lay[v2].view] if champ == v2 else [lay[v1].view]
                for cfg in configs:
                    r.xadd(cfg.key("boundaries"), {
                        "shard": shard, "b": b, "close_wall": time.time_ns(), "rows": 4,
                        "champion": champ, "layouts": ",".join(written)})
            deadline = time.monotonic() + 60
            keys = [c.key(scorer_name(c, i), "last") for c in configs for i in range(c.scorers)]
            while time.monotonic() < deadline:
                if all(v is not None and int(v) >= b for v in r.mget(keys)):
                    break
                time.sleep(0.01)
            else:
                raise AssertionError(f"boundary {k} not scored by every scorer")
    finally:
        stop.set()
        for th in threads:
            th.join(10)
    return out


def _frame(results: list[Scored]) -> pd.DataFrame:
    rows = []
    for res in results:
        d = res.decisions
        for i, s in enumerate(res.symbols):
            rows.append((res.boundary_ns, s, res.model_version, int(d.decision[i]),
                         str(d.gate_names[i]), d.score[i], tuple(res.p_short[i]),
                         tuple(res.p_long[i]), d.circuit_breaker_tripped, res.direction[i]))
    cols = ["b", "symbol", "version", "decision", "gate", "score", "p_short", "p_long", "cb",
            "direction"]
    return pd.DataFrame(rows, columns=cols).sort_values(["b", "symbol"]).reset_index(drop=True)


def test_two_scorers_equal_one_across_a_promotion(redis_url: str, tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    reg.set_champion(reg.save(_models(NAMES[:10], 1)))
    v1 = reg.champion()
    # another layout, with a direction model led by a one-sided feature
    v2 = reg.save(_models([NAMES[11], *NAMES[2:8], "ret_b1"], 2, [NAMES[0], NAMES[9], NAMES[3]]))
    one = LiveConfig(redis_url=redis_url, pg_url=None, shards=SHARDS, scorers=1, prefix="one",
                     boundary_wait_s=20)
    two = one.model_copy(update={"scorers": 2, "prefix": "two"})
    got = _run([one, two], reg)
    a, b = _frame(got["one"]), _frame(got["two"])
    assert len(a) == len(b) == 12 * len(SYMBOLS)
    pd.testing.assert_frame_equal(a, b, check_exact=True)

    # the switch happened at SWITCH, for both, and every score is its version's offline score
    versions = a.groupby("b")["version"].first().tolist()
    assert versions == [v1] * SWITCH + [v2] * (12 - SWITCH)
    for k in range(12):
        rows = a[a["b"] == B0 + k * STEP]
        m = reg.load(versions[k])
        x = pd.DataFrame(_vectors(k), columns=COLS)
        np.testing.assert_array_equal(np.vstack(rows["p_short"]), predict_proba(m.short, x))
        np.testing.assert_array_equal(np.vstack(rows["p_long"]), predict_proba(m.long, x))
        if m.direction is None:
            assert rows["direction"].isna().all()
        else:  # the direction is the score
            np.testing.assert_array_equal(rows["direction"], predict_value(m.direction, x))
            np.testing.assert_array_equal(rows["score"], rows["direction"])

    # the universe-wide breaker tripped, and on some boundary a half alone would not agree
    assert a["cb"].any() and (a["gate"] == "traded").any()
    assert a.loc[a["version"] == v2, "cb"].any()  # also on the direction's signs
    differs = 0
    for res in got["two"]:
        age = np.zeros(len(res.symbols))
        dirn = res.direction if res.model_version == v2 else None
        n, up, down = breaker_counts(DC, res.p_short, res.p_long, age, dirn)
        local = n >= DC.circuit_breaker_min_symbols and max(up, down) > DC.circuit_breaker_share * n
        differs += local != res.decisions.circuit_breaker_tripped
    assert differs > 0
