"""Scoring worker: at each boundary, the universe's vectors -> both models -> the risk gate.

The scorer follows ``<prefix>:boundaries``: when every shard announced boundary ``b`` (or
``boundary_wait_s`` passed since the first announcement) it reads the whole universe's packed
vectors from Feast's ``model_vector`` view with the fast reader, runs the registry's champion
(short and long model, hot-reloaded when the champion changes), and applies
:func:`tickml.decision.decide`, the function the backtest uses. Vectors older than the decision
config's ``max_feature_age`` (or missing) are never scored: the gate says ``stale``. Without a
champion the ``fallback`` gate ("last move persists") decides.

Signals: every actionable decision goes to the ``<prefix>:signals`` stream at once (that is the
latency the histogram measures: interval close -> signals published), then every scored row to
PostgreSQL ``live_signals`` (with model version, feature timestamp and latency) and the paper
ledger. The decision state is kept in Redis so a restart keeps cooldowns and daily counts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import redis

from live import metrics
from live.config import LiveConfig
from live.ledger import PaperLedger
from live.materializer import VECTOR_FEATURE, VECTOR_VIEW, vector_columns
from live.online import read_vectors
from live.sinks import Scored, SignalStore
from tickml.decision import DecisionConfig, Decisions, DecisionState, decide
from tickml.features import FeatureConfig
from tickml.models.registry import ModelRegistry, RegisteredModels
from tickml.models.train import TrainedModel, predict_proba

log = logging.getLogger(__name__)

VOL_ROWS, VOL_MIN = 30, 5  # as tickml.models.experiment.add_market_columns
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="predict")


def predict_both(short: TrainedModel, long: TrainedModel, x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Both models' probabilities, computed at the same time (LightGBM's predict releases the
    GIL, so on 2 cores the pair costs about the slower model, not the sum)."""
    f_long = _POOL.submit(predict_proba, long, x)
    return predict_proba(short, x), f_long.result()


class RecentVol:
    """Per symbol and local day: std of the previous ``VOL_ROWS`` one-bar returns (the
    backtest's ``recent_vol``: rolling over earlier rows only, at least ``VOL_MIN`` values)."""

    def __init__(self) -> None:
        self._hist: dict[str, tuple[object, deque[float]]] = {}

    def step(self, day: object, symbols: list[str], ret: np.ndarray, new: np.ndarray) -> np.ndarray:
        out = np.full(len(symbols), np.nan)
        for i, s in enumerate(symbols):
            d, h = self._hist.get(s, (None, None))
            if h is None or d != day:
                h = deque(maxlen=VOL_ROWS)
                self._hist[s] = (day, h)
            vals = np.fromiter(h, dtype=np.float64, count=len(h))
            ok = vals[np.isfinite(vals)]
            if ok.size >= VOL_MIN:
                out[i] = float(np.std(ok, ddof=1))
            if new[i]:
                h.append(float(ret[i]))
        return out


class Scorer:
    def __init__(
        self,
        config: LiveConfig,
        registry_root: str | Path,
        decision: DecisionConfig | None = None,
        feature_config: FeatureConfig | None = None,
        client: redis.Redis | None = None,
    ) -> None:
        self.cfg = config
        self.fc = feature_config or FeatureConfig()
        self.dc = decision or DecisionConfig()
        self.r = client or redis.Redis.from_url(config.redis_url)
        self.registry = ModelRegistry(registry_root)
        self.columns = vector_columns(self.fc)
        self._col = {c: i for i, c in enumerate(self.columns)}
        self.models: RegisteredModels | None = None
        self._idx: np.ndarray | None = None
        self.vol = RecentVol()
        self.state = self._load_state()
        self.signals = SignalStore(config.pg_url) if config.pg_url else None
        self.ledger = PaperLedger(config, self.r, self.signals)
        self.reload_models()

    # ---- models --------------------------------------------------------------------------
    def reload_models(self) -> bool:
        """Load the champion when it changed; True when the loaded version changed."""
        version = self.registry.champion()
        current = self.models.version if self.models else None
        if version == current:
            return False
        if version is None:
            self.models, self._idx = None, None
            return True
        models = self.registry.load(version)
        missing = [f for f in models.features if f not in self._col]
        if missing:
            log.error(
                "champion needs features the live vector lacks; keeping the old model",
                extra={"version": version, "missing": ",".join(missing[:10])},
            )
            return False
        self.models = models
        self._idx = np.array([self._col[f] for f in models.features], dtype=np.int64)
        predict_both(models.short, models.long, np.zeros((1, len(self._idx))))  # warm up
        log.info("champion loaded", extra={"version": version, "features": len(self._idx)})
        return True

    # ---- state ---------------------------------------------------------------------------
    def _load_state(self) -> DecisionState:
        raw = self.r.get(self.cfg.key("scorer", "state"))
        return DecisionState.from_json(raw.decode()) if raw else DecisionState()

    def _save_state(self) -> None:
        self.r.set(self.cfg.key("scorer", "state"), self.state.to_json())

    # ---- one boundary --------------------------------------------------------------------
    def universe(self) -> list[str]:
        return sorted(s.decode() for s in self.r.smembers(self.cfg.key("universe")))

    def score(self, b: int, close_wall_ns: int | None = None) -> Scored:
        """Read, score, decide and publish boundary ``b`` (UTC ns)."""
        close_wall_ns = close_wall_ns or time.time_ns()
        start_ns = time.time_ns()
        self.reload_models()
        syms = self.universe()
        t0 = time.perf_counter()
        x, ev = read_vectors(self.r, self.cfg.feast_project, VECTOR_VIEW, VECTOR_FEATURE, syms)
        t_read = time.perf_counter()
        metrics.ONLINE_READ.observe(t_read - t0)
        if x.shape[1] != len(self.columns) and len(syms):
            raise ValueError(
                f"model vectors hold {x.shape[1]} values, expected "
                f"{len(self.columns)}: materializer and scorer configs differ"
            )
        n = len(syms)
        fresh = ev == b
        age = np.where(ev >= 0, (b - ev) / 1e9, np.inf)
        ret = x[:, self._col["ret_b1"]] if n else np.zeros(0)
        rvol = self.vol.step(self.fc.market.local_day(b), syms, ret, fresh)
        ps = np.full((n, 5), np.nan)
        pl = np.full((n, 3), np.nan)
        # a vector newer than b (a replay running ahead) is not b's: never score the future
        ok = (age >= 0) & (age <= self.dc.max_feature_age.total_seconds()) & (ev >= 0)
        age = np.where(age < 0, np.inf, age)
        if self.models is not None and ok.any():
            xm = x[ok][:, self._idx]
            ps[ok], pl[ok] = predict_both(self.models.short, self.models.long, xm)
        t_model = time.perf_counter()
        d = decide(
            self.dc,
            self.state,
            b,
            syms,
            p_short=ps if self.models is not None else None,
            p_long=pl if self.models is not None else None,
            last_return=ret,
            recent_vol=rvol,
            feature_age=age,
        )
        t_decide = time.perf_counter()
        parts = {
            "until_scorer_ms": (start_ns - close_wall_ns) / 1e6,
            "read_ms": (t_read - t0) * 1e3,
            "models_ms": (t_model - t_read) * 1e3,
            "decide_ms": (t_decide - t_model) * 1e3,
        }
        latency = self._publish(b, syms, d, close_wall_ns, parts)
        metrics.boundary_scored(
            b,
            ev,
            ok,
            d.circuit_breaker_tripped,
            d.gate_counts(),
            {
                "wait": parts["until_scorer_ms"] / 1e3,
                "read": t_read - t0,
                "models": t_model - t_read,
                "decide": t_decide - t_model,
                "publish": time.perf_counter() - t_decide,
            },
        )
        out = Scored(b, syms, d, ps, pl, ev, self.models.version if self.models else None, latency)
        self._save_state()
        mid = x[:, self._col["mid"]] if n else np.zeros(0)
        spread = x[:, self._col["spread"]] if n else np.zeros(0)
        self.ledger.step(b, syms, d, mid, spread, out.model_version)
        if self.signals is not None:
            self.signals.write(out)
        return out

    def _publish(
        self, b: int, syms: list[str], d: Decisions, close_wall_ns: int, parts: dict[str, float]
    ) -> float:
        """Actionable signals to the stream (latency ends when they are sent), then the
        boundary's record with the latency and its parts."""
        act = np.flatnonzero(d.decision != 0)
        names, gates = d.decision_names, d.gate_names
        version = self.models.version if self.models else ""
        if len(act):
            pipe = self.r.pipeline(transaction=False)
            for i in act:
                pipe.xadd(
                    self.cfg.key("signals"),
                    {
                        "symbol": syms[i],
                        "b": b,
                        "decision": str(names[i]),
                        "gate": str(gates[i]),
                        "score": repr(float(d.score[i])),
                        "model_version": version,
                    },
                    maxlen=100_000,
                    approximate=True,
                )
            pipe.execute()
        latency = (time.time_ns() - close_wall_ns) / 1e9
        record = {
            "b": b,
            "scored": len(syms),
            "actionable": len(act),
            "latency_ms": f"{latency * 1e3:.3f}",
            "model_version": version,
        }
        record.update({k: f"{v:.3f}" for k, v in parts.items()})
        self.r.xadd(self.cfg.key("signals", "boundaries"), record, maxlen=10_000, approximate=True)
        metrics.CLOSE_TO_SIGNAL.observe(latency)
        return latency


def run_scorer(
    config: LiveConfig,
    registry_root: str | Path,
    stop: threading.Event,
    decision: DecisionConfig | None = None,
    feature_config: FeatureConfig | None = None,
    on_scored: object = None,
) -> None:
    """Follow the boundary announcements until ``stop``; score each boundary once."""
    scorer: Scorer | None = None
    last_id = b"0-0"  # the announcements stream is capped; done boundaries are skipped
    seen: dict[int, dict[int, int]] = {}  # boundary -> shard -> rows
    first_wall: dict[int, tuple[float, int]] = {}
    done = -1
    backoff = 0.1
    while not stop.is_set():
        try:
            if scorer is None:
                scorer = Scorer(config, registry_root, decision, feature_config)
                done = int(scorer.r.get(config.key("scorer", "last")) or -1)
                metrics.scorer_started()
                scorer.r.hset(config.key("ready"), "scorer", time.time_ns())
            resp = scorer.r.xread({config.key("boundaries"): last_id}, block=50, count=1000)
            for _, entries in resp or []:
                for eid, f in entries:
                    last_id = eid
                    b = int(f[b"b"])
                    if b <= done:
                        continue
                    seen.setdefault(b, {})[int(f[b"shard"])] = int(f[b"rows"])
                    first_wall.setdefault(b, (time.monotonic(), int(f[b"close_wall"])))
            for b in sorted(seen):
                complete = len(seen[b]) >= config.shards
                waited = time.monotonic() - first_wall[b][0] > config.boundary_wait_s
                if not (complete or waited):
                    break
                if sum(seen[b].values()):
                    res = scorer.score(b, first_wall[b][1])
                    if callable(on_scored):
                        on_scored(res)
                done = b
                scorer.r.set(config.key("scorer", "last"), b)
                del seen[b], first_wall[b]
            if backoff > 0.1:  # recovered from an outage
                metrics.DEPENDENCY_UP.labels("scorer", "redis").set(1)
            backoff = 0.1
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            metrics.ERRORS.labels("scorer", "redis").inc()
            metrics.DEPENDENCY_UP.labels("scorer", "redis").set(0)
            log.warning("redis unavailable, retrying", extra={"error": str(exc)})
            stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)
    if scorer is not None and scorer.signals is not None:
        scorer.signals.close()
