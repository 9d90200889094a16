"""The market calendar: time zone, session, the trading-day rule and UTC nanoseconds.

Every component that needs to know "which day" or "is the market open" asks this module, with
the one :class:`Market` of the run configuration (``market:`` section of the YAML): the feature
engines, the labels, the walk-forward folds, the decision function, the backtest, the
simulator, the live workers, and the Dagster daily partitions and schedules.

The rules, written once:

* **Timestamps** are UTC nanoseconds (``int64``) wherever they are compared; tz-naive values
  are taken as UTC (:func:`utc_ns`, :func:`ts_ns`).
* **A trading day** is the half-open interval (local midnight, next local midnight] in
  ``Market.tz``: a time exactly at midnight belongs to the day that *ends* there, as a tick
  exactly on a row boundary belongs to the interval that closes there (:func:`day_numbers`,
  :meth:`Market.local_day`).
* **The session** is (open, close] of local times on that day; a market without one (a 24/7
  crypto feed: ``session_open: null``) trades the whole day (:meth:`Market.day_bounds`).
* Local times that do not exist (the hour skipped when clocks go forward) move forward to the
  first existing instant; an ambiguous local time (the repeated hour) is an error.
"""

from __future__ import annotations

import datetime as dt
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

EPOCH = dt.date(1970, 1, 1)
DAY_NS = 86_400 * 1_000_000_000

#: the flat keys component configs accept for their market (see :func:`fold_market_keys`)
MARKET_KEYS = ("tz", "session_open", "session_close")


class DayBounds(NamedTuple):
    """One local day in UTC ns: the day is (start, end], the session (open, close]."""

    start: int
    end: int
    open: int
    close: int


class Market(BaseModel):
    """Where and when the market trades: the time zone of its days and its session."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tz: str = Field(
        default="America/New_York",
        description="time zone of the trading day (local midnight to midnight) and the session",
    )
    session_open: dt.time | None = Field(
        default=dt.time(9, 30), description="regular session open, local (null: trades all day)"
    )
    session_close: dt.time | None = Field(
        default=dt.time(16, 0), description="regular session close, local (null: trades all day)"
    )

    @field_validator("tz")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r}") from exc
        return v

    @model_validator(mode="after")
    def _check(self) -> Market:
        if (self.session_open is None) != (self.session_close is None):
            raise ValueError("give both session_open and session_close, or neither")
        if self.session_open is not None and self.session_close is not None:
            if self.session_close <= self.session_open:
                raise ValueError("session_close must be after session_open")
        return self

    @classmethod
    def all_day(cls, tz: str = "UTC") -> Market:
        """A market without a session (24/7 feeds)."""
        return cls(tz=tz, session_open=None, session_close=None)

    @classmethod
    def of_run_config(cls, path: str | os.PathLike[str] | None) -> Market | None:
        """The ``market`` section of a run configuration YAML; None without a file or when
        the file has no such section (the run then takes its source's market:
        :func:`tickml.sources.source_market`). The whole file is validated where it is used
        (:class:`tickml.config.RunConfig`)."""
        if path is None:
            return None
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"config file {p} does not exist")
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{p}: expected a mapping at the top level")
        return cls.model_validate(data["market"] or {}) if "market" in data else None

    @property
    def has_session(self) -> bool:
        return self.session_open is not None

    def local_ns(self, day: dt.date, t: dt.time, plus_days: int = 0) -> int:
        """UTC ns of local time ``t`` on ``day`` (+ ``plus_days``)."""
        return _local_ns(self.tz, day + dt.timedelta(days=plus_days), t)

    def day_bounds(self, day: dt.date) -> DayBounds:
        """(start, end, open, close) of a local date, UTC ns; without a session the session
        is the whole day."""
        return _bounds(self.tz, day, self.session_open, self.session_close)

    def local_day(self, ts: int) -> dt.date:
        """The local date whose day (midnight, midnight] holds UTC ns ``ts``."""
        return local_day(int(ts), self.tz)

    def day_of(self, ts: int) -> DayBounds:
        return self.day_bounds(self.local_day(ts))

    def check_in_day(self, ts: np.ndarray, day: dt.date) -> None:
        """``ValueError`` unless every UTC ns time lies in the day (start, end] of ``day``."""
        start, end = day_span(day, self.tz)
        ts = np.asarray(ts, dtype=np.int64)
        outside = (ts <= start) | (ts > end)
        if outside.any():
            first = pd.Timestamp(int(ts[outside.argmax()]), tz="UTC").tz_convert(self.tz)
            lo, hi = (pd.Timestamp(t, tz="UTC").tz_convert(self.tz) for t in (start, end))
            raise ValueError(
                f"{int(outside.sum()):,} of {len(ts):,} ticks lie outside the day {day} "
                f"({self.tz}: ({lo}, {hi}]), first at {first}"
            )

    def days_between(self, ts_min: int, ts_max: int) -> list[dt.date]:
        """Every local date from the one holding ``ts_min`` to the one holding ``ts_max``."""
        first, last = self.local_day(ts_min), self.local_day(ts_max)
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

    def day_index(self, ts: np.ndarray) -> tuple[np.ndarray, list[dt.date]]:
        """Per time, the index of its day in the returned list of every date from the first
        to the last (days without any time included)."""
        numbers, first = _day_numbers(np.asarray(ts, dtype=np.int64), self.tz)
        if first is None:
            return numbers, []
        days = [EPOCH + dt.timedelta(days=first + i) for i in range(int(numbers.max()) + 1)]
        return numbers, days


class OnMarket(BaseModel):
    """Base of the component configurations that follow the market (features, labels, folds,
    decision gates, simulator): one ``market`` field; ``tz`` / ``session_open`` /
    ``session_close`` given flat are folded into it (:func:`fold_market_keys`)."""

    market: Market = Field(
        default_factory=Market,
        description="time zone of the trading day and the session (tickml.market); the run "
        "configuration sets it once, in its market section",
    )

    @model_validator(mode="before")
    @classmethod
    def _flat_market(cls, data: Any) -> Any:
        return fold_market_keys(data)


def fold_market_keys(data: Any) -> Any:
    """Accept ``tz`` / ``session_open`` / ``session_close`` given flat to a component config
    (``FeatureConfig(tz="UTC", session_open=None, session_close=None)``) as its ``market``.

    Library callers configure one component at a time this way; the run configuration sets
    the market once (``market:`` section) and hands it to every component.
    """
    if not isinstance(data, dict) or not any(k in data for k in MARKET_KEYS):
        return data
    out = dict(data)
    flat = {k: out.pop(k) for k in MARKET_KEYS if k in out}
    base = out.get("market", Market())
    if isinstance(base, Market):
        base = base.model_dump()
    out["market"] = {**dict(base), **flat}
    return out


# -- time stamps --------------------------------------------------------------------------------


def utc_ns(values: Any) -> np.ndarray:
    """int64 UTC nanoseconds of timestamps (tz-aware converted, tz-naive taken as UTC; NaT ->
    int64 min). A fresh, writable array."""
    idx = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    return np.array(idx.as_unit("ns").to_numpy(dtype=np.int64), dtype=np.int64)


def ts_ns(value: Any) -> int:
    """UTC nanoseconds of one timestamp (an int is taken as UTC ns already)."""
    if isinstance(value, int | np.integer):
        return int(value)
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value)


# -- the trading-day rule -----------------------------------------------------------------------


def local_day(ts: int, tz: str) -> dt.date:
    """The local date whose day (midnight, midnight] holds UTC ns ``ts``."""
    return pd.Timestamp(int(ts) - 1, tz="UTC").tz_convert(tz).date()


def day_numbers(ts: np.ndarray, tz: str) -> np.ndarray:
    """Per UTC ns time, the number (days since 1970-01-01) of its local day."""
    numbers, first = _day_numbers(np.asarray(ts, dtype=np.int64), tz)
    return numbers if first is None else numbers + first


def local_days(ts: np.ndarray, tz: str) -> tuple[np.ndarray, list[dt.date]]:
    """Per UTC ns time, the index of its local day in the returned sorted dates (only days
    that hold a time)."""
    numbers = day_numbers(ts, tz)
    if numbers.size == 0:
        return numbers, []
    uniq, codes = np.unique(numbers, return_inverse=True)
    return codes.astype(np.int64), [EPOCH + dt.timedelta(days=int(n)) for n in uniq]


def day_span(day: dt.date, tz: str) -> tuple[int, int]:
    """UTC ns (start, end) of the local date ``day``: the day is the interval (start, end]."""
    b = _bounds(tz, day, None, None)
    return b.start, b.end


def day_end_ns(numbers: np.ndarray, tz: str) -> np.ndarray:
    """UTC ns of the end (the next local midnight) of each day number."""
    return np.array(
        [_midnight_ns(tz, EPOCH + dt.timedelta(days=int(n) + 1)) for n in numbers.tolist()],
        dtype=np.int64,
    )


def _day_numbers(ts: np.ndarray, tz: str) -> tuple[np.ndarray, int | None]:
    """Day numbers relative to the first one, and the first one (None without times)."""
    if ts.size == 0:
        return np.zeros(0, dtype=np.int64), None
    first, last = ((local_day(int(x), tz) - EPOCH).days for x in (ts.min(), ts.max()))
    ends = day_end_ns(np.arange(first, last + 1, dtype=np.int64), tz)
    return np.searchsorted(ends, ts, side="left").astype(np.int64), first


@lru_cache(maxsize=65_536)
def _local_ns(tz: str, day: dt.date, t: dt.time) -> int:
    when = pd.Timestamp(dt.datetime.combine(day, t))
    return int(when.tz_localize(tz, nonexistent="shift_forward").value)


def _midnight_ns(tz: str, day: dt.date) -> int:
    return _local_ns(tz, day, dt.time(0))


@lru_cache(maxsize=4096)
def _bounds(tz: str, day: dt.date, open_t: dt.time | None, close_t: dt.time | None) -> DayBounds:
    start = _midnight_ns(tz, day)
    end = _midnight_ns(tz, day + dt.timedelta(days=1))
    if open_t is None or close_t is None:
        return DayBounds(start, end, start, end)
    return DayBounds(start, end, _local_ns(tz, day, open_t), _local_ns(tz, day, close_t))
