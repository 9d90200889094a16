"""The compiled kernels against straightforward pandas implementations, on a real day.

Each reference below is written from the feature's definition with plain pandas/numpy over
the ticks (rolling windows, cumulative sums, as-of lookups, groupby), independently of the
kernels' rings and buckets, and compared row by row with ``compute_features`` on IBM (leader
SPY), 2013-10-08. Tolerance 1e-9 relative (plus 1e-12 absolute for values near 0) unless noted.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tickml.features import FeatureConfig, compute_features, fracdiff_weights
from tickml.readers.equity import read_equity_day

DAY = dt.date(2013, 10, 8)
NY = "America/New_York"
OPEN = pd.Timestamp("2013-10-08 09:30", tz=NY).value
CLOSE = pd.Timestamp("2013-10-08 16:00", tz=NY).value
MIN = 60 * 10**9
RTOL, ATOL = 1e-9, 1e-12

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(equity_root):
    ticks = read_equity_day(equity_root, DAY, symbols=["IBM", "SPY"]).ticks
    feats = compute_features(ticks, FeatureConfig())
    return ticks, feats


def events(t: pd.DataFrame) -> pd.DataFrame:
    """Per-tick inputs from the definitions, with pandas (carried book, reference price...)."""
    t = t.reset_index(drop=True)
    ok = (t.bid > 0) & (t.ask > 0) & (t.bid_size > 0) & (t.ask_size > 0) & (t.ask >= t.bid)
    book = t[["bid", "ask", "bid_size", "ask_size"]].where(ok).ffill()
    trade = (t.price > 0) & (t["size"] > 0)
    last_px = t.price.where(trade).ffill()
    mid = (book.bid + book.ask) / 2
    ref = mid.where(book.bid.notna(), last_px)
    px = t.price.where(trade)
    d = px.dropna().diff()
    tick_sign = np.sign(d).replace(0, np.nan).ffill().fillna(0).reindex(t.index).fillna(0)
    before = book.shift(1).where(book.shift(1).bid.notna(), book)  # book before the trade
    pmid = (before.bid + before.ask) / 2
    q = np.where(px > pmid, 1.0, np.where(px < pmid, -1.0, tick_sign))
    q = np.where(pmid.notna(), q, tick_sign)
    vol = t["size"].where(trade, 0.0)
    dep = book.bid_size + book.ask_size
    pb = book.shift(1)
    ofi = (
        np.where(book.bid >= pb.bid, book.bid_size, 0)
        - np.where(book.bid <= pb.bid, pb.bid_size, 0)
        - np.where(book.ask <= pb.ask, book.ask_size, 0)
        + np.where(book.ask >= pb.ask, pb.ask_size, 0)
    )
    ofi = np.where(pb.bid.isna() | book.bid.isna(), 0.0, ofi)
    ev = pd.DataFrame(
        {
            "ts": t.ts.to_numpy(dtype="datetime64[ns]").view(np.int64),
            "lm": np.log(ref),
            "vol": vol,
            "svt": tick_sign * vol,
            "svq": q * vol,
            "trade": trade,
            "q": np.where(trade, q, 0.0),
            "px": px,
            "imb": (book.bid_size - book.ask_size) / dep,
            "ofi": ofi,
            "dep": dep,
            "spread": (book.ask - book.bid) / mid * 1e4,
            "mdev": ((book.bid * book.ask_size + book.ask * book.bid_size) / dep - mid) / mid * 1e4,
        }
    )
    ev = ev[ev["lm"].notna()].reset_index(drop=True)
    ev["r"] = ev["lm"].diff().fillna(0.0)
    return ev


def at_rows(ev: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray:
    """Per row, the position of the last event with ts <= event_timestamp."""
    b = rows["event_timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    return np.searchsorted(ev["ts"].to_numpy(), b, side="right") - 1


def check(got: pd.Series, want: np.ndarray, rtol: float = RTOL, atol: float = ATOL) -> None:
    want = np.asarray(want, dtype=float)
    assert np.isfinite(want).sum() > 100, "reference mostly NaN: the check would be vacuous"
    np.testing.assert_allclose(
        got.to_numpy(), want, rtol=rtol, atol=atol, equal_nan=True, err_msg=str(got.name)
    )


def rolling_at(series: pd.Series, w: int, fn: str, pos: np.ndarray, need: int) -> np.ndarray:
    vals = getattr(series.rolling(w), fn)().to_numpy()
    out = vals[pos]
    out[pos + 1 < need] = np.nan  # warm-up: the window needs `need` ticks of the day
    return out


def test_tick_window_stats_match_pandas(data) -> None:
    ticks, feats = data
    ev = events(ticks[ticks.symbol == "IBM"])
    rows = feats[feats.symbol == "IBM"]
    pos = at_rows(ev, rows)
    check(rows["std_t60"], rolling_at(ev["r"], 60, "std", pos, 61) * 1e4)
    check(rows["imb_t60"], rolling_at(ev["imb"], 60, "mean", pos, 61))
    check(rows["spread_t20"], rolling_at(ev["spread"], 20, "mean", pos, 21))
    check(rows["micro_dev_bps"], ev["mdev"].to_numpy()[pos])
    slope = [
        np.polyfit(np.arange(20), ev["lm"].to_numpy()[p - 19 : p + 1], 1)[0] * 1e4 for p in pos
    ]
    check(rows["slope_t20"], slope, atol=1e-10)  # values ~0.01-0.3 bps/tick
    for w, col in ((20, "svt"), (180, "svq")):
        num = rolling_at(ev[col], w, "sum", pos, w + 1)
        den = rolling_at(ev["vol"], w, "sum", pos, w + 1)
        check(rows[f"{col}_t{w}"], np.where(den == 0, 0.0, num / np.where(den == 0, 1, den)))
    ofi = rolling_at(ev["ofi"], 60, "sum", pos, 61) / rolling_at(ev["dep"], 60, "mean", pos, 61)
    check(rows["ofi_t60"], ofi)
    ret = ev["lm"].to_numpy()[pos] - ev["lm"].to_numpy()[pos - 180]
    check(rows["ret_t180"], np.where(pos >= 180, ret * 1e4, np.nan))


def test_trade_windows_match_pandas(data) -> None:
    ticks, feats = data
    ev = events(ticks[ticks.symbol == "IBM"])
    tr = ev[ev["trade"]].reset_index(drop=True)
    rows = feats[feats.symbol == "IBM"]
    pos = at_rows(tr, rows)
    buy = (tr["q"] > 0).astype(float)
    check(rows["aggr_n20"], rolling_at(buy, 20, "mean", pos, 20))
    size = tr["vol"]
    z = (size - size.rolling(60).mean()) / size.rolling(60).std()
    check(rows["sizez_n60"], np.where(pos + 1 >= 60, z.to_numpy()[pos], np.nan))


def test_clock_and_session_features_match_pandas(data) -> None:
    ticks, feats = data
    ev = events(ticks[ticks.symbol == "IBM"])
    rows = feats[feats.symbol == "IBM"]
    b = rows["event_timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    ts, lm = ev["ts"].to_numpy(), ev["lm"].to_numpy()
    pos = at_rows(ev, rows)
    # time windows: ticks with ts in (b - 60 s, b]
    lo = np.searchsorted(ts, b - 60 * 10**9, side="right")
    cs = lambda x: np.concatenate([[0.0], np.cumsum(x)])  # noqa: E731
    svq, vol, r2 = cs(ev["svq"]), cs(ev["vol"]), cs(ev["r"] ** 2)
    num, den = svq[pos + 1] - svq[lo], vol[pos + 1] - vol[lo]
    check(rows["flow_s60"], np.where(den == 0, 0.0, num / np.where(den == 0, 1, den)))
    check(rows["rv_s60"], np.sqrt(np.maximum(r2[pos + 1] - r2[lo], 0)) * 1e4)
    check(rows["ret_s60"], (lm[pos] - lm[lo - 1]) * 1e4)
    allts = ticks.loc[ticks.symbol == "IBM", "ts"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    n_int = np.searchsorted(allts, b, "right") - np.searchsorted(allts, b - MIN, "right")
    check(rows["ticks_in_interval"], n_int.astype(float))
    # session VWAP and range from the session's trades / ticks up to b
    sess = ev[(ev.ts > OPEN) & (ev.ts <= CLOSE)]
    st = sess[sess["trade"]]
    pv, v = cs(st["px"] * st["vol"]), cs(st["vol"])
    k = np.searchsorted(st["ts"].to_numpy(), b, side="right")
    check(rows["vwap_dev_bps"], (lm[pos] - np.log(pv[k] / v[k])) * 1e4, atol=1e-10)
    hi = sess["lm"].cummax().to_numpy()
    lo_ = sess["lm"].cummin().to_numpy()
    ks = np.searchsorted(sess["ts"].to_numpy(), b, side="right") - 1
    check(rows["sess_range_bps"], (hi[ks] - lo_[ks]) * 1e4)
    # volume point of control: bins of one cent around the first session trade
    anchor = st["px"].iloc[0]
    binv = np.floor((st["px"] - anchor) / 0.01 + 0.5).astype(int)
    poc = []
    for kk in k:
        prof = st["vol"].iloc[:kk].groupby(binv.iloc[:kk]).sum()
        poc.append(anchor + prof.idxmax() * 0.01)  # idxmax: the lowest of equal bins
    check(rows["poc_dist_bps"], (lm[pos] - np.log(poc)) * 1e4)


def _bars(ev: pd.DataFrame, grid: np.ndarray) -> pd.DataFrame:
    """OHLC-V of the log price on the bar grid (bar = (g - 1 min, g]), carried when empty."""
    j = np.searchsorted(grid, ev["ts"].to_numpy(), side="left")
    g = ev.assign(bar=j).groupby("bar")
    out = pd.DataFrame(
        {
            "close": g["lm"].last(),
            "high": g["lm"].max(),
            "low": g["lm"].min(),
            "vol": g["vol"].sum(),
        }
    ).reindex(range(len(grid)))
    out["close"] = out["close"].ffill()
    out["high"] = out["high"].fillna(out["close"])
    out["low"] = out["low"].fillna(out["close"])
    out["vol"] = out["vol"].fillna(0.0)
    return out.set_index(pd.Index(grid))


def test_bar_and_cross_asset_features_match_pandas(data) -> None:
    ticks, feats = data
    ibm, spy = events(ticks[ticks.symbol == "IBM"]), events(ticks[ticks.symbol == "SPY"])
    day0 = pd.Timestamp("2013-10-08", tz=NY).value
    grid = day0 + MIN * np.arange(1, 1441)
    bi, bs = _bars(ibm, grid), _bars(spy, grid)
    rows = feats[feats.symbol == "IBM"].set_index("event_timestamp")
    at = rows.index.to_numpy(dtype="datetime64[ns]").view(np.int64)
    # fracdiff on bar closes
    w = fracdiff_weights(FeatureConfig().fracdiff_d, 30)
    fd = bi["close"].rolling(30).apply(lambda x: float(np.dot(w, x[::-1])), raw=True)
    check(rows["fracdiff_b30"], fd.loc[at].to_numpy())
    # average true range, % of price (log units)
    pc = bi["close"].shift(1)
    tr = np.maximum(bi["high"], pc) - np.minimum(bi["low"], pc)
    check(rows["atr_pct_b14"], (tr.rolling(14).mean() * 100).loc[at].to_numpy())
    vz = (bi["vol"] - bi["vol"].shift(1).rolling(30).mean()) / bi["vol"].shift(1).rolling(30).std()
    check(rows["volz_b30"], vz.loc[at].to_numpy())
    # leader returns, rolling correlation and beta of 1-minute returns
    xr, lr = bi["close"].diff(), bs["close"].diff()
    check(rows["lead_ret_b5"], (bs["close"].diff(5) * 1e4).loc[at].to_numpy())
    check(rows["lead_corr_b30"], xr.rolling(30).corr(lr).loc[at].to_numpy())
    beta = xr.rolling(30).cov(lr) / lr.rolling(30).var()
    check(rows["lead_beta_b30"], beta.loc[at].to_numpy())
    check(rows["lead_lagcorr_b30"], xr.rolling(30).corr(lr.shift(1)).loc[at].to_numpy())


def _div0(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 on a zero denominator (the engine's rule for ratios)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.where(den == 0, 0.0, num / np.where(den == 0, 1.0, den))


def test_normalized_family_matches_pandas(data) -> None:
    """The cross-symbol normalizations, each from the raw ticks (not from other features)."""
    ticks, feats = data
    ev = events(ticks[ticks.symbol == "IBM"])
    rows = feats[feats.symbol == "IBM"]
    pos = at_rows(ev, rows)
    lm = ev["lm"].to_numpy()
    sd = rolling_at(ev["r"], 180, "std", pos, 181) * 1e4  # the symbol's 180-tick volatility
    for col in ("mdev", "imb"):
        z = _div0(ev[col].to_numpy()[pos] - rolling_at(ev[col], 180, "mean", pos, 181),
                  rolling_at(ev[col], 180, "std", pos, 181))  # fmt: skip
        check(rows[f"{col}_z_t180"], z, rtol=1e-8)
    ofi_t = _div0(rolling_at(ev["ofi"], 20, "sum", pos, 21),
                  rolling_at(ev["ofi"], 20, "std", pos, 21) * np.sqrt(20))  # fmt: skip
    check(rows["ofi_tstat_t20"], ofi_t, rtol=1e-8)
    spread = ev["spread"].to_numpy()[pos]
    check(rows["spread_rel_t180"], _div0(spread, rolling_at(ev["spread"], 180, "mean", pos, 181)))
    check(rows["spread_vs"], _div0(spread, sd))
    check(rows["mdev_vs"], _div0(ev["mdev"].to_numpy()[pos], sd))
    ret20 = np.where(pos >= 20, (lm[pos] - lm[np.maximum(pos - 20, 0)]) * 1e4, np.nan)
    check(rows["ret_t20_vs"], _div0(ret20, sd * np.sqrt(20)))
    # clock windows: ticks with ts in (b - w s, b]; today's rates per second since the first tick
    b = rows["event_timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
    ts = ev["ts"].to_numpy()
    first = ticks.loc[ticks.symbol == "IBM", "ts"].min().value
    secs = np.maximum((b - first) / 1e9, 1.0)
    cs = lambda x: np.concatenate([[0.0], np.cumsum(x)])  # noqa: E731
    r2, svq, vol = cs(ev["r"] ** 2), cs(ev["svq"]), cs(ev["vol"])
    day_rv = np.sqrt(r2[pos + 1] / secs)  # realized volatility per sqrt-second today
    lo60 = np.searchsorted(ts, b - 60 * 10**9, side="right")
    lo300 = np.searchsorted(ts, b - 300 * 10**9, side="right")
    ret60 = lm[pos] - lm[lo60 - 1]
    check(rows["ret_s60_dvs"], _div0(ret60, day_rv * np.sqrt(60)))
    rv300 = np.sqrt(r2[pos + 1] - r2[lo300])
    check(rows["ret_s60_vs"], _div0(ret60, rv300 * np.sqrt(60 / 300)))
    check(rows["rv_rel_s300"], _div0(np.sqrt((r2[pos + 1] - r2[lo300]) / 300), day_rv))
    flow = (svq[pos + 1] - svq[lo60]) / 60
    check(rows["flow_rel_s60"], _div0(flow, vol[pos + 1] / secs))
