"""The ``normalized`` family: dimensionless features that travel across symbols and days.

Returns in bps, spreads in bps and micro-price deviations in bps scale with a symbol's price
grid and volatility (a one-cent spread is 6.7 bps at $15 and 0.6 bps at $180), so a tree split
learnt on one symbol means something else on another. Each feature here divides a statistic by
the symbol's own scale *known at t*: its recent tick volatility (``std_t{W}``, W = the longest
tick window), its recent mean or distribution of the same quantity, or its own rate so far
today (realized volatility, volume). Nothing reads past the row time, and nothing crosses
symbols (the engines run symbols independently, so batch and live stay bit-identical).

Naming: ``_vs`` = in units of the 180-tick volatility (at the window's horizon, sqrt-time
scaled), ``_dvs`` = in units of today's realized volatility at the window's horizon, ``_z`` =
z-score within the symbol's own last W ticks, ``_rel`` = relative to its own rolling level.

Ratios of earlier features are ``ref`` ops: the kernel divides the two finished (scaled)
values, so they equal the quotient of the features' own values; a zero denominator gives 0,
a NaN operand NaN. The features they read come from other families and are computed (not
output) when those families are switched off.
"""

from __future__ import annotations

import math

from tickml.features.config import FeatureConfig
from tickml.features.defs import FeatureDef, clock_def, ring_def

FAM = "normalized"


def _ratio(
    name: str, desc: str, num: str, den: str, nan_when: str, scale: float = 1.0
) -> FeatureDef:
    """``num / den * scale`` of two earlier features (0 on a zero denominator)."""
    return FeatureDef(name, FAM, desc, "ref_ratio", scale=scale, refs=(num, den), nan_when=nan_when)


def normalized(c: FeatureConfig) -> list[FeatureDef]:
    wmax, wmin = max(c.tick_windows), min(c.tick_windows)
    tmax = max(c.time_windows_s)
    sd = f"std_t{wmax}"
    warm = f"fewer than {wmax + 1} priced ticks today"
    book = f"{warm}; no two-sided book seen today"
    f = [
        ring_def(f"mdev_z_t{wmax}", FAM, f"z-score of the current micro-price deviation within "
                 f"the last {wmax} ticks", "zlast", "mdev", (0, wmax), book=True),
        ring_def(f"imb_z_t{wmax}", FAM, f"z-score of the current book imbalance within the "
                 f"last {wmax} ticks", "zlast", "imb", (0, wmax), book=True),
        ring_def(f"ofi_tstat_t{wmin}", FAM, f"t-statistic of the mean per-tick order-flow "
                 f"imbalance over {wmin} ticks (OFI in its own noise units; 0 without a "
                 "book)", "tstat", "ofi", (0, wmin)),
        _ratio(f"spread_rel_t{wmax}", f"current spread / its mean over the last {wmax} ticks",
               "spread_bps", f"spread_t{wmax}", book),
        _ratio("spread_vs", f"current spread in units of the {wmax}-tick return volatility "
               "(cost against typical move)", "spread_bps", sd, book),
        _ratio("mdev_vs", f"micro-price - mid in units of the {wmax}-tick return volatility",
               "micro_dev_bps", sd, book),
        _ratio(f"mdev_t{wmin}_vs", f"mean micro-price deviation over {wmin} ticks in units of "
               f"the {wmax}-tick return volatility", f"mdev_t{wmin}", sd, book),
    ]  # fmt: skip
    f += [
        _ratio(f"ret_t{w}_vs", f"{w}-tick return / ({sd} x sqrt({w})): the return in units of "
               "its typical size", f"ret_t{w}", sd, warm, 1.0 / math.sqrt(w))
        for w in c.tick_windows
        if w != wmax  # ret over the longest window / (its own std x sqrt(n)) is tstat_t{wmax}
    ]  # fmt: skip
    f += [
        _ratio(f"ret_s{w}_vs", f"{w}-s return / (rv_s{tmax} x sqrt({w}/{tmax})): the return in "
               f"units of the last {tmax} s volatility", f"ret_s{w}", f"rv_s{tmax}",
               f"less than {w} s since the first tick", math.sqrt(tmax / w))
        for w in c.time_windows_s
    ]  # fmt: skip
    first = "less than {w} s since the first tick"
    tmid = c.time_windows_s[len(c.time_windows_s) // 2]
    f += [
        clock_def(f"ret_s{w}_dvs", FAM, f"{w}-s return / (today's realized volatility per "
                  f"second x sqrt({w})) (0 before the first price move)", "tw_retday",
                  start=w, nan_when=first.format(w=w))
        for w in sorted({tmid, tmax})
    ]  # fmt: skip
    f += [
        clock_def(f"rv_rel_s{tmax}", FAM, f"realized volatility rate over the last {tmax} s / "
                  "today's rate (volatility regime within the day)", "tw_rvrel", a="r2",
                  start=tmax),
        clock_def(f"flow_rel_s{tmid}", FAM, f"signed volume rate over the last {tmid} s / "
                  "today's volume rate (flow in units of typical activity)", "tw_svrel",
                  a="svq", start=tmid),
    ]  # fmt: skip
    return f
