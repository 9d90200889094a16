"""Trading days and sessions in UTC nanoseconds (the kernels never see a time zone).

A day is the half-open interval (local midnight, next local midnight] in ``config.tz``: a tick
stamped exactly at midnight belongs to the day that ends there, like a tick stamped exactly at
a row boundary belongs to the interval that closes there. All state is reset at the start of
each day, so a day's features never depend on an earlier day (daily partitions are
independent). The session is (open, close] on that day; without a session it is the whole day.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import numpy as np
import pandas as pd

from tickml.features.config import FeatureConfig

DayBounds = tuple[int, int, int, int]  # day_start, day_end, open, close (UTC ns)


@lru_cache(maxsize=4096)
def _bounds(tz: str, day: dt.date, open_t: dt.time | None, close_t: dt.time | None) -> DayBounds:
    start = pd.Timestamp(day).tz_localize(tz).value
    end = pd.Timestamp(day + dt.timedelta(days=1)).tz_localize(tz).value
    if open_t is None or close_t is None:
        return start, end, start, end
    o = pd.Timestamp(dt.datetime.combine(day, open_t)).tz_localize(tz).value
    c = pd.Timestamp(dt.datetime.combine(day, close_t)).tz_localize(tz).value
    return start, end, o, c


def day_bounds(config: FeatureConfig, day: dt.date) -> DayBounds:
    """(day_start, day_end, open, close) of a local date, UTC ns."""
    return _bounds(config.tz, day, config.session_open, config.session_close)


def local_day(config: FeatureConfig, ts_ns: int) -> dt.date:
    """The local date whose day (midnight, midnight] holds ts_ns."""
    return pd.Timestamp(int(ts_ns) - 1, tz="UTC").tz_convert(config.tz).date()


def day_of(config: FeatureConfig, ts_ns: int) -> DayBounds:
    return day_bounds(config, local_day(config, ts_ns))


def days_between(config: FeatureConfig, ts_min: int, ts_max: int) -> list[dt.date]:
    """Every local date from the one holding ts_min to the one holding ts_max."""
    first, last = local_day(config, ts_min), local_day(config, ts_max)
    n = (last - first).days
    return [first + dt.timedelta(days=i) for i in range(n + 1)]


def day_index(config: FeatureConfig, ts: np.ndarray) -> tuple[np.ndarray, list[dt.date]]:
    """Per tick, the index of its day in the returned list of dates."""
    if ts.size == 0:
        return np.zeros(0, dtype=np.int64), []
    days = days_between(config, int(ts.min()), int(ts.max()))
    ends = np.array([day_bounds(config, d)[1] for d in days], dtype=np.int64)
    return np.searchsorted(ends, ts, side="left").astype(np.int64), days
