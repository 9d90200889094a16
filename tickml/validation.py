"""Plausibility rules for canonical ticks: allowed symbols, value ranges, timestamps, price jumps.

One definition used by every reader (through :func:`tickml.schema.validate_ticks`), by the lake
(a symbol becomes a partition folder name only if :func:`symbol_error` accepts it) and by the
live bus consumers (:func:`row_reasons` on each decoded batch).

Symbols: 1 to :data:`SYMBOL_MAX_LEN` characters from ``A-Z 0-9 . _ - + = ^ : #``, starting with
a letter, a digit or ``^``, without ``..`` (readers upper-case symbols first). This covers
exchange tickers (``AIG``, ``BRK.B``, ``BF-B``), crypto pairs (``BTCUSDT``, ``BTC-PERP``),
Yahoo-style names (``ES=F``, ``^GSPC``); a vendor symbol with ``/`` (``EUR/USD``) must be
renamed upstream. Anything else (path separators, NUL, spaces, quotes, control characters,
non-ASCII) is quarantined as ``bad_symbol`` and never reaches a file path or the bus.

Plausibility (:class:`ValidationConfig`, the ``validation`` section of the run configuration):

- ``out_of_range``: a price (bid, ask, trade) outside ``[min_price, max_price]``, a size above
  ``max_size``, or a timestamp before ``min_date`` or later than the wall clock plus
  ``max_ts_ahead`` (a tick cannot come from the future);
- ``price_jump`` (readers only, where the symbol's neighbouring ticks are at hand): a tick whose
  price (trade price, else the mid, else the one book side) is more than ``jump_factor`` times
  above or below the median of its ``jump_window`` neighbours on each side (itself included) in
  source order. A real market does not move 10x within a few ticks; a decimal-shift print or a
  fat-fingered quote does. The median makes a run of up to ``jump_window`` bad ticks unable to
  outvote the good ones, and a bad first tick is judged by the ticks after it. Symbols with
  fewer than three priced ticks are not judged.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from numba import njit
from pydantic import BaseModel, ConfigDict, Field, field_validator

SYMBOL_MAX_LEN = 32
SYMBOL_CHARS = "A-Z 0-9 . _ - + = ^ : #"
_SYMBOL_RE = re.compile(r"[A-Z0-9^][A-Z0-9._:+=^#-]*")


def symbol_error(symbol: object) -> str | None:
    """Why ``symbol`` is not an allowed symbol, or None when it is."""
    if isinstance(symbol, str) and len(symbol) <= SYMBOL_MAX_LEN:
        return _short_symbol_error(symbol)  # cached: the live path sees the same names often
    return _symbol_error(symbol)


@functools.lru_cache(maxsize=1 << 16)
def _short_symbol_error(symbol: str) -> str | None:
    return _symbol_error(symbol)


def _symbol_error(symbol: object) -> str | None:
    if not isinstance(symbol, str) or not symbol:
        return "empty"
    if len(symbol) > SYMBOL_MAX_LEN:
        return f"longer than {SYMBOL_MAX_LEN} characters"
    if _SYMBOL_RE.fullmatch(symbol) is None:
        return f"characters outside {SYMBOL_CHARS} (or not starting with a letter, digit or ^)"
    if ".." in symbol:
        return "contains '..'"
    return None


def check_symbol(symbol: object) -> str:
    """``symbol`` if allowed, else ``ValueError`` naming the rule (for paths and arguments)."""
    why = symbol_error(symbol)
    if why is not None:
        raise ValueError(f"symbol {str(symbol)[:60]!r} is not allowed: {why}")
    return str(symbol)


class ValidationConfig(BaseModel):
    """Plausibility bounds every tick must meet (see the module documentation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_price: float = Field(
        1e-9, gt=0, description="prices (bid, ask, trade) below this are out_of_range"
    )
    max_price: float = Field(1e9, gt=0, description="prices above this are out_of_range")
    max_size: float = Field(
        1e15, gt=0, description="sizes (bid_size, ask_size, trade size) above this are out_of_range"
    )
    min_date: dt.date = Field(
        dt.date(1980, 1, 1), description="ticks stamped before this day (UTC) are out_of_range"
    )
    max_ts_ahead: str = Field(
        "1d",
        description="ticks stamped later than the wall clock plus this are out_of_range "
        "(pandas Timedelta string)",
    )
    jump_factor: float | None = Field(
        10.0,
        gt=1,
        description="a price more than this many times above or below the median of its "
        "neighbours (same symbol) is a price_jump; null disables the check",
    )
    jump_window: int = Field(
        8, ge=1, le=64, description="neighbours on each side the price_jump median looks at"
    )

    @field_validator("max_ts_ahead")
    @classmethod
    def _ahead(cls, v: str) -> str:
        if pd.Timedelta(v) < pd.Timedelta(0):
            raise ValueError("max_ts_ahead must not be negative")
        return v

    def ts_bounds(self, now_ns: int | None = None) -> tuple[int, int]:
        """[lowest, highest] plausible timestamp in UTC ns (the upper bound moves with time)."""
        lo, ahead = _ts_limits(self.min_date, self.max_ts_ahead)
        now = time.time_ns() if now_ns is None else int(now_ns)
        return lo, now + ahead


DEFAULT_RULES = ValidationConfig()


@functools.lru_cache(maxsize=64)
def _ts_limits(min_date: dt.date, max_ts_ahead: str) -> tuple[int, int]:
    """(min_date as UTC ns, max_ts_ahead in ns): 8 us of pandas per call, once per bus entry."""
    return int(pd.Timestamp(min_date, tz="UTC").value), int(pd.Timedelta(max_ts_ahead).value)


def bad_symbol_codes(uniques: Sequence[object]) -> np.ndarray:
    """Per distinct symbol (pd.factorize uniques): True where it is not allowed (blank symbols
    are left to ``empty_symbol``)."""
    return np.fromiter(
        (
            isinstance(u, str) and bool(u.strip()) and symbol_error(u) is not None
            for u in uniques
        ),
        dtype=bool,
        count=len(uniques),
    )


#: the row checks in order (first match wins); code 0 = passes
ROW_CHECKS: tuple[str, ...] = (
    "",
    "empty_symbol",
    "bad_symbol",
    "nan_or_inf",
    "non_positive",
    "out_of_range",
    "crossed_book",
    "empty_event",
    "wrong_type",
)


def row_codes(
    symbols: np.ndarray,
    ts_ns: np.ndarray,
    vals: dict[str, np.ndarray],
    rules: ValidationConfig = DEFAULT_RULES,
    now_ns: int | None = None,
    factorized: tuple[np.ndarray, Sequence[object] | np.ndarray] | None = None,
) -> np.ndarray:
    """Per tick the index into :data:`ROW_CHECKS` of the first row check it fails (0: none);
    see :func:`row_reasons`. ``factorized``: ``pd.factorize(symbols)`` when already at hand."""
    n = len(ts_ns)
    code = np.zeros(n, dtype=np.int8)

    def mark(mask: np.ndarray, name: str) -> None:
        code[mask & (code == 0)] = ROW_CHECKS.index(name)

    if factorized is None:
        codes, found = pd.factorize(pd.Series(symbols, dtype=object), use_na_sentinel=True)
        uniques: Sequence[object] | np.ndarray = list(found)
    else:
        codes, uniques = factorized
    if len(uniques):
        blank = np.array([not isinstance(u, str) or not u.strip() for u in uniques], dtype=bool)
        mark((codes < 0) | blank[codes], "empty_symbol")
        mark((codes >= 0) & bad_symbol_codes(list(uniques))[codes], "bad_symbol")
    else:
        mark(codes < 0, "empty_symbol")

    lo, hi = rules.ts_bounds(now_ns)
    p, s, b, a, bs, az = (np.ascontiguousarray(vals[c], dtype=np.float64) for c in _KERNEL_COLUMNS)
    t = np.ascontiguousarray(ts_ns, dtype=np.int64)
    limits = float(rules.min_price), float(rules.max_price), float(rules.max_size)
    _numeric_codes(code, t, p, s, b, a, bs, az, *limits, lo, hi)
    return code


_KERNEL_COLUMNS = ("price", "size", "bid", "ask", "bid_size", "ask_size")
_KERNEL_CODES = ("nan_or_inf", "non_positive", "out_of_range", "crossed_book", "empty_event",
                 "wrong_type")  # fmt: skip
if ROW_CHECKS[3:] != _KERNEL_CODES:  # pragma: no cover - a guard for whoever reorders them
    raise RuntimeError("ROW_CHECKS changed: update _numeric_codes")


@njit(cache=True)
def _numeric_codes(
    code: np.ndarray, ts: np.ndarray, price: np.ndarray, size: np.ndarray, bid: np.ndarray,
    ask: np.ndarray, bsz: np.ndarray, asz: np.ndarray, min_price: float, max_price: float,
    max_size: float, lo: int, hi: int,
) -> None:  # fmt: skip
    """The row checks after the symbol's (codes 3-8 of :data:`ROW_CHECKS`, first match wins)
    for the rows whose ``code`` is still 0, in place; one pass (as numpy expressions they cost
    ~110 us for a 20-tick bus entry, per-call overhead). NaN compares false, as in numpy.

    - nan_or_inf: an infinite value; a trade without both price and size (a size of 0 alone
      is no trade); a book side whose price and size are not both present or both absent
    - non_positive: a trade price or size <= 0, a negative size, a book price or size <= 0
    - out_of_range: a price outside [min_price, max_price], a size above max_size, a time
      outside [lo, hi] (a null time is left to wrong_type)
    - crossed_book: bid > ask; empty_event: no trade and no book side; wrong_type: null time
    """
    nat = np.iinfo(np.int64).min
    for i in range(code.shape[0]):
        if code[i] != 0:
            continue
        p, s, b, a, bs, az, t = price[i], size[i], bid[i], ask[i], bsz[i], asz[i], ts[i]
        hp = not math.isnan(p)
        if (
            math.isinf(p) or math.isinf(s) or math.isinf(b) or math.isinf(a)
            or math.isinf(bs) or math.isinf(az)
            or (hp and math.isnan(s)) or (not hp and not math.isnan(s) and s != 0)
            or math.isnan(b) != math.isnan(bs) or math.isnan(a) != math.isnan(az)
        ):  # fmt: skip
            code[i] = 3
        elif (hp and (p <= 0 or s <= 0)) or s < 0 or b <= 0 or a <= 0 or bs <= 0 or az <= 0:
            code[i] = 4
        elif (
            b < min_price or b > max_price or a < min_price or a > max_price
            or p < min_price or p > max_price
            or bs > max_size or az > max_size or s > max_size
            or (t != nat and (t < lo or t > hi))
        ):  # fmt: skip
            code[i] = 5
        elif b > a:
            code[i] = 6
        elif not hp and math.isnan(b) and math.isnan(a):
            code[i] = 7
        elif t == nat:
            code[i] = 8


def row_reasons(
    symbols: np.ndarray,
    ts_ns: np.ndarray,
    vals: dict[str, np.ndarray],
    rules: ValidationConfig = DEFAULT_RULES,
    now_ns: int | None = None,
    factorized: tuple[np.ndarray, Sequence[object] | np.ndarray] | None = None,
) -> np.ndarray:
    """The reason code of every tick that fails a check on its own row ("" = passes).

    Checks, first match wins: ``empty_symbol``, ``bad_symbol``, ``nan_or_inf``,
    ``non_positive``, ``out_of_range``, ``crossed_book``, ``empty_event``, ``wrong_type``
    (no timestamp). ``vals`` maps the six float columns to float64 arrays (NaN = null).
    """
    names = np.array(ROW_CHECKS, dtype=object)
    return names[row_codes(symbols, ts_ns, vals, rules, now_ns, factorized)]


def reference_price(vals: dict[str, np.ndarray]) -> np.ndarray:
    """Per tick the price a jump is judged on: the trade price, else the mid, else the one
    book side present (NaN when none)."""
    bid, ask, price = vals["bid"], vals["ask"], vals["price"]
    one_side = np.where(np.isnan(bid), ask, bid)
    with np.errstate(invalid="ignore", over="ignore"):
        mid = np.where(np.isnan(bid) | np.isnan(ask), one_side, (bid + ask) / 2)
    return np.where(np.isnan(price), mid, price)


def price_jump_mask(
    codes: np.ndarray,
    ref: np.ndarray,
    eligible: np.ndarray,
    rules: ValidationConfig = DEFAULT_RULES,
) -> np.ndarray:
    """Ticks whose ``ref`` price is more than ``jump_factor`` away from the median of its
    neighbourhood (same symbol code, source order, eligible ticks only).

    Cost: one pass over the eligible ticks (log, step to the previous tick of the symbol); the
    medians are only computed within ``jump_window`` ticks of a step larger than the factor,
    which real data almost never has.
    """
    n = len(ref)
    out = np.zeros(n, dtype=bool)
    if rules.jump_factor is None:
        return out
    with np.errstate(invalid="ignore"):
        idx = np.flatnonzero(eligible & (ref > 0) & np.isfinite(ref))
    if len(idx) < 3:
        return out
    c = np.asarray(codes)[idx]
    if len(c) and (c[1:] != c[:-1]).any():
        order = np.argsort(c, kind="stable")
        idx, c = idx[order], c[order]
    lv = np.log(ref[idx])
    limit = math.log(rules.jump_factor)
    same = c[1:] == c[:-1]
    step = same & (np.abs(np.diff(lv)) > limit)
    if not step.any():
        return out
    w = rules.jump_window
    m = len(idx)
    # candidates: positions within w of a large step (a run of <= w bad ticks is covered)
    edges = np.flatnonzero(step)
    cover = np.zeros(m + 1, dtype=np.int64)
    np.add.at(cover, np.clip(edges - w + 1, 0, m), 1)
    np.add.at(cover, np.clip(edges + w + 1, 0, m), -1)
    cand = np.flatnonzero(np.cumsum(cover[:m]) > 0)
    # the symbol segment of each candidate
    seg_start = np.flatnonzero(np.r_[True, ~same])
    seg_end = np.r_[seg_start[1:], m] - 1
    seg = np.searchsorted(seg_start, cand, side="right") - 1
    lo, hi = seg_start[seg], seg_end[seg]
    pos = cand[:, None] + np.arange(-w, w + 1)[None, :]
    inside = (pos >= lo[:, None]) & (pos <= hi[:, None])
    window = np.where(inside, lv[np.clip(pos, 0, m - 1)], np.nan)
    enough = inside.sum(axis=1) >= 3
    med = np.nanmedian(np.where(enough[:, None], window, 0.0), axis=1)
    jump = enough & (np.abs(lv[cand] - med) > limit)
    out[idx[cand[jump]]] = True
    return out
