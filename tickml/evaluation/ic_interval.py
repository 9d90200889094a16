"""The information coefficient as a mean over days, with a Student-t interval over days.

**Estimand.** A day's IC is the Spearman rank correlation of the score with the forward return
over that day's rows. The evaluation reports the *expected per-day IC*: the mean, over the
population of trading days that the out-of-sample days are a sample of, of a day's IC, every
day weighing the same whatever its number of rows: how well the score ranks the returns on a
typical day. The promotion gate asks its interval to be above 0.

**Point estimate.** The mean of the per-day ICs of the days whose IC is defined: at least
:data:`MIN_DAY_ROWS` rows with finite score and return and a known day key (rows whose day key
is missing, NaN / NaT / None, are dropped), neither score nor return constant. A day with a
handful of rows (a half-open session, a symbol filter) has an IC that is mostly noise and
would weigh as much as a full day; it is reported as undefined instead.

**Interval.** ``mean +- t_{k-1, 0.975} * s / sqrt(k)`` over the ``k`` per-day ICs (``s``: their
sample standard deviation, ``ddof=1``). Rows of one day are dependent (labels overlap, the day
has its own regime); the interval only assumes that *days* are independent draws, so whatever
happens inside a day is in the spread of the per-day ICs. The Student-t quantile matters with
few days: with 5 days it is 2.78 instead of 1.96. Coverage measured by simulation
(tests/test_ic_interval.py: day-level random effect in the IC, 300-1500 overlapping rows per
day, 1,000 trials, Monte-Carlo standard error 0.7 points): 94.8% with 5 days and 95.3% with
10 for a nominal 95% (a 5,000-trial run: 95.1% and 95.1%), where the day-block percentile
bootstrap of the pooled IC (:func:`tickml.evaluation.metrics.ic_block_bootstrap`) covered
83% with 5 days and 89% with 10 (300 trials each, standard error about 2 points): its spread
is the plug-in spread, too small by sqrt((k-1)/k), and its quantiles are normal-like where
the mean of k days needs Student-t ones.

Why days weigh the same (no weighting by rows per day): the t-interval is exact for
independent, normal, equally spread per-day ICs; with equal weights its only assumption beyond
that is independence across days, and in the simulation, where rows per day vary five-fold (so
the per-day ICs are not equally noisy), it still covered 95%. A row-weighted mean would give
busy days more say (more efficient when rows per day vary a lot) but needs a ratio-type variance
whose small-sample distribution is not Student-t; it is not offered.

With fewer than two days with a defined IC there is no interval (None): one day says nothing
about day-to-day variation.

**Limitation: days tested by one model are not independent draws.** The interval treats the
out-of-sample days as independent. In a walk-forward evaluation every fold's model is trained
once and tests ``test_days`` consecutive days; with ``test_days > 1`` the days of one fold
share that model (its luck in training, its features' regime), so their ICs are positively
correlated and the interval is too narrow (optimistic): the effective number of days is
between the number of folds and the number of days. With ``test_days = 1`` each day has its
own model and the assumption is only about the market. The simulation above has no such fold
effect; the promotion gate's day count (``n_ic_days``) counts days, not folds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

#: fewest rows (finite score and return) for a day's IC to be defined and counted
MIN_DAY_ROWS = 30


@dataclass(frozen=True)
class DayIC:
    """Per-day ICs, their mean and its Student-t interval."""

    #: mean of the per-day ICs (None: no day with a defined IC)
    ic: float | None
    #: [low, high] at ``level`` (None: fewer than two days with a defined IC)
    ci: list[float] | None
    #: per day key (as text, sorted): the day's IC, or None when undefined on that day
    per_day: dict[str, float | None]
    #: days with a defined IC (the interval's degrees of freedom + 1)
    n_days: int


def t_interval(values: Any, level: float = 0.95) -> list[float] | None:
    """Student-t interval of the mean of ``values`` (None with fewer than two values)."""
    v = np.asarray(values, dtype=np.float64)
    k = v.size
    if k < 2:
        return None
    m = float(v.mean())
    half = float(stats.t.ppf(0.5 + level / 2.0, k - 1)) * float(v.std(ddof=1)) / math.sqrt(k)
    return [m - half, m + half]


def _day_ranks(x: np.ndarray, codes: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Average ranks (1-based, ties share their mean rank) of ``x`` within each day code;
    ``first``: the position of each day's first row in (day, value) order."""
    by_value = np.argsort(x)
    order = by_value[np.argsort(codes[by_value], kind="stable")]  # by day, then by value
    xs, cs = x[order], codes[order]
    new = np.ones(x.size, dtype=bool)
    new[1:] = (xs[1:] != xs[:-1]) | (cs[1:] != cs[:-1])
    starts = np.flatnonzero(new)
    ends = np.r_[starts[1:], x.size]  # exclusive
    group = np.cumsum(new) - 1
    mid = (starts + ends - 1) / 2.0 - first[cs[starts]] + 1.0
    out = np.empty(x.size)
    out[order] = mid[group]
    return out


def ic_by_day(
    score: Any, fwd_return: Any, day: Any, level: float = 0.95, min_rows: int = MIN_DAY_ROWS
) -> DayIC:
    """Per-day Spearman ICs over rows where score and return are finite and the day key is
    known, their mean and the Student-t interval of the mean (see the module docstring); a
    day with fewer than ``min_rows`` such rows has no IC (None in ``per_day``)."""
    s = np.asarray(score, dtype=np.float64)
    r = np.asarray(fwd_return, dtype=np.float64)
    d = np.asarray(day)
    if not (s.shape == r.shape == d.shape):
        raise ValueError(
            f"score, fwd_return and day differ in shape: {s.shape}, {r.shape}, {d.shape}"
        )
    ok = np.isfinite(s) & np.isfinite(r) & pd.notna(pd.Series(d)).to_numpy()
    s, r, d = s[ok], r[ok], d[ok]
    codes, uniques = pd.factorize(pd.Series(d), sort=True)
    k = len(uniques)
    # ranks within each day (average ranks for ties), then each day's Pearson of the ranks
    n = np.bincount(codes, minlength=k).astype(np.float64)
    first = np.r_[0.0, np.cumsum(n)[:-1]]
    rs, rr = _day_ranks(s, codes, first), _day_ranks(r, codes, first)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = np.bincount(codes, rs, k) / n
        my = np.bincount(codes, rr, k) / n
        dx, dy = rs - mx[codes], rr - my[codes]
        sxy = np.bincount(codes, dx * dy, k)
        sxx = np.bincount(codes, dx * dx, k)
        syy = np.bincount(codes, dy * dy, k)
        rho = sxy / np.sqrt(sxx * syy)
    # undefined: fewer than min_rows (and three) rows, or a constant score or return that day
    tiny = 1e-9 * n**3
    defined = (n >= max(3, min_rows)) & (sxx > tiny) & (syy > tiny) & np.isfinite(rho)
    per_day = {str(key): float(rho[j]) if defined[j] else None for j, key in enumerate(uniques)}
    vals = rho[defined]
    ic = float(vals.mean()) if vals.size else None
    return DayIC(ic, t_interval(vals, level), per_day, int(vals.size))
