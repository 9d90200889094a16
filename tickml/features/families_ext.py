"""Families built on tick blocks, the session, bars and the leader; the family registry."""

from __future__ import annotations

from tickml.features.config import FeatureConfig
from tickml.features.defs import BPS, FeatureDef, clock_def, ref_def, ring_def
from tickml.features.families import Builder, W, microstructure, order_flow, price
from tickml.features.families_norm import normalized

PRE = "no tick in the session yet (rows before the open)"
NO_TRADE = "no trade in the session yet"

# per block k (1 = newest): {w} is k; the window is the block's ages
BLOCK = (
    W("blk{w}_slope", "slope", "lm", "price slope in block {w}, bps/tick", scale=BPS),
    W("blk{w}_vol", "std", "r", "std of tick returns in block {w}, bps", scale=BPS),
    W("blk{w}_volz", "block_z", "vol", "z-score of the volume of block {w} among the blocks"),
    W("blk{w}_flow", "sumratio", "svq", "signed volume / volume in block {w}", b="vol"),
    W("blk{w}_imb", "mean", "imb", "mean book imbalance in block {w}", book=True),
    W("blk{w}_smart", "sumratio", "lvol", "large-trade share of the volume in block {w}", b="vol"),
)
SESSION = (
    ("minutes_since_open", "min_since_open", "minutes since the session open (day start if no "
     "session)", 1.0, ""),
    ("minutes_to_close", "min_to_close", "minutes to the session close", 1.0, ""),
    ("tod_sin", "tod_sin", "sin of the local time of day", 1.0, ""),
    ("tod_cos", "tod_cos", "cos of the local time of day", 1.0, ""),
    ("vwap_dev_bps", "vwap_dev", "log(price / session VWAP), bps", BPS, NO_TRADE),
    ("sess_ret_bps", "sess_ret", "log return since the first session tick, bps", BPS, PRE),
    ("sess_range_bps", "sess_range", "session high - low of log price, bps", BPS, PRE),
    ("sess_rangepos", "sess_rangepos", "position of price in the session range, 0..1", 1.0,
     PRE),
    ("poc_dist_bps", "poc_dist", "log(price / volume point of control), bps", BPS, NO_TRADE),
    ("va_width_bps", "va_width", "width of the value area / price, bps", BPS, NO_TRADE),
    ("va_pos", "va_pos", "position of price in the value area (0 low edge, 1 high)", 1.0,
     NO_TRADE),
    ("sess_log_volume", "sess_logvol", "log(1 + session volume)", 1.0, ""),
    ("seconds_since_last_tick", "since_last", "seconds from the symbol's last tick to the row "
     "time (staleness)", 1.0, ""),
    ("ticks_in_interval", "bar_nev", "ticks in the last completed bar (= the sampling "
     "interval)", 1.0, ""),
)  # fmt: skip


def blocks(c: FeatureConfig) -> list[FeatureDef]:
    fam, nb, bs = "blocks", c.n_blocks, c.block_size
    span = nb * bs
    f = []
    for k in range(1, nb + 1):
        win = ((k - 1) * bs, k * bs)
        for r in BLOCK:
            w = (k - 1, span) if r.op == "block_z" else win  # block_z: block index, all blocks
            desc = r.desc.format(w=k) + f" (ticks {win[0]}..{win[1] - 1} back)"
            f.append(ring_def(r.name.format(w=k), fam, desc, r.op, r.a, w, b=r.b,
                              scale=r.scale, book=r.book))  # fmt: skip
    f += [
        ring_def("blk_consistency", fam, "sum of block slopes / sum of |block slopes|",
                 "block_consist", "lm", (0, span)),
        ring_def("blk_volslope", fam, "trend of block volatility across blocks / its mean",
                 "block_volslope", "r", (0, span)),
        ref_def("blk_accel", fam, "blk1_slope - blk2_slope (acceleration), bps/tick", "ref_diff",
                ("blk1_slope", "blk2_slope"), f"fewer than {2 * bs + 1} priced ticks today"),
    ]  # fmt: skip
    return f


def session(c: FeatureConfig) -> list[FeatureDef]:
    return [
        clock_def(name, "session", desc, op, scale=scale, nan_when=nan)
        for name, op, desc, scale, nan in SESSION
    ]


def stationarity(c: FeatureConfig) -> list[FeatureDef]:
    fam, d, w, wt = "stationarity", c.fracdiff_d, c.fracdiff_width, c.fracdiff_tick_width
    dt_ = c.fracdiff_tick_d
    return [
        clock_def(f"fracdiff_b{w}", fam, f"fractionally differenced log price (d={d:g}, "
                  f"{w}-bar fixed window) on bar closes", "fracdiff_bar", start=w,
                  nan_when=f"fewer than {w} bars since the first tick of the day"),
        ring_def(f"fracdiff_t{wt}", fam, f"fractionally differenced log price (d={dt_:g}, "
                 f"{wt}-tick fixed window) on ticks", "fracdiff_tick", "lm", (0, wt - 1)),
    ]  # fmt: skip


def cross_asset(c: FeatureConfig) -> list[FeatureDef]:
    fam, k, lmax = "cross_asset", c.corr_bars, max(c.leader_lags)
    lead = c.leader or "(none)"
    nan = f"leader {lead} has no tick yet today (or is not in the data)"
    warm = f"{nan}; fewer than {k + 2} bars of either"
    f = [
        clock_def(f"lead_ret_b{lag}", fam, f"leader {lead}'s log return over the last {lag} "
                  "bars, bps", "lead_ret", start=lag, scale=BPS,
                  nan_when=f"{nan}; fewer than {lag + 1} leader bars")
        for lag in c.leader_lags
    ]  # fmt: skip
    f += [
        clock_def(f"lead_corr_b{k}", fam, f"correlation of bar returns with {lead}'s over {k} "
                  "bars", "corr", start=k, nan_when=warm),
        clock_def(f"lead_beta_b{k}", fam, f"beta of bar returns to {lead}'s over {k} bars",
                  "beta", start=k, nan_when=warm),
        clock_def(f"lead_lagcorr_b{k}", fam, f"correlation of bar returns with {lead}'s "
                  f"previous-bar returns over {k} bars (lead-lag)", "leadcorr", start=k,
                  nan_when=warm),
        clock_def(f"resid_ret_b{lmax}", fam, f"{lmax}-bar return minus beta x {lead}'s, bps",
                  "resid_ret", start=lmax, end=k, scale=BPS, nan_when=warm),
    ]  # fmt: skip
    return f


def regime(c: FeatureConfig) -> list[FeatureDef]:
    fam, span = "regime", c.n_blocks * c.block_size
    return [
        ring_def("regime_vol_ratio", fam, "mean block volatility / long EWMA volatility (>1: "
                 "volatile regime)", "vol_regime", "r", (0, span)),
        ring_def("regime_trend", fam, f"net move / path length over the {span} block ticks "
                 "(signed trend strength)", "efficiency", "r", (0, span), c="signed"),
        ring_def("regime_var_ratio", fam, "variance ratio of block returns to tick returns (>1 "
                 "trending, <1 mean-reverting)", "var_ratio", "lm", (0, span), b="r"),
        ref_def("regime_state", fam, "0 quiet-range, 1 quiet-trend, 2 volatile-range, 3 "
                "volatile-trend", "ref_regime", ("regime_vol_ratio", "regime_trend"),
                f"fewer than {span + 1} priced ticks today"),
    ]  # fmt: skip


FAMILY_BUILDERS: dict[str, Builder] = {
    "price": price,
    "order_flow": order_flow,
    "microstructure": microstructure,
    "blocks": blocks,
    "session": session,
    "stationarity": stationarity,
    "cross_asset": cross_asset,
    "regime": regime,
    "normalized": normalized,
}
