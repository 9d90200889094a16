"""Tick feeds for the live path: stored ticks replayed, the simulator, (Binance: live.binance_ws).

A feed yields :data:`FeedEvent` s in order: :class:`Ticks` (a batch of canonical, validated ticks:
the :mod:`tickml.schema` columns incl. ``seq``, ``ts`` UTC) or :class:`Clock` (``t_ns``: every
tick of this feed with ``ts <= t_ns`` has been yielded). Clock markers sit on the sampling grid
of a :class:`~tickml.features.config.FeatureConfig` (:func:`boundaries`), so a batch never
straddles a grid time: the materializer applies a batch, and on ``Clock(b)`` writes the rows of
``b``. Batches are cut with ``np.searchsorted`` on sorted timestamps, never tick by tick.
:class:`ReleaseBuffer` is the same cutting for live feeds, behind a watermark.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tickml.features.config import FeatureConfig
from tickml.market import utc_ns
from tickml.schema import TICK_COLUMNS

log = logging.getLogger(__name__)

#: wall seconds between paced batches (speed=k cuts batches every PACE_S * k market seconds)
PACE_S = 0.05


@dataclass
class Clock:
    """Every tick of the feed with ``ts <= t_ns`` has been yielded (``wall_ns``: when known)."""

    t_ns: int
    wall_ns: int


@dataclass
class Ticks:
    """A batch of canonical ticks (valid rows only), in (ts, seq) order within each symbol."""

    frame: pd.DataFrame
    wall_ns: int


FeedEvent = Ticks | Clock


def boundaries(config: FeatureConfig, t0_ns: int, t1_ns: int) -> np.ndarray:
    """Grid times ``b`` with ``t0_ns < b <= t1_ns`` (UTC ns, int64, ascending).

    The grid is the feature engine's: multiples of ``config.interval`` from each local midnight
    of ``config.market`` (day = (midnight, next midnight]), in and out of the session alike (the
    engine decides which grid times produce rows).
    """
    t0_ns, t1_ns = int(t0_ns), int(t1_ns)
    if t1_ns <= t0_ns:
        return np.zeros(0, dtype=np.int64)
    step = config.interval_ns
    parts = []
    for day in config.market.days_between(t0_ns + 1, t1_ns):
        start, end, _, _ = config.market.day_bounds(day)
        j0 = max(1, (t0_ns - start) // step + 1)
        j1 = min((end - start) // step, (t1_ns - start) // step)
        if j1 >= j0:
            parts.append(start + step * np.arange(j0, j1 + 1, dtype=np.int64))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def closing_boundary(config: FeatureConfig, t_ns: int) -> int:
    """The first grid time ``>= t_ns`` (the close of the interval holding ``t_ns``)."""
    b = boundaries(config, int(t_ns) - 1, int(t_ns) + 2 * config.interval_ns + 3_600_000_000_000)
    return int(b[0])


def plan_batches(
    ts: np.ndarray,
    bounds: np.ndarray,
    batch_ticks: int,
    pace_ns: int | None = None,
    extra_cuts: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut sorted timestamps into batches: ``(starts, ends, clock_pos)``.

    Batch ``i`` is ``ts[starts[i]:ends[i]]`` (1..batch_ticks ticks); ``Clock(bounds[k])`` goes
    after the first ``clock_pos[k]`` batches. No batch holds ticks on both sides of a boundary;
    with ``pace_ns`` batches are also cut where ``(ts - ts[0]) // pace_ns`` changes, and at the
    positions ``extra_cuts``.
    """
    n = len(ts)
    cut_b = np.searchsorted(ts, bounds, side="right")
    pts = [np.array([0, n]), cut_b]
    if extra_cuts is not None:
        pts.append(np.clip(np.asarray(extra_cuts, dtype=np.int64), 0, n))
    if pace_ns and n:
        bucket = (ts - ts[0]) // int(pace_ns)
        pts.append(np.flatnonzero(bucket[1:] != bucket[:-1]) + 1)
    cuts = np.unique(np.concatenate(pts))
    seg = np.diff(cuts)
    k = -(-seg // int(batch_ticks))
    first = np.repeat(cuts[:-1], k)
    within = np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
    starts = first + within * int(batch_ticks)
    ends = np.minimum(starts + int(batch_ticks), np.repeat(cuts[1:], k))
    return starts, ends, np.searchsorted(ends, cut_b, side="right")


class ReleaseBuffer:
    """A live feed's reorder buffer: validated ticks wait here until the feed's watermark passes
    them, then leave in ``(ts, seq)`` order, cut at the grid times with a Clock after each.

    ``released``: every tick with ``ts <= released`` has been yielded (a later one is late);
    clock markers start at the first grid time after the earliest tick added before the first
    release, and a final release ends with the grid time closing the newest tick.
    """

    def __init__(self, config: FeatureConfig, batch_ticks: int = 2000) -> None:
        self.config, self.batch_ticks = config, int(batch_ticks)
        self.frame: pd.DataFrame | None = None
        self.released: int | None = None
        self.clock_from: int | None = None

    def late(self, ts_ns: np.ndarray) -> np.ndarray:
        return ts_ns <= self.released if self.released is not None else np.zeros(len(ts_ns), bool)

    def add(self, ticks: pd.DataFrame) -> None:
        if ticks.empty:
            return
        if self.released is None:
            first = int(ticks["ts"].min().value) - 1
            self.clock_from = first if self.clock_from is None else min(self.clock_from, first)
        self.frame = ticks if self.frame is None else pd.concat([self.frame, ticks])

    def release(self, w: int, wall_ns: int, final: bool = False) -> list[FeedEvent]:
        """Yield the ticks with ``ts <= w`` and the clocks up to ``w`` (final: up to the grid
        time closing ``w``); ``w`` never goes back."""
        if self.clock_from is None:
            return []
        w = w if self.released is None else max(w, self.released)
        buf = self.frame
        ts = np.zeros(0, np.int64) if buf is None else utc_ns(buf["ts"])
        order = np.lexsort((buf["seq"].to_numpy(), ts)) if buf is not None else ts
        ts = ts[order]
        n = int(np.searchsorted(ts, w, side="right"))
        out = buf.iloc[order[:n]].reset_index(drop=True) if buf is not None else pd.DataFrame()
        self.frame = buf.iloc[order[n:]] if buf is not None and n < len(ts) else None
        self.released = w
        clock_to = closing_boundary(self.config, w) if final else w
        bounds = boundaries(self.config, self.clock_from, clock_to)
        self.clock_from = max(self.clock_from, clock_to)
        starts, ends, clock_pos = plan_batches(ts[:n], bounds, self.batch_ticks)
        return [
            Clock(int(bounds[x]), wall_ns) if s < 0 else Ticks(out.iloc[s:x], wall_ns)
            for s, x in interleave(starts, ends, clock_pos, bounds)
        ]


def interleave(
    starts: np.ndarray, ends: np.ndarray, clock_pos: np.ndarray, bounds: np.ndarray
) -> Iterator[tuple[int, int]]:
    """The order of :func:`plan_batches`' output: ``(start, end)`` of a batch, ``(-1, k)`` for
    ``Clock(bounds[k])``."""
    k, nb = 0, len(bounds)
    for i in range(len(starts) + 1):
        while k < nb and clock_pos[k] <= i:
            yield -1, k
            k += 1
        if i < len(starts):
            yield int(starts[i]), int(ends[i])


def _check_ticks(ticks: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in TICK_COLUMNS if c not in ticks.columns]
    if missing:
        raise ValueError(f"ticks lack canonical columns {missing} (see tickml.schema)")
    ts = ticks["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise ValueError(f"ticks.ts must be tz-aware (UTC), not {ts.dtype}")
    if str(ts.dt.tz) != "UTC" or ts.dtype.unit != "ns":
        ticks = ticks.assign(ts=ts.dt.tz_convert("UTC").astype("datetime64[ns, UTC]"))
    return ticks if list(ticks.columns) == list(TICK_COLUMNS) else ticks[list(TICK_COLUMNS)]


class ReplayFeed:
    """Stored ticks (e.g. ``load_day(...).ticks`` or ``TickLake.read_day``) as a feed.

    Ticks of all symbols are merged in ``(ts, seq)`` order (ties across symbols keep the input
    order). ``speed=None`` yields as fast as possible; ``speed=k`` replays at k x real time: a
    batch is yielded when its last tick's market time is due (scaled) and ``Clock(b)`` when
    ``b`` is due, with batches cut every ``PACE_S * k`` market seconds. ``close_real_s`` (with
    ``speed``): the this-many market seconds on each side of every grid time are replayed at
    real time (1x, batches every ``PACE_S``), so the workers meet each close, and score it,
    under a live arrival rate while the rest of the interval runs k times faster (a benchmark
    of close -> signals that does not take an hour per 60 boundaries). ``max_seconds`` keeps
    the first ``max_seconds`` of market time from the first tick. Clock markers: every grid
    time from the first tick to the first grid time at or after the last tick (the final one).
    """

    name = "replay"

    def __init__(
        self,
        ticks: pd.DataFrame,
        feature_config: FeatureConfig | None = None,
        speed: float | None = None,
        batch_ticks: int = 2000,
        symbols: Sequence[str] | None = None,
        max_seconds: float | None = None,
        close_real_s: float = 0.0,
    ) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"speed must be > 0 (or None: as fast as possible), not {speed}")
        if not (close_real_s >= 0 and np.isfinite(close_real_s)):
            raise ValueError(f"close_real_s must be >= 0, not {close_real_s}")
        self.close_real_ns = int(close_real_s * 1e9) if speed is not None else 0
        if batch_ticks < 1:
            raise ValueError(f"batch_ticks must be >= 1, not {batch_ticks}")
        self.config = feature_config or FeatureConfig()
        self.speed = speed
        self.batch_ticks = int(batch_ticks)
        ticks = _check_ticks(ticks)
        if symbols is not None:
            ticks = ticks[ticks["symbol"].isin(list(symbols))]
        ts = utc_ns(ticks["ts"])
        order = np.lexsort((ticks["seq"].to_numpy(), ts))
        ts = ts[order]
        if max_seconds is not None and len(ts):
            n = int(np.searchsorted(ts, ts[0] + int(max_seconds * 1e9), side="left"))
            order, ts = order[:n], ts[:n]
        self.frame = ticks.iloc[order]
        self.frame.index = pd.RangeIndex(len(order))
        self.ts = ts

    def __len__(self) -> int:
        return len(self.ts)

    def __iter__(self) -> Iterator[FeedEvent]:
        ts, n = self.ts, len(self.ts)
        if n == 0:
            return
        last_b = closing_boundary(self.config, int(ts[-1]))
        bounds = boundaries(self.config, int(ts[0]) - 1, last_b)
        pace = int(PACE_S * self.speed * 1e9) if self.speed else None
        t_ref = int(ts[0])
        real = _RealStretches(bounds, t_ref, self.close_real_ns)
        starts, ends, clock_pos = plan_batches(
            ts, bounds, self.batch_ticks, pace, real.cuts(ts, int(PACE_S * 1e9))
        )
        wall0 = time.perf_counter()
        for s, e in interleave(starts, ends, clock_pos, bounds):
            if s < 0:
                self._wait(wall0, int(bounds[e]), t_ref, real)
                yield Clock(int(bounds[e]), time.time_ns())
            else:
                self._wait(wall0, int(ts[e - 1]), t_ref, real)
                yield Ticks(self.frame.iloc[s:e], time.time_ns())
        if real.on:  # the real-time stretch after the final close too: a live feed does not
            # end at a close (the feed process's exit competed with the scoring of the last one)
            self._wait(wall0, int(bounds[-1]) + self.close_real_ns, t_ref, real)

    def _wait(self, wall0: float, t_ns: int, t_ref: int, real: _RealStretches) -> None:
        if self.speed is None:
            return
        # market time at k x, except the real-time stretches before each close, at 1x
        slow = real.overlap(t_ns)
        due = ((t_ns - t_ref - slow) / self.speed + slow) / 1e9
        delay = wall0 + due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)


class _RealStretches:
    """The market-time stretches ``(b - length, b + length]`` around each grid time ``b``
    (made disjoint, from the replay's start) that a paced replay plays at real time."""

    def __init__(self, bounds: np.ndarray, t_ref: int, length_ns: int) -> None:
        b = np.asarray(bounds, dtype=np.int64)
        self.on = bool(length_ns) and b.size > 0
        end = b + length_ns
        start = np.maximum(b - length_ns, t_ref)
        if b.size:
            start[1:] = np.maximum(start[1:], end[:-1])  # disjoint
        self.start, self.end = start, np.maximum(end, start)
        self.cum = np.cumsum(self.end - self.start)

    def overlap(self, t_ns: int) -> int:
        """Market ns of the stretches before ``t_ns``."""
        if not self.on:
            return 0
        k = int(np.searchsorted(self.end, t_ns, side="left"))  # end[k] >= t_ns
        done = int(self.cum[k - 1]) if k > 0 else 0
        if k == self.end.size:
            return done
        return done + max(0, t_ns - int(self.start[k]))

    def cuts(self, ts: np.ndarray, every_ns: int) -> np.ndarray | None:
        """Tick positions that cut batches every ``every_ns`` inside the stretches."""
        if not self.on:
            return None
        grid = [np.arange(s, e, every_ns) for s, e in zip(self.start, self.end, strict=True)]
        return np.searchsorted(ts, np.concatenate(grid), side="right")


class SimulatorFeed:
    """The seeded simulator as a feed: a :class:`ReplayFeed` of simulated ticks, generated
    in-process one day at a time with :func:`tickml.simulator.simulate_day` (days back to back:
    no overnight wait at any speed; each day's Clock markers run from its first tick to the
    grid time closing its last one)."""

    name = "simulator"

    def __init__(
        self,
        sim: object | None = None,
        days: Sequence[dt.date] = (),
        feature_config: FeatureConfig | None = None,
        speed: float | None = None,
        batch_ticks: int = 2000,
        symbols: Sequence[str] | None = None,
        max_seconds: float | None = None,
        close_real_s: float = 0.0,
    ) -> None:
        from tickml.simulator import SimConfig

        self.sim = sim if sim is not None else SimConfig()
        if not isinstance(self.sim, SimConfig):
            raise TypeError("sim must be a tickml.simulator.SimConfig")
        if not days:
            raise ValueError("SimulatorFeed needs at least one day")
        self.days = list(days)
        self.kwargs = dict(
            feature_config=feature_config or FeatureConfig(market=self.sim.market),
            speed=speed,
            batch_ticks=batch_ticks,
            symbols=symbols,
            max_seconds=max_seconds,
            close_real_s=close_real_s,
        )

    def __iter__(self) -> Iterator[FeedEvent]:
        from tickml.simulator import simulate_day

        for day in self.days:
            t0 = time.perf_counter()
            ticks = simulate_day(self.sim, day).ticks  # type: ignore[arg-type]
            log.info("simulated %s: %d ticks in %.2f s", day, len(ticks), time.perf_counter() - t0)
            yield from ReplayFeed(ticks, **self.kwargs)  # type: ignore[arg-type]
