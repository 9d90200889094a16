"""The feature table, configuration switches, warm-up and NaN rules, sampling rules, fracdiff."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tickml.features import (
    ALL_FAMILIES,
    FEATURES,
    FeatureConfig,
    StreamingFeatureEngine,
    choose_fracdiff_d,
    compute_features,
    feature_defs,
    feature_names,
    fracdiff,
    fracdiff_weights,
)
from tickml.readers.equity import read_equity_day

pytestmark = pytest.mark.unit
T0 = pd.Timestamp("2013-10-08 14:00", tz="UTC")  # 10:00 New York
NO_SESSION = dict(session_open=None, session_close=None)


def ticks_frame(
    symbol: str,
    seconds: np.ndarray,
    book: bool = True,
    trade_every: int = 1,
    start: pd.Timestamp = T0,
) -> pd.DataFrame:
    n = len(seconds)
    k = np.arange(n)
    mid = 50.0 + 0.01 * np.round(np.sin(k / 7.0) * 5)
    trade = k % trade_every == 0
    return pd.DataFrame(
        {
            "symbol": symbol,
            "ts": start + pd.to_timedelta(seconds, unit="s"),
            "seq": k,
            "bid": mid - 0.005 if book else np.nan,
            "ask": mid + 0.005 if book else np.nan,
            "bid_size": (100.0 + 100 * (k % 5)) if book else np.nan,
            "ask_size": (300.0 + 100 * (k % 3)) if book else np.nan,
            "price": np.where(trade, mid + 0.005 * np.where(k % 2, 1, -1), np.nan),
            "size": np.where(trade, 100.0 * (1 + k % 4), 0.0),
        }
    )


@pytest.fixture(scope="module")
def ibm(equity_root) -> pd.DataFrame:
    return read_equity_day(equity_root, dt.date(2013, 10, 8), symbols=["IBM"]).ticks


def test_feature_table() -> None:
    names = [f.name for f in FEATURES]
    assert 150 <= len(names) <= 250
    assert names == feature_names() == feature_names(FeatureConfig())
    assert len(set(names)) == len(names)
    assert {f.family for f in FEATURES} == set(ALL_FAMILIES)
    for f in FEATURES:
        assert f.description and f.op, f.name
    assert "ret_t20" in names and "blk6_smart" in names and "lead_beta_b30" in names


def test_windows_change_names() -> None:
    names = feature_names(FeatureConfig(tick_windows=(10, 50), n_blocks=4, time_windows_s=(30,)))
    assert "ret_t10" in names and "ret_t50" in names and "ret_t20" not in names
    assert "blk4_slope" in names and "blk5_slope" not in names
    assert "flow_s30" in names and "flow_s60" not in names


def test_family_switches_select_columns_with_identical_values(ibm: pd.DataFrame) -> None:
    full = compute_features(ibm, FeatureConfig(leader=None))
    # normalized alone reads price / microstructure features: computed, not output
    for fams in (
        ("price",),
        ("session", "microstructure"),
        ("blocks", "regime", "stationarity"),
        ("normalized",),
    ):
        cfg = FeatureConfig(families=fams, leader=None)
        names = feature_names(cfg)
        assert {d.family for d in feature_defs(cfg)} == set(fams)
        part = compute_features(ibm, cfg)
        assert list(part.columns) == ["symbol", "event_timestamp", *names, "last_tick_ts"]
        a, b = part[names].to_numpy(), full[names].to_numpy()
        assert ((a == b) | (np.isnan(a) & np.isnan(b))).all()


def test_output_schema_and_empty_input(ibm: pd.DataFrame) -> None:
    out = compute_features(ibm.iloc[:5000])
    assert str(out["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert str(out["last_tick_ts"].dtype) == "datetime64[ns, UTC]"
    assert all(out[n].dtype == np.float64 for n in feature_names())
    empty = compute_features(ibm.iloc[:0])
    assert list(empty.columns) == list(out.columns) and len(empty) == 0
    shuffled = ibm.iloc[:5000].sample(frac=1.0, random_state=1)
    assert compute_features(shuffled).equals(out)


def test_warmup_nan_then_values() -> None:
    # one tick per second from 10:00:01: 60 ticks at 10:01, 120 at 10:02, 180 at 10:03 ...
    cfg = FeatureConfig(**NO_SESSION, leader=None)
    rows = compute_features(ticks_frame("X", np.arange(1, 300)), cfg).set_index("event_timestamp")
    at = lambda m: rows.loc[T0 + pd.Timedelta(minutes=m)]  # noqa: E731
    assert np.isfinite(at(1)["ret_t20"]) and np.isnan(at(1)["ret_t60"])
    assert np.isfinite(at(2)["ret_t60"]) and np.isnan(at(2)["ret_t180"])
    assert np.isnan(at(3)["ret_t180"]) and np.isfinite(at(4)["ret_t180"])  # needs 181 ticks
    assert np.isnan(at(1)["ret_s60"]) and np.isfinite(at(2)["ret_s60"])  # first tick 10:00:01
    assert np.isnan(at(4)["ret_s300"]) and np.isfinite(at(4)["ret_s10"])
    assert np.isnan(at(1)["atr_pct_b14"])
    assert at(1)["ticks_in_interval"] == 60 and at(1)["trade_rate_s60"] == 1.0


def test_nan_only_where_documented_and_never_inf() -> None:
    cfg = FeatureConfig(**NO_SESSION)  # leader SPY absent from the data
    quoted = ticks_frame("Q", np.arange(0.5, 2400, 0.5), trade_every=3)
    trades_only = ticks_frame("T", np.arange(0.5, 2400, 0.7), book=False)
    rows = compute_features(pd.concat([quoted, trades_only]), cfg)
    vals = rows[feature_names(cfg)]
    assert not np.isinf(vals.to_numpy()).any()
    late = rows["event_timestamp"] >= T0 + pd.Timedelta(minutes=32)  # every window filled
    defs = {d.name: d for d in feature_defs(cfg)}
    for name in vals.columns:
        nan = vals[name].isna()
        if not defs[name].nan_when:
            assert not nan.any(), name
        elif defs[name].family == "cross_asset":
            assert nan.all(), name  # no leader in the data
        elif "book" in defs[name].nan_when:
            assert nan[(rows["symbol"] == "T") & late].all(), name
            assert not nan[(rows["symbol"] == "Q") & late].any(), name
        else:
            assert not nan[late].any(), name


def test_every_n_rows_hold_all_ticks_of_their_timestamp() -> None:
    cfg = FeatureConfig(**NO_SESSION, leader=None, every_n_ticks=2)
    t = ticks_frame("X", np.array([1.0, 1.0, 1.0, 2.0, 3.0]))
    rows = compute_features(t, cfg)
    assert list(rows["event_timestamp"]) == [T0 + pd.Timedelta("1s"), T0 + pd.Timedelta("3s")]
    assert (rows["event_timestamp"] == rows["last_tick_ts"]).all()
    assert rows["trade_rate_s10"].tolist() == [0.3, 0.5]  # 3 trades by 1 s, 5 by 3 s


def test_each_day_starts_from_an_empty_state() -> None:
    cfg = FeatureConfig(**NO_SESSION, leader=None)
    day1 = ticks_frame("X", np.arange(1, 400))
    day2 = ticks_frame("X", np.arange(1, 30), start=T0 + pd.Timedelta(days=1))
    both = compute_features(pd.concat([day1, day2]), cfg)
    alone = compute_features(day2, cfg)
    second = both[both["event_timestamp"] > T0 + pd.Timedelta(hours=12)].reset_index(drop=True)
    assert second.equals(alone)
    assert np.isnan(alone["ret_t60"]).all()


def test_session_rows_and_values() -> None:
    t = ticks_frame("X", np.arange(-1800, 1800, 2.0))  # 09:30 .. 10:30 New York
    rows = compute_features(t, FeatureConfig(leader=None))
    ny = rows["event_timestamp"].dt.tz_convert("America/New_York")
    assert ny.min().time() == dt.time(9, 31) and ny.max().time() == dt.time(16, 0)
    assert len(rows) == 390  # rows go on to the close after the last tick (stale)
    last = rows.iloc[-1]
    assert last["seconds_since_last_tick"] == pytest.approx(5.5 * 3600 + 2.0)
    assert last["ticks_in_interval"] == 0
    assert rows["minutes_since_open"].iloc[0] == 1.0
    first = rows.iloc[0]
    assert -50 < first["vwap_dev_bps"] < 50 and 0 <= first["sess_rangepos"] <= 1


def test_stream_adds_symbols_and_drops_ticks_of_a_past_day() -> None:
    cfg = FeatureConfig(**NO_SESSION, leader=None)
    eng = StreamingFeatureEngine(cfg)
    day2 = (T0 + pd.Timedelta(days=1)).value
    eng.update("NEW", day2, 10.0, 10.01, 100.0, 100.0, np.nan, 0.0)
    assert eng.symbols == ["NEW"]
    eng.update("NEW", T0.value, 10.0, 10.01, 100.0, 100.0, np.nan, 0.0)
    assert eng.dropped_late == 1


def test_config_validation() -> None:
    with pytest.raises(ValidationError):
        FeatureConfig(interval="7s")  # does not divide a day
    with pytest.raises(ValidationError):
        FeatureConfig(session_open=dt.time(9, 30), session_close=None)
    with pytest.raises(ValidationError):
        FeatureConfig(families=("price", "nonsense"))
    assert FeatureConfig(tick_windows=(60, 20, 20)).tick_windows == (20, 60)


def test_fracdiff_weights_and_choice() -> None:
    assert np.allclose(fracdiff_weights(1.0, 4), [1, -1, 0, 0])
    assert np.allclose(fracdiff_weights(0.0, 3), [1, 0, 0])
    w = fracdiff_weights(0.5, 3)
    assert np.allclose(w, [1, -0.5, -0.125])
    x = np.arange(10.0)
    assert np.allclose(fracdiff(x, 1.0, 2)[1:], 1.0)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=400)
    assert choose_fracdiff_d(noise) == 0.0  # already stationary
    walk = np.cumsum(noise)
    d = choose_fracdiff_d(walk)
    assert 0.0 < d <= 1.0
    assert choose_fracdiff_d([walk, noise]) == d


def test_selected_features_are_the_same_values(ibm: pd.DataFrame) -> None:
    full = compute_features(ibm, FeatureConfig(leader=None))
    pick = ("smart_dumb_n60", "mom_score", "vwap_dev_bps", "blk2_volz")
    cfg = FeatureConfig(leader=None, features=pick)
    assert feature_names(cfg) == ["mom_score", "smart_dumb_n60", "blk2_volz", "vwap_dev_bps"]
    part = compute_features(ibm, cfg)  # the features they read are computed, not output
    assert list(part.columns[2:-1]) == feature_names(cfg)
    a, b = part[feature_names(cfg)].to_numpy(), full[feature_names(cfg)].to_numpy()
    assert ((a == b) | (np.isnan(a) & np.isnan(b))).all()
    eng = StreamingFeatureEngine(cfg, ["IBM"])
    assert eng.names == feature_names(cfg)
    with pytest.raises(ValueError, match="unknown features"):
        feature_names(FeatureConfig(features=("nope",)))
