"""A seeded market simulator that produces canonical ticks with a known, testable structure.

Per trading day and symbol, on a one-second grid of the session (default 09:30-16:00
America/New_York):

* **regime**: a hidden Markov chain shared by the market, ``calm`` / ``volatile`` /
  ``trending``, switching ``regime_switches_per_day`` times a day on average (exponential spell
  lengths, the next regime drawn uniformly among the other two). Volatile: higher volatility,
  more events, wider spreads. Trending: a drift whose sign is drawn per symbol and spell.
* **latent signal** ``s``: an AR(1)/Ornstein-Uhlenbeck process per symbol with unit variance
  and time constant ``signal_horizon_s``. It adds a drift ``kappa * s`` to the log price,
  with ``kappa`` set so that ``E[forward return over the horizon | s] = signal_strength *
  sigma_H * s`` where ``sigma_H`` is the calm-regime return volatility over the horizon: the
  oracle information coefficient (rank correlation of ``s`` with the forward return) is
  about ``signal_strength / sqrt(1 + signal_strength**2)`` in calm periods, lower when volatile
  periods add noise, and 0 with ``signal_strength=0``. The signal is observable in the ticks:
  trades are buys with probability ``sigmoid(2 * signal_flow_sensitivity * s)`` (order flow)
  and the mean top-of-book sizes tilt by ``exp(+-signal_imbalance_sensitivity * s)`` (book
  imbalance); those links exist whatever the strength, so with strength 0 they are a decoy.
* **volatility shape**: the return volatility of every second is also multiplied by an
  intraday profile (``vol_shape``: flat by default, U-shaped or late-peaking, averaging 1 over
  the session; :func:`vol_profile`); the signal's drift is not, so the signal-to-noise ratio,
  hence the oracle IC, varies with the time of day.
* **leader**: the followers' log returns include ``leader_beta`` times the leader's return
  ``leader_lag_s`` seconds earlier.
* **events**: an inhomogeneous Poisson process with intensity ``base_intensity`` x a per-symbol
  activity factor x a U-shaped intraday profile x the regime's multiplier. A share
  ``trade_share`` of them are trades (at the ask for a buy, the bid for a sell; heavy-tailed
  Pareto sizes in lots and a few block trades), the rest quote updates. Every event carries the
  book at its time: bid/ask on the tick grid around the efficient price with a spread of 1-3
  ticks, sizes geometric in lots. Books are never crossed and prices stay positive.

Everything is vectorized per symbol with numpy (the AR(1) recursion in closed form by chunks),
and seeded: the same ``(config, day)`` gives identical ticks; the seed is mixed with the date
and the symbol name, so adding symbols does not change the others. Days are independent (each
day opens at the symbol's base price times a small random factor: no overnight continuity).

:func:`simulate_day` returns :class:`SimDay` with canonical ``ticks`` and a ``latent`` frame
(symbol, ts, regime, signal, mid = efficient price, fwd_return = mid return over the next
``signal_horizon_s``) so tests and benchmarks can compute the oracle IC.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field, model_validator

from tickml.market import OnMarket
from tickml.schema import TICK_COLUMNS

log = logging.getLogger(__name__)

REGIMES: tuple[str, ...] = ("calm", "volatile", "trending")
CALM, VOLATILE, TRENDING = 0, 1, 2


class SimConfig(OnMarket):
    """Parameters of the simulated market (all with defaults; one trading day per call)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_symbols: int = Field(20, ge=1, le=20_000, description="number of symbols")
    symbols: list[str] | None = Field(
        None, description="symbol names (default SIM000, SIM001, ...); sets n_symbols"
    )
    seed: int = Field(7, description="base seed, mixed with the date and each symbol name")
    tick_size: float = Field(0.01, gt=0, description="price grid step")
    base_price_range: tuple[float, float] = Field(
        (20.0, 200.0), description="each symbol's base price is log-uniform in this range"
    )
    base_intensity: float = Field(
        1.0, gt=0, description="mean events per second per symbol over the session"
    )
    activity_dispersion: float = Field(
        0.5, ge=0, description="sd of the log of each symbol's activity factor (mean 1)"
    )
    u_shape: float = Field(
        3.0,
        ge=0,
        description="intraday U-shape: intensity (1 + u (2x-1)^2) / (1 + u/3) at session "
        "fraction x, so open/close run at (1+u)/(1+u/3) and midday at 1/(1+u/3) of the mean",
    )
    spread_probs: tuple[float, float, float] = Field(
        (0.7, 0.22, 0.08), description="P(spread = 1, 2, 3 ticks) in calm and trending regimes"
    )
    spread_probs_volatile: tuple[float, float, float] = Field(
        (0.35, 0.4, 0.25), description="P(spread = 1, 2, 3 ticks) in the volatile regime"
    )
    lot_size: float = Field(100.0, gt=0, description="shares per lot; all sizes are lots")
    book_size_lots: float = Field(
        5.0, ge=1, description="mean top-of-book size per side, in lots (geometric)"
    )
    trade_share: float = Field(0.3, gt=0, lt=1, description="share of events that are trades")
    trade_size_alpha: float = Field(
        1.6, gt=1, description="Pareto tail index of trade sizes in lots (smaller = heavier)"
    )
    max_trade_lots: float = Field(500.0, ge=1, description="cap of ordinary trade sizes, lots")
    block_trade_prob: float = Field(
        0.002, ge=0, le=1, description="probability that a trade is a block trade"
    )
    block_trade_lots: float = Field(
        200.0, ge=1, description="minimum block trade size, lots (at most 10x this)"
    )
    daily_vol: float = Field(
        0.015, gt=0, description="calm-regime return volatility over one session"
    )
    vol_shape: Literal["flat", "u", "late"] = Field(
        "flat",
        description="intraday shape of the return volatility: flat; u (higher at the open and "
        "the close: (1 + a (2x-1)^2) / (1 + a/3) at session fraction x); late (rising towards "
        "the close: (1 + a x^2) / (1 + a/3)); both average 1 over the session",
    )
    vol_shape_amplitude: float = Field(
        2.0, ge=0, description="the amplitude a of vol_shape (0 = flat)"
    )
    regime_switches_per_day: float = Field(
        4.0, ge=0, description="expected regime switches per session (hidden Markov chain)"
    )
    regime_vol: tuple[float, float, float] = Field(
        (1.0, 2.5, 1.2), description="volatility multiplier of calm, volatile, trending"
    )
    regime_intensity: tuple[float, float, float] = Field(
        (1.0, 1.6, 1.2), description="event intensity multiplier of calm, volatile, trending"
    )
    trend_drift: float = Field(
        2.0, ge=0, description="trending-regime drift, in daily_vol per session length"
    )
    signal_strength: float = Field(
        0.3,
        ge=0,
        description="expected forward return over signal_horizon_s per unit latent signal, "
        "in calm-regime return sd over that horizon (0 = nothing predictable)",
    )
    signal_horizon_s: float = Field(
        300.0, gt=0, description="horizon (s) of the signal's effect = its OU time constant"
    )
    signal_flow_sensitivity: float = Field(
        0.5, ge=0, description="trade sign: P(buy) = sigmoid(2 * this * signal)"
    )
    signal_imbalance_sensitivity: float = Field(
        0.5, ge=0, description="mean bid/ask sizes scale by exp(+-this * signal)"
    )
    leader: str | None = Field(None, description="leader symbol (default: the first symbol)")
    leader_lag_s: int = Field(30, ge=1, description="followers echo the leader this late (s)")
    leader_beta: float = Field(0.5, description="followers' loading on the lagged leader return")
    latent_every_s: int = Field(1, ge=1, description="spacing (s) of the rows in SimDay.latent")

    @model_validator(mode="before")
    @classmethod
    def _symbols_set_count(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("symbols") is not None:
            n = len(data["symbols"])
            if "n_symbols" in data and data["n_symbols"] != n:
                raise ValueError(f"n_symbols={data['n_symbols']} but {n} symbols named")
            data = {**data, "n_symbols": n}
        return data

    @model_validator(mode="after")
    def _check(self) -> SimConfig:
        names = self.symbol_names
        if len(set(names)) != len(names) or any(not s.strip() for s in names):
            raise ValueError("symbols must be unique and non-empty")
        if self.leader is not None and self.leader not in names:
            raise ValueError(f"leader {self.leader!r} is not one of the symbols")
        lo, hi = self.base_price_range
        if not 0 < lo <= hi:
            raise ValueError("base_price_range must be (low, high) with 0 < low <= high")
        for probs in (self.spread_probs, self.spread_probs_volatile):
            if min(probs) < 0 or not math.isclose(sum(probs), 1.0, abs_tol=1e-9):
                raise ValueError("spread probabilities must be >= 0 and sum to 1")
        return self

    @property
    def symbol_names(self) -> list[str]:
        if self.symbols is not None:
            return [s.strip().upper() for s in self.symbols]
        return [f"SIM{i:03d}" for i in range(self.n_symbols)]

    @property
    def leader_name(self) -> str:
        return self.leader.strip().upper() if self.leader else self.symbol_names[0]


@dataclass
class SimDay:
    """One simulated day: canonical ticks (sorted by symbol, ts) and the hidden state."""

    day: dt.date
    ticks: pd.DataFrame
    latent: pd.DataFrame


# ------------------------------------------------------------------ building blocks


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([k & 0xFFFFFFFF for k in keys]))


def _sym_key(symbol: str) -> int:
    return zlib.crc32(symbol.encode("utf-8"))


def _symbol_static(cfg: SimConfig, symbol: str) -> tuple[float, float]:
    """A symbol's base price and activity factor: the same every day."""
    rng = _rng(cfg.seed, _sym_key(symbol), 0xBA5E)
    lo, hi = cfg.base_price_range
    base = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    disp = cfg.activity_dispersion
    return base, math.exp(rng.normal(-0.5 * disp * disp, disp))


def _ar1(eps: np.ndarray, a: float, s0: float) -> np.ndarray:
    """s[t] = a s[t-1] + sqrt(1 - a^2) eps[t] (s[-1] = s0), in closed form by chunks."""
    n = len(eps)
    out = np.empty(n)
    b = math.sqrt(max(1.0 - a * a, 0.0))
    if a <= 0.0:
        return b * eps
    chunk = max(1, int(50.0 / max(-math.log(a), 1e-12)))  # a^-chunk stays far from overflow
    prev = s0
    for lo in range(0, n, chunk):
        e = eps[lo : lo + chunk]
        j = np.arange(1, len(e) + 1)
        pw = a**j
        seg = pw * (prev + np.cumsum(b * e / pw))
        out[lo : lo + len(e)] = seg
        prev = float(seg[-1])
    return out


def _regime_path(cfg: SimConfig, n_sec: int, rng: np.random.Generator) -> np.ndarray:
    """Regime per second: exponential spells, the next regime uniform among the others."""
    regime = np.empty(n_sec, dtype=np.int8)
    state = int(rng.integers(0, 3))
    if cfg.regime_switches_per_day <= 0:
        regime[:] = state
        return regime
    mean_spell = n_sec / cfg.regime_switches_per_day
    t = 0
    while t < n_sec:
        spell = max(1, int(rng.exponential(mean_spell)))
        regime[t : t + spell] = state
        t += spell
        state = (state + int(rng.integers(1, 3))) % 3
    return regime


def vol_profile(cfg: SimConfig, n_sec: int) -> np.ndarray:
    """The intraday volatility multiplier of each second (:attr:`SimConfig.vol_shape`)."""
    x = (np.arange(n_sec) + 0.5) / n_sec
    a = cfg.vol_shape_amplitude
    if cfg.vol_shape == "u":
        return (1.0 + a * (2.0 * x - 1.0) ** 2) / (1.0 + a / 3.0)
    if cfg.vol_shape == "late":
        return (1.0 + a * x * x) / (1.0 + a / 3.0)
    return np.ones(n_sec)


def _decimals(tick: float) -> int:
    exp = Decimal(repr(tick)).normalize().as_tuple().exponent
    return max(0, -int(exp)) if isinstance(exp, int) else 8


@dataclass
class _Paths:
    r: np.ndarray  # log return during each second
    signal: np.ndarray  # latent signal at the start of each second
    logp0: float


def _symbol_paths(
    cfg: SimConfig,
    day: dt.date,
    symbol: str,
    regime: np.ndarray,
    spells: np.ndarray,
    leader_r: np.ndarray | None,
) -> _Paths:
    n = len(regime)
    key = _sym_key(symbol)
    base, _ = _symbol_static(cfg, symbol)
    rng = _rng(cfg.seed, day.toordinal(), key, 1)
    logp0 = math.log(base) + rng.normal(0.0, 2.0 * cfg.daily_vol)
    sigma = cfg.daily_vol / math.sqrt(n)  # calm, per second
    tau = cfg.signal_horizon_s
    a = math.exp(-1.0 / tau)
    signal = _ar1(rng.standard_normal(n), a, float(rng.standard_normal()))
    h = cfg.signal_horizon_s
    kappa = cfg.signal_strength * sigma * math.sqrt(h) / (tau * (1.0 - math.exp(-h / tau)))
    vol = sigma * np.asarray(cfg.regime_vol)[regime]
    if cfg.vol_shape != "flat":
        vol = vol * vol_profile(cfg, n)
    direction = rng.choice([-1.0, 1.0], size=int(spells.max()) + 1)[spells]
    drift = np.where(regime == TRENDING, cfg.trend_drift * cfg.daily_vol / n * direction, 0.0)
    r = drift + kappa * signal + vol * rng.standard_normal(n)
    if leader_r is not None and cfg.leader_beta != 0.0:
        lag = cfg.leader_lag_s
        r[lag:] += cfg.leader_beta * leader_r[: n - lag]
    return _Paths(r=r, signal=signal, logp0=logp0)


def _symbol_ticks(
    cfg: SimConfig,
    day: dt.date,
    symbol: str,
    regime: np.ndarray,
    paths: _Paths,
    open_ns: int,
) -> dict[str, np.ndarray]:
    n = len(regime)
    _, activity = _symbol_static(cfg, symbol)
    rng = _rng(cfg.seed, day.toordinal(), _sym_key(symbol), 2)
    x = (np.arange(n) + 0.5) / n
    profile = (1.0 + cfg.u_shape * (2.0 * x - 1.0) ** 2) / (1.0 + cfg.u_shape / 3.0)
    lam = cfg.base_intensity * activity * profile * np.asarray(cfg.regime_intensity)[regime]
    counts = rng.poisson(lam)
    m = int(counts.sum())
    t = np.sort(np.repeat(np.arange(n, dtype=np.float64), counts) + rng.random(m))
    sec = np.minimum(t.astype(np.int64), n - 1)
    frac = t - sec
    logp_start = paths.logp0 + np.concatenate([[0.0], np.cumsum(paths.r)[:-1]])
    p = np.exp(logp_start[sec] + frac * paths.r[sec])
    s = paths.signal[sec]
    reg = regime[sec]
    # book: spread 1-3 ticks around the efficient price, on the grid, never crossed
    u = rng.random(m)
    cum_calm = np.cumsum(cfg.spread_probs)
    cum_vol = np.cumsum(cfg.spread_probs_volatile)
    spread = np.where(
        reg == VOLATILE,
        1 + (u > cum_vol[0]).astype(np.int64) + (u > cum_vol[1]),
        1 + (u > cum_calm[0]).astype(np.int64) + (u > cum_calm[1]),
    )
    tick = cfg.tick_size
    bid_t = np.maximum(np.floor(p / tick - spread / 2.0 + 0.5).astype(np.int64), 1)
    ask_t = bid_t + spread
    nd = _decimals(tick)
    bid = np.round(bid_t * tick, nd)
    ask = np.round(ask_t * tick, nd)
    tilt = np.exp(cfg.signal_imbalance_sensitivity * s)
    mean_bid = np.maximum(cfg.book_size_lots * tilt, 1.0)
    mean_ask = np.maximum(cfg.book_size_lots / tilt, 1.0)
    lot = cfg.lot_size
    bid_size = lot * rng.geometric(1.0 / mean_bid)
    ask_size = lot * rng.geometric(1.0 / mean_ask)
    # trades: side from the order flow signal, heavy-tailed sizes, a few blocks
    is_trade = rng.random(m) < cfg.trade_share
    buy = rng.random(m) < 1.0 / (1.0 + np.exp(-2.0 * cfg.signal_flow_sensitivity * s))
    lots = np.minimum(np.floor(1.0 + rng.pareto(cfg.trade_size_alpha, m)), cfg.max_trade_lots)
    block = rng.random(m) < cfg.block_trade_prob
    block_lots = np.minimum(1.0 + rng.pareto(2.0, m), 10.0) * cfg.block_trade_lots
    lots = np.where(block, np.floor(block_lots), lots)
    price = np.where(is_trade, np.where(buy, ask, bid), np.nan)
    size = np.where(is_trade, lot * lots, 0.0)
    # (open, close]: a tick exactly at the open would belong to the day before when the
    # session is the whole day (tickml.market)
    ts = open_ns + np.maximum(np.round(t * 1e9).astype(np.int64), 1)
    return {
        "ts": ts,
        "bid": bid,
        "ask": ask,
        "bid_size": bid_size.astype(np.float64),
        "ask_size": ask_size.astype(np.float64),
        "price": price,
        "size": size,
    }


def _seq_sorted(ts_ns: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """:func:`~tickml.schema.derive_seq` (``ts_ms * 1000 + k``) for ticks already sorted by
    symbol then ts, given the number of ticks of each symbol (no hashing of names)."""
    ms = ts_ns // 1_000_000
    n = len(ms)
    new_run = np.ones(n, dtype=bool)
    if n:
        new_run[1:] = ms[1:] != ms[:-1]
        new_run[np.cumsum(lengths)[:-1]] = True  # a new symbol starts a new run
    idx = np.arange(n)
    k = idx - np.maximum.accumulate(np.where(new_run, idx, 0))
    if n and k.max() >= 1000:
        raise ValueError("more than 1000 events in one millisecond: lower base_intensity")
    return ms * 1000 + k


# ------------------------------------------------------------------ public API


def simulate_day(cfg: SimConfig, day: dt.date) -> SimDay:
    """Simulate one session of every symbol (any calendar day; callers pick trading days)."""
    _, _, open_ns, close_ns = cfg.market.day_bounds(day)
    n = int((close_ns - open_ns) // 1_000_000_000)
    market = _rng(cfg.seed, day.toordinal(), 0x5EED)
    regime = _regime_path(cfg, n, market)
    spells = np.concatenate([[0], np.cumsum(regime[1:] != regime[:-1])])
    names = cfg.symbol_names
    leader = cfg.leader_name
    order = [leader] + [s for s in names if s != leader]
    paths: dict[str, _Paths] = {}
    for sym in order:
        lead = None if sym == leader else paths[leader].r
        paths[sym] = _symbol_paths(cfg, day, sym, regime, spells, lead)
    tick_parts: list[pd.DataFrame] = []
    latent_parts: list[pd.DataFrame] = []
    every = cfg.latent_every_s
    h = int(round(cfg.signal_horizon_s))
    grid = np.arange(0, n, every)
    grid_ts = pd.to_datetime(open_ns + grid * 1_000_000_000, unit="ns", utc=True)
    regime_names = pd.Categorical.from_codes(regime[grid].tolist(), categories=pd.Index(REGIMES))
    for sym in sorted(names):
        cols = _symbol_ticks(cfg, day, sym, regime, paths[sym], open_ns)
        frame = pd.DataFrame(cols)
        frame.insert(0, "symbol", sym)
        tick_parts.append(frame)
        p = paths[sym]
        logp = p.logp0 + np.concatenate([[0.0], np.cumsum(p.r)])  # n + 1 points
        mid = np.exp(logp)
        fwd = np.full(len(grid), np.nan)
        ok = grid + h <= n
        fwd[ok] = mid[grid[ok] + h] / mid[grid[ok]] - 1.0
        latent_parts.append(
            pd.DataFrame(
                {
                    "symbol": sym,
                    "ts": grid_ts,
                    "regime": regime_names,
                    "signal": p.signal[grid],
                    "mid": mid[grid],
                    "fwd_return": fwd,
                }
            )
        )
    ticks = pd.concat(tick_parts, ignore_index=True)
    ts_ns = ticks["ts"].to_numpy()
    ticks["ts"] = pd.to_datetime(ts_ns, unit="ns", utc=True)
    ticks.insert(2, "seq", _seq_sorted(ts_ns, np.array([len(f) for f in tick_parts])))
    ticks = ticks[list(TICK_COLUMNS)]
    latent = pd.concat(latent_parts, ignore_index=True)
    log.debug("simulated %s: %d ticks, %d symbols", day, len(ticks), len(names))
    return SimDay(day=day, ticks=ticks, latent=latent)


def simulate(cfg: SimConfig, days: Iterable[dt.date]) -> Iterator[tuple[dt.date, SimDay]]:
    """Simulate each day in turn (lazily)."""
    for day in days:
        yield day, simulate_day(cfg, day)


def oracle_ic(latent: pd.DataFrame, every_s: int = 60) -> float:
    """Mean over time of the cross-sectional rank correlation of the latent signal with the
    forward return, sampled every ``every_s`` seconds (what a perfect model would score)."""
    lat = latent.dropna(subset=["fwd_return"])
    secs = lat["ts"].astype("int64") // 1_000_000_000
    lat = lat[(secs - secs.min()) % every_s == 0]
    ics = []
    for _, g in lat.groupby("ts", sort=True):
        if len(g) >= 3:
            ics.append(g["signal"].rank().corr(g["fwd_return"].rank()))
    return float(np.nanmean(ics)) if ics else float("nan")
