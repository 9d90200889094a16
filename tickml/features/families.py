"""The feature families as tables (Alpha158 style: a few ops over inputs x windows).

Names carry their window: ``_t20`` = last 20 ticks, ``_n20`` = last 20 trades, ``_s60`` = last
60 seconds, ``_b5`` = last 5 bars (bar = the sampling interval), ``blk3_`` = the third newest
block of ticks. Returns, spreads and deviations are in bps of price.

A :class:`W` row is a template expanded over a window list: ``{w}`` in its name and
description becomes the window.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import NamedTuple

from tickml.features.config import FeatureConfig
from tickml.features.defs import BPS, FeatureDef, clock_def, ref_def, ring_def, trade_def

Builder = Callable[[FeatureConfig], list[FeatureDef]]
NO_BOOK = "no two-sided book seen today"
BAR_WARM = "fewer than {n} bars since the first tick of the day"


class W(NamedTuple):
    """Template: op over input a (and b, c, d) for each window, times scale."""

    name: str
    op: str
    a: str
    desc: str
    b: str = ""
    c: str = ""
    d: str = ""
    scale: float = 1.0
    book: bool = False  # NaN without a book
    nan: str = ""  # for clock ops: when NaN


def over_ticks(fam: str, rows: Iterable[W], windows: Iterable[int]) -> list[FeatureDef]:
    """Event-ring windows [0, w): for w in windows, for each row."""
    rows = tuple(rows)
    return [
        ring_def(r.name.format(w=w), fam, r.desc.format(w=w), r.op, r.a, (0, w), b=r.b, c=r.c,
                 d=r.d, scale=r.scale, book=r.book)
        for w in windows
        for r in rows
    ]  # fmt: skip


def over_trades(fam: str, rows: Iterable[W], windows: Iterable[int]) -> list[FeatureDef]:
    rows = tuple(rows)
    return [
        trade_def(r.name.format(w=w), fam, r.desc.format(w=w), r.op, r.a, w, b=r.b, c=r.c,
                  d=r.d)
        for w in windows
        for r in rows
    ]  # fmt: skip


def over_seconds(fam: str, rows: Iterable[W], windows: Iterable[int]) -> list[FeatureDef]:
    rows = tuple(rows)
    return [
        clock_def(r.name.format(w=w), fam, r.desc.format(w=w), r.op, a=r.a, b=r.b, start=w,
                  scale=r.scale, nan_when=r.nan.format(w=w))
        for w in windows
        for r in rows
    ]  # fmt: skip


PRICE_T = (
    W("ret_t{w}", "ret", "lm", "log return over the last {w} ticks, bps", scale=BPS),
    W("std_t{w}", "std", "r", "std of tick returns over {w} ticks, bps", scale=BPS),
    W("slope_t{w}", "slope", "lm", "OLS slope of log price over {w} ticks, bps/tick", scale=BPS),
    W("range_t{w}", "range", "lm", "high - low of log price over {w} ticks, bps", scale=BPS),
    W("rangepos_t{w}", "rangepos", "lm", "position of price in its {w}-tick range, 0..1"),
    W("updown_t{w}", "signbal", "r", "(up moves - down moves) / {w}"),
    W("effratio_t{w}", "efficiency", "r", "|net move| / path length over {w} ticks"),
    W("zprice_t{w}", "zlast", "lm", "z-score of price within its last {w} ticks"),
    W("tstat_t{w}", "tstat", "r", "t-statistic of the mean tick return over {w} ticks"),
)
PRICE_S = (
    W("ret_s{w}", "tw_ret", "", "log return over the last {w} s, bps", scale=BPS,
      nan="less than {w} s since the first tick"),
    W("rv_s{w}", "tw_sqrt", "r2", "realized volatility over the last {w} s, bps", scale=BPS),
)  # fmt: skip
FLOW_T = (
    W("svt_t{w}", "sumratio", "svt", "tick-rule signed volume / volume over {w} ticks", b="vol"),
    W("svq_t{w}", "sumratio", "svq", "quote-rule signed volume / volume over {w} ticks", b="vol"),
)
FLOW_N = (
    W("aggr_n{w}", "mean", "buy", "share of buyer-initiated trades in the last {w}"),
    W("flow_n{w}", "sumratio", "ssv", "signed volume / volume of the last {w} trades", b="size"),
    W("sizez_n{w}", "zlast", "size", "z-score of the last trade size among the last {w}"),
    W("spike_n{w}", "maxovermean", "size", "largest / mean trade size of the last {w}"),
    W("smart_flow_n{w}", "sumratio", "lsv", "signed / total volume of the large trades among "
      "the last {w}", b="lvol"),
    W("dumb_flow_n{w}", "sumratio", "ssv", "signed / total volume of the small trades among "
      "the last {w}", b="size", c="lsv", d="lvol"),
    W("smart_share_n{w}", "sumratio", "lvol", "large-trade share of the volume of the last {w} "
      "trades", b="size"),
)  # fmt: skip
FLOW_S = (
    W("flow_s{w}", "tw_ratio", "svq", "signed volume / volume over the last {w} s", b="vol"),
    W("trade_rate_s{w}", "tw_rate", "ntr", "trades per second over the last {w} s"),
    W("vol_rel_s{w}", "tw_volrel", "vol", "volume rate over the last {w} s / the day's rate"),
)
MICRO_T = (
    W("spread_t{w}", "mean", "spread", "mean spread over {w} ticks, bps", book=True),
    W("imb_t{w}", "mean", "imb", "mean book imbalance over {w} ticks", book=True),
    W("mdev_t{w}", "mean", "mdev", "mean microprice deviation over {w} ticks, bps", book=True),
    W("ofi_t{w}", "sum_over_mean", "ofi", "order-flow imbalance over {w} ticks / mean depth",
      b="depth", book=True),
    W("bacc_t{w}", "sum_over_mean", "bacc", "bid size accumulation (+) / vanishing (-) over "
      "{w} ticks / mean depth", b="depth", book=True),
    W("aacc_t{w}", "sum_over_mean", "aacc", "ask size accumulation (+) / vanishing (-) over "
      "{w} ticks / mean depth", b="depth", book=True),
    W("qshare_t{w}", "mean", "qflag", "share of the last {w} ticks that changed the book"),
    W("widen_t{w}", "mean", "widen", "mean sign of spread changes over {w} ticks (market "
      "makers widening > 0)"),
    W("flicker_t{w}", "sumratio", "flick", "share of quote price changes in {w} ticks that "
      "revert the previous one", b="pchg"),
    W("mmskew_t{w}", "mean", "qdrift", "mean quote drift over {w} ticks (one-sided inventory "
      "pressure)"),
)  # fmt: skip
MICRO_S = (
    W("quote_rate_s{w}", "tw_rate", "nq", "book changes per second over the last {w} s"),
    W("ofi_s{w}", "tw_over_depth", "ofi", "order-flow imbalance over the last {w} s / current "
      "depth", nan=NO_BOOK),
    W("qt_ratio_s{w}", "tw_logratio", "nq", "log((1 + book changes) / (1 + trades)) over {w} s",
      b="ntr"),
)  # fmt: skip


def price(c: FeatureConfig) -> list[FeatureDef]:
    fam, wmax = "price", max(c.tick_windows)
    f = over_ticks(fam, PRICE_T, c.tick_windows)
    f += [
        ref_def(f"stdcomp_t{w}_t{wmax}", fam, f"std_t{w} / std_t{wmax}: volatility compression "
                "(<1) or expansion", "ref_ratio", (f"std_t{w}", f"std_t{wmax}"),
                f"fewer than {wmax + 1} priced ticks today")
        for w in c.tick_windows[:-1]
    ]  # fmt: skip
    f += [
        ref_def("mom_score", fam, "momentum score: mean of tanh(t-stat) over the tick windows",
                "ref_meantanh", tuple(f"tstat_t{w}" for w in c.tick_windows),
                f"fewer than {wmax + 1} priced ticks today"),
        clock_def("streak", fam, "signed run length of same-direction price moves", "streak"),
        ring_def(f"skew_t{wmax}", fam, f"skewness of tick returns over {wmax} ticks", "skew",
                 "r", (0, wmax)),
    ]  # fmt: skip
    f += over_seconds(fam, PRICE_S, c.time_windows_s)
    n = c.atr_bars
    f.append(clock_def(f"atr_pct_b{n}", fam, f"average true range of the last {n} bars, % of "
                       "price", "atr", start=n, nan_when=BAR_WARM.format(n=n + 1)))  # fmt: skip
    f += [
        clock_def(f"ret_b{lag}", fam, f"log return over the last {lag} bars, bps", "bar_ret",
                  start=lag, scale=BPS, nan_when=BAR_WARM.format(n=lag + 1))
        for lag in c.leader_lags
    ]  # fmt: skip
    return f


def order_flow(c: FeatureConfig) -> list[FeatureDef]:
    fam = "order_flow"
    f = over_ticks(fam, FLOW_T, c.tick_windows)
    for n in c.trade_windows:
        f += over_trades(fam, FLOW_N, (n,))
        f.append(ref_def(f"smart_dumb_n{n}", fam, f"smart_flow_n{n} - dumb_flow_n{n}",
                         "ref_diff", (f"smart_flow_n{n}", f"dumb_flow_n{n}"),
                         f"fewer than {n} trades today"))  # fmt: skip
    f += over_seconds(fam, FLOW_S, c.time_windows_s)
    k = c.volume_z_bars
    f += [
        clock_def(f"volz_b{k}", fam, f"z-score of the last bar's volume vs the {k} before",
                  "bar_volz", start=k, nan_when=BAR_WARM.format(n=k + 1)),
        clock_def("trade_streak", fam, "signed run length of same-side trades", "tstreak"),
    ]  # fmt: skip
    return f


def microstructure(c: FeatureConfig) -> list[FeatureDef]:
    fam, wmax = "microstructure", max(c.tick_windows)
    now = (0, 0)
    f = [
        ring_def("spread_bps", fam, "current spread, bps of mid", "last", "spread", now,
                 book=True),
        ring_def("imbalance", fam, "current book imbalance (bsz - asz) / (bsz + asz)", "last",
                 "imb", now, book=True),
        ring_def("micro_dev_bps", fam, "microprice - mid, bps", "last", "mdev", now, book=True),
        clock_def("depth_logratio", fam, "log(bid_size / ask_size)", "depth_logratio",
                  nan_when=NO_BOOK),
    ]  # fmt: skip
    f += over_ticks(fam, MICRO_T, c.tick_windows)
    f += [
        ring_def(f"spread_z_t{wmax}", fam, f"z-score of the spread within {wmax} ticks "
                 "(widening)", "zlast", "spread", (0, wmax), book=True),
        ring_def(f"depth_z_t{wmax}", fam, f"z-score of the top-of-book depth within {wmax} "
                 "ticks", "zlast", "depth", (0, wmax), book=True),
    ]  # fmt: skip
    f += over_seconds(fam, MICRO_S, c.time_windows_s)
    return f
