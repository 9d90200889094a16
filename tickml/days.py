"""Which day each tick and each quarantine record belongs to, so that no row is lost.

A tick belongs to the trading day of its own timestamp in the run's market (the one rule of
:mod:`tickml.market`: the day (local midnight, next local midnight], so a tick exactly at
midnight belongs to the day that ends there), whatever file it came from (a Binance capture
named ``*_20240808`` that runs past midnight UTC holds ticks of the 9th). A quarantine record
belongs to the day of its timestamp when that is a day of the source (a day with valid ticks;
with none at all, a day of the records' plausible timestamps); a record without a usable time
(an unparseable line, an absurd ``ts=-5``) goes to its file's day when the file name carries
one, else to the source's first day. Every row of a source therefore lands in exactly one day,
and the per-day counts add up to the reader's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tickml.market import Market, day_numbers, utc_ns
from tickml.schema import ValidationResult, reason_counts
from tickml.validation import DEFAULT_RULES, ValidationConfig

_NAT = np.iinfo(np.int64).min


def trading_days(ts_ns: np.ndarray, market: Market) -> np.ndarray:
    """datetime64[D] of the market's trading day of each UTC ns time (:mod:`tickml.market`)."""
    return day_numbers(ts_ns, market.tz).astype("datetime64[D]")


def parse_day(value: str | None, what: str = "day") -> dt.date | None:
    """``YYYY-MM-DD`` -> date (None stays None); a :class:`~tickml.errors.UsageError` naming
    ``what`` otherwise."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        from tickml.errors import UsageError

        raise UsageError(f"{what} {value!r} is not a date: use YYYY-MM-DD") from None


def _as_date(d: np.datetime64) -> dt.date:
    return dt.date.fromisoformat(str(d))


@dataclass
class DaySplit:
    """A whole source's validated rows with the day of each tick and each record."""

    result: ValidationResult
    tick_day: np.ndarray  # datetime64[D] per tick
    record_day: np.ndarray  # datetime64[D] per quarantine record

    @property
    def days(self) -> list[dt.date]:
        found = np.union1d(np.unique(self.tick_day), np.unique(self.record_day))
        return [_as_date(d) for d in found if not np.isnat(d)]

    def day(self, day: dt.date, symbols: list[str] | None = None) -> ValidationResult:
        """The rows of ``day`` (ticks of ``symbols`` only, when given)."""
        d = np.datetime64(day, "D")
        t = self.result.ticks
        keep = self.tick_day == d
        if symbols:
            keep &= t["symbol"].isin(symbols).to_numpy()
        q = self.result.quarantine[self.record_day == d].reset_index(drop=True)
        return ValidationResult(t[keep].reset_index(drop=True), q, reason_counts(q))


def split_days(
    res: ValidationResult,
    market: Market,
    file_days: dict[str, dt.date] | None = None,
    rules: ValidationConfig = DEFAULT_RULES,
) -> DaySplit:
    """Assign every tick and record of ``res`` to one trading day of ``market`` (see the
    module documentation).

    ``file_days``: the day a source file's name carries (quarantine ``source`` -> day)."""
    tick_day = trading_days(utc_ns(res.ticks["ts"]), market)
    q = res.quarantine
    rec_day = np.full(len(q), np.datetime64("NaT"), dtype="datetime64[D]")
    if len(q):
        ts_ns = q["ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        lo, hi = rules.ts_bounds()
        plausible = (ts_ns != _NAT) & (ts_ns >= lo) & (ts_ns <= hi)
        own = np.full(len(q), np.datetime64("NaT"), dtype="datetime64[D]")
        own[plausible] = trading_days(ts_ns[plausible], market)
        known = np.unique(tick_day) if len(tick_day) else np.unique(own[plausible])
        usable = plausible & np.isin(own, known)
        rec_day[usable] = own[usable]
        rest = np.flatnonzero(~usable)
        if len(rest):
            first = known.min() if len(known) else np.datetime64("NaT", "D")
            codes, sources = pd.factorize(q["source"].to_numpy(dtype=object)[rest])
            per_source = np.full(len(sources), first, dtype="datetime64[D]")
            for k, src in enumerate(sources):
                fd = (file_days or {}).get(src)
                if fd is not None and (not len(known) or np.datetime64(fd, "D") in known):
                    per_source[k] = np.datetime64(fd, "D")
            rec_day[rest] = per_source[codes]
    return DaySplit(res, tick_day, rec_day)
