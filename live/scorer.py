"""Scoring worker: at each boundary, the universe's vectors -> the champion's models -> the gate.

The scorer follows ``<prefix>:boundaries``: when every shard it owns announced boundary ``b`` (or
``boundary_wait_s`` passed since the first announcement) it reads its symbols' packed vectors
from the champion's sized layout (:mod:`live.layout`) with the fast reader, runs the models the
decision reads (:func:`tickml.decision.inputs_read`) through
:class:`tickml.models.inference.Inference` (the compiled runtime, exact; LightGBM when the
artifact is missing, stale or fails, with a log line and a metric), and applies
:func:`tickml.decision.decide`, the function the backtest uses; the champion's other models
run after the signals are published and are stored with them. Vectors older than the
decision config's ``max_feature_age`` (or missing) are never scored: the gate says ``stale``.
Without a champion the ``fallback`` gate ("last move persists") decides.

Promotion: the champion a scorer uses follows the materializers' announcements: it switches to
a new champion at the first boundary all its shards announced with it (so its layout was
written); until then the old models score the old layout (see :mod:`live.layout`). Several
scorers (``LiveConfig.scorers``) split the shards and keep the circuit breaker universe-wide
(:mod:`live.scaleout`).

Direction model: when the champion has one (``direction`` in the registry version), it is
evaluated on the same vectors (the layout holds its features: the manifest's feature list is
every model's), its prediction goes to :func:`~tickml.decision.decide` as ``direction`` (it then
is the score; the short model detects traps, the long one confirms) and is stored with the
signal (``direction`` on the stream and in ``live_signals``). Without one, nothing changes.

Signals: every actionable decision goes to the ``<prefix>:signals`` stream at once (that is the
latency the histogram measures: interval close -> signals published), then every scored row to
PostgreSQL ``live_signals`` (with model version, feature timestamp and latency). Last, one
Redis transaction commits the boundary: the decision state (cooldowns, daily counts), the recent
volatility state (:class:`tickml.volatility.RecentVol`, the backtest's function streamed), the
boundary's record for the shadow ledger (``live/ledger_records.py``: this scorer's fresh rows
and its shards) and the scorer's last boundary. A scorer killed before that commit scores the
boundary again from the same state (same decisions: the signals stream may carry them twice,
PostgreSQL keeps one row); after it, the boundary is done.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from pathlib import Path

import numpy as np
import redis

from live import metrics
from live.champion import UNKNOWN, Announced, ChampionSwitch
from live.config import LiveConfig
from live.layout import VECTOR_FEATURE, VectorLayout
from live.ledger_records import encode_record
from live.online import read_vectors, roundtrip, tune_allocator
from live.scaleout import BreakerExchange, scorer_name, scorer_shards
from live.sinks import Scored, SignalStore
from live.wire import xadd_commands
from tickml.decision import (
    DecisionConfig,
    Decisions,
    DecisionState,
    breaker_counts,
    decide,
    inputs_read,
)
from tickml.execution.market import MARKET_COLUMNS
from tickml.features import FeatureConfig
from tickml.market import EPOCH
from tickml.models.inference import Inference
from tickml.volatility import RecentVol

log = logging.getLogger(__name__)

#: registry model name -> the decision input its output is (tickml.decision.decide's argument)
_MODEL_INPUT = {"short": "p_short", "long": "p_long", "direction": "direction"}


class Scorer:
    def __init__(
        self,
        config: LiveConfig,
        registry_root: str | Path,
        decision: DecisionConfig | None = None,
        feature_config: FeatureConfig | None = None,
        client: redis.Redis | None = None,
        index: int = 0,
        compiled: bool = True,
    ) -> None:
        self.cfg = config
        self.fc = feature_config or FeatureConfig()
        self.dc = decision or DecisionConfig()
        if config.scorers > 1 and self.dc.max_trades_per_day_universe is not None:
            raise ValueError(
                "max_trades_per_day_universe needs one scorer (a universe-wide ranking of "
                f"candidates); got scorers={config.scorers}"
            )
        self.r = client or redis.Redis.from_url(config.redis_url)
        self.name = scorer_name(config, index)
        self.shards = set(scorer_shards(config, index))
        self.champion = ChampionSwitch(
            config, self.r, registry_root, self.name, compiled, self.fc.value_digest()
        )
        self._universe: list[str] = []
        self._universe_n = -1
        self.breaker = BreakerExchange(config, self.r, self.name)
        self.state, self.vol = self._load_state()
        self.signals = SignalStore(config.pg_url) if config.pg_url else None
        self.reload_models()

    def key(self, *parts: object) -> str:
        return self.cfg.key(self.name, *parts)

    # ---- models --------------------------------------------------------------------------
    @property
    def models(self) -> Inference | None:
        return self.champion.models

    @property
    def layout(self) -> VectorLayout:
        return self.champion.layout

    @property
    def version(self) -> str | None:
        return self.champion.version

    def reload_models(self) -> bool:
        """Standalone use (no announcements): follow the registry's champion."""
        return self.champion.reload()

    def warm_up(self) -> None:
        """Pay the first-call costs (time zone data, allocations, the models' libraries) at
        start-up, not at the first boundary (it took 13 ms more at 500 symbols): every model,
        the volatility gather and the decision run once on throwaway state and NaN rows;
        nothing is published or kept."""
        ts = time.time_ns()
        day = (self.fc.market.local_day(ts) - EPOCH).days
        rvol, _ = RecentVol().known(day, ["_warmup"])
        x = np.full((2, len(self.layout.columns)), np.nan)
        out = self.models.predict(x) if self.models is not None else {}
        decide(
            self.dc,
            DecisionState(),
            ts,
            ["_warmup", "_warmup2"],
            p_short=out.get("short"),
            p_long=out.get("long"),
            last_return=x[:, 0],
            recent_vol=np.repeat(rvol, 2),
            feature_age=np.zeros(2),
            direction=out.get("direction"),
        )

    # ---- state ---------------------------------------------------------------------------
    def _load_state(self) -> tuple[DecisionState, RecentVol]:
        raw, vol = self.r.mget(self.key("state"), self.key("vol"))
        return (
            DecisionState.from_json(raw.decode()) if raw else DecisionState(),
            RecentVol.from_bytes(vol) if vol else RecentVol(),
        )

    def _commit(self, b: int, rows: dict[str, np.ndarray], version: str) -> None:
        """One transaction: decision + volatility state, the ledger's record, the last
        boundary."""
        fresh = rows["fresh"]
        syms = [s for s, f in zip(rows["symbols"], fresh, strict=True) if f]
        floats = {
            k: rows[k][fresh]
            for k in ("score", "mid", "spread", "bid_size", "ask_size", "ret", "vol")
        }
        rec = encode_record(
            b, sorted(self.shards), syms, rows["decision"][fresh], rows["gate"][fresh], floats,
            version,
        )  # fmt: skip
        pipe = self.r.pipeline(transaction=True)
        pipe.set(self.key("state"), self.state.to_json())
        pipe.set(self.key("vol"), self.vol.to_bytes())
        pipe.xadd(self.cfg.key("decisions"), rec, maxlen=100_000, approximate=True)
        pipe.set(self.key("last"), b)
        pipe.execute()

    # ---- one boundary --------------------------------------------------------------------
    def universe(self) -> list[str]:
        """This scorer's symbols (its shards'), sorted; re-read only when the set grew."""
        n = int(self.r.scard(self.cfg.key("universe")))
        if n != self._universe_n:
            syms = sorted(s.decode() for s in self.r.smembers(self.cfg.key("universe")))
            if self.cfg.scorers > 1:
                syms = [s for s in syms if self.cfg.shard_of(s) in self.shards]
            self._universe, self._universe_n = syms, n
        return self._universe

    def score(
        self, b: int, close_wall_ns: int | None = None, announced: Announced | None = None
    ) -> Scored:
        """Read, score, decide and publish boundary ``b`` (UTC ns)."""
        close_wall_ns = close_wall_ns or time.time_ns()
        start_ns = time.time_ns()
        if announced is None:
            self.champion.reload()
        else:
            self.champion.follow(announced)
        syms = self.universe()
        lay = self.layout
        t0 = time.perf_counter()
        x, ev = read_vectors(self.r, self.cfg.feast_project, lay.view, VECTOR_FEATURE, syms)
        t_read = time.perf_counter()
        metrics.ONLINE_READ.observe(t_read - t0)
        n = len(syms)
        if x.shape[1] == 0:  # no vector of this layout yet: every row is missing
            x = np.full((n, len(lay.columns)), np.nan)
        if x.shape[1] != len(lay.columns):
            raise ValueError(
                f"{lay.view} vectors hold {x.shape[1]} values, the layout {len(lay.columns)}"
            )
        fresh = ev == b
        age = np.where(ev >= 0, (b - ev) / 1e9, np.inf)
        ret = x[:, lay.index("ret_b1")]
        # prepared after the previous boundary (RecentVol.prepare): a gather here
        rvol, vol_slots = self.vol.known((self.fc.market.local_day(b) - EPOCH).days, syms)
        t_vol = time.perf_counter()
        ps = np.full((n, 5), np.nan)
        pl = np.full((n, 3), np.nan)
        dirn = np.full(n, np.nan)  # the direction model's prediction (NaN: none, not scored)
        # a vector newer than b (a replay running ahead) is not b's: never score the future
        ok = (age >= 0) & (age <= self.dc.max_feature_age.total_seconds()) & (ev >= 0)
        age = np.where(age < 0, np.inf, age)
        out_of = {"short": ps, "long": pl, "direction": dirn}
        hot, later = self._model_split()
        x_ok = x if ok.all() else x[ok]
        if hot and ok.any():
            for name, v in self.models.predict(x_ok, hot).items():  # type: ignore[union-attr]
                out_of[name][ok] = v
        t_model = time.perf_counter()
        # the direction model's prediction is the decision score when it is the decision model
        direction = dirn if "direction" in hot else None
        p_short = ps if "short" in hot else None  # a model not evaluated yet is not read
        p_long = pl if "long" in hot else None
        counts = None
        if self.cfg.scorers > 1:
            counts = self.breaker.total(
                b, breaker_counts(self.dc, p_short, p_long, age, direction)
            )
        t_cb = time.perf_counter()
        d = decide(
            self.dc,
            self.state,
            b,
            syms,
            p_short=p_short,
            p_long=p_long,
            last_return=ret,
            recent_vol=rvol,
            feature_age=age,
            breaker_counts=counts,
            direction=direction,
        )
        t_decide = time.perf_counter()
        parts = {
            "until_scorer_ms": (start_ns - close_wall_ns) / 1e6,
            "read_ms": (t_read - t0) * 1e3,
            "vol_ms": (t_vol - t_read) * 1e3,
            "models_ms": (t_model - t_vol) * 1e3,
            "breaker_ms": (t_cb - t_model) * 1e3,
            "decide_ms": (t_decide - t_cb) * 1e3,
        }
        latency = self._publish(b, syms, d, close_wall_ns, parts, direction)
        # after publishing: the models the decision did not read (kept with the signals)
        t_later = time.perf_counter()
        if later and ok.any():
            for name, v in self.models.predict(x_ok, later).items():  # type: ignore[union-attr]
                out_of[name][ok] = v
        parts["models_after_publish_ms"] = (time.perf_counter() - t_later) * 1e3
        self.vol.append(vol_slots, ret, fresh)
        metrics.boundary_scored(
            b,
            ev,
            ok,
            d.circuit_breaker_tripped,
            d.gate_counts(),
            {
                "wait": parts["until_scorer_ms"] / 1e3,
                "read": t_read - t0,
                "recent_vol": t_vol - t_read,
                "models": t_model - t_vol,
                "breaker": t_cb - t_model,
                "decide": t_decide - t_cb,
                "publish": parts["publish_ms"] / 1e3,
                "models_after_publish": parts["models_after_publish_ms"] / 1e3,
            },
        )
        out = Scored(b, syms, d, ps, pl, ev, self.version, latency, parts, dirn)
        if self.signals is not None:
            self.signals.write(out)
        market = {k: x[:, lay.index(k)] for k in MARKET_COLUMNS}
        rows = {"symbols": syms, "fresh": fresh, "decision": d.decision, "gate": d.gate,
                "score": d.score, "ret": ret, "vol": rvol, **market}  # fmt: skip
        self._commit(b, rows, out.model_version or "")
        self.vol.prepare()  # the next boundary's volatilities, off its hot path
        return out

    def _model_split(self) -> tuple[list[str], list[str]]:
        """(models the decision reads: evaluated before publishing, the others: after), by
        :func:`tickml.decision.inputs_read` under this scorer's decision config."""
        if self.models is None:
            return [], []
        by_direction = self.models.decision_model == "direction"
        reads = inputs_read(self.dc, by_direction)
        names = [m for m in self.models.models if m in _MODEL_INPUT]  # what Scored stores
        hot = [m for m in names if _MODEL_INPUT[m] in reads]
        return hot, [m for m in names if m not in hot]

    def _publish(
        self,
        b: int,
        syms: list[str],
        d: Decisions,
        close_wall_ns: int,
        parts: dict[str, float],
        direction: np.ndarray | None = None,
    ) -> float:
        """Actionable signals to the stream (latency ends when they are sent; with a direction
        model each carries its prediction, field ``direction``), then the boundary's record
        with the latency and its parts."""
        t0 = time.perf_counter()
        act = np.flatnonzero(d.decision != 0)
        version = (self.version or "").encode()
        if len(act):
            fields: list[tuple[bytes, bytes | list[bytes]]] = [
                (b"symbol", [syms[i].encode() for i in act.tolist()]),
                (b"b", b"%d" % b),
                (b"decision", d.decision_names[act].astype("S").tolist()),
                (b"gate", d.gate_names[act].astype("S").tolist()),
                (b"score", [repr(v).encode() for v in d.score[act].tolist()]),
                (b"model_version", version),
            ]
            if direction is not None:
                fields.append((b"direction", [repr(v).encode() for v in direction[act].tolist()]))
            stream = self.cfg.key("signals").encode()
            roundtrip(self.r, xadd_commands(stream, 100_000, fields, len(act)), len(act))
        latency = (time.time_ns() - close_wall_ns) / 1e9
        parts["publish_ms"] = (time.perf_counter() - t0) * 1e3
        record = {
            "b": b,
            "scorer": self.name,
            "scored": len(syms),
            "actionable": len(act),
            "latency_ms": f"{latency * 1e3:.3f}",
            "model_version": version.decode(),
            "runtime": self.models.runtime if self.models else "",
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
    index: int = 0,
) -> None:
    """Follow the boundary announcements of this scorer's shards until ``stop``; score each
    boundary once (scorer ``index`` of ``config.scorers``)."""
    scorer: Scorer | None = None
    own = set(scorer_shards(config, index))
    last_id = b"0-0"  # the announcements stream is capped; done boundaries are skipped
    seen: dict[int, dict[int, tuple[int, str, frozenset[str]]]] = {}  # b -> shard -> announce
    first_wall: dict[int, tuple[float, int]] = {}
    done = -1
    backoff = 0.1
    last_key = config.key(scorer_name(config, index), "last")
    tune_allocator()  # megabytes per read: keep them mapped (live.wire.tune_allocator)
    while not stop.is_set():
        try:
            if scorer is None:
                scorer = Scorer(config, registry_root, decision, feature_config, index=index)
                scorer.warm_up()
                gc.freeze()  # the loaded models and state: out of every later collection
                done = int(scorer.r.get(last_key) or -1)
                metrics.scorer_started()
                scorer.r.hset(config.key("ready"), scorer.name, time.time_ns())
            resp_ = scorer.r.xread({config.key("boundaries"): last_id}, block=50, count=1000)
            for _, entries in resp_ or []:
                for eid, f in entries:
                    last_id = eid
                    b, shard = int(f[b"b"]), int(f[b"shard"])
                    if b <= done or shard not in own:
                        continue
                    lays = frozenset(f.get(b"layouts", b"").decode().split(",")) - {""}
                    champ = f[b"champion"].decode() if b"champion" in f else UNKNOWN
                    seen.setdefault(b, {})[shard] = (int(f[b"rows"]), champ, lays)
                    first_wall.setdefault(b, (time.monotonic(), int(f[b"close_wall"])))
            for b in sorted(seen):
                complete = len(seen[b]) >= len(own)
                waited = time.monotonic() - first_wall[b][0] > config.boundary_wait_s
                if not (complete or waited):
                    break
                ann = list(seen[b].values())
                champs = {a[1] for a in ann}
                announced = Announced(
                    champs.pop() if len(champs) == 1 else None,
                    frozenset.intersection(*(a[2] for a in ann)),
                )
                if sum(a[0] for a in ann) or config.scorers > 1:
                    res = scorer.score(b, first_wall[b][1], announced)
                    if callable(on_scored):
                        on_scored(res)
                done = b
                scorer.r.set(last_key, b)
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
