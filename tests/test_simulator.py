"""Market simulator: determinism, validity, intraday shape, signal, leader, regimes."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tickml.schema import TICK_COLUMNS, derive_seq, validate_ticks
from tickml.simulator import REGIMES, SimConfig, oracle_ic, simulate, simulate_day

pytestmark = pytest.mark.unit

DAY = dt.date(2024, 3, 4)  # a Monday (EST, before the DST switch)


@pytest.fixture(scope="module")
def sim():
    return simulate_day(SimConfig(), DAY)


def _bars(ticks: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Last quoted mid per symbol and bar (forward filled)."""
    mid = (ticks["bid"] + ticks["ask"]) / 2
    frame = pd.DataFrame({"symbol": ticks["symbol"], "ts": ticks["ts"], "mid": mid})
    wide = frame.pivot_table(
        index=pd.Grouper(key="ts", freq=freq), columns="symbol", values="mid", aggfunc="last"
    )
    return wide.ffill()


def test_every_field_is_described():
    for name, info in SimConfig.model_fields.items():
        assert info.description, name


def test_config_validation():
    cfg = SimConfig(symbols=["aapl", "msft"])
    assert cfg.n_symbols == 2 and cfg.symbol_names == ["AAPL", "MSFT"]
    assert cfg.leader_name == "AAPL"
    with pytest.raises(ValidationError):
        SimConfig(symbols=["A", "B"], n_symbols=3)
    with pytest.raises(ValidationError):
        SimConfig(symbols=["A", "B"], leader="C")
    with pytest.raises(ValidationError):
        SimConfig(signal_strength=-1)
    with pytest.raises(ValidationError):
        SimConfig(spread_probs=(0.5, 0.5, 0.5))
    with pytest.raises(ValidationError):
        SimConfig(bogus=1)


def test_deterministic_and_seeded_by_day_and_symbol():
    cfg = SimConfig(n_symbols=4, base_intensity=0.3)
    a, b = simulate_day(cfg, DAY), simulate_day(cfg, DAY)
    pd.testing.assert_frame_equal(a.ticks, b.ticks)
    pd.testing.assert_frame_equal(a.latent, b.latent)
    other_day = simulate_day(cfg, DAY + dt.timedelta(days=1))
    assert not other_day.ticks["price"].equals(a.ticks["price"])
    other_seed = simulate_day(cfg.model_copy(update={"seed": 8}), DAY)
    assert len(other_seed.ticks) != len(a.ticks)
    # adding a symbol leaves the others unchanged (the seed is mixed with the symbol name)
    more = simulate_day(cfg.model_copy(update={"n_symbols": 5}), DAY)
    for sym in ("SIM001", "SIM003"):
        x = a.ticks[a.ticks["symbol"] == sym].reset_index(drop=True)
        y = more.ticks[more.ticks["symbol"] == sym].reset_index(drop=True)
        pd.testing.assert_frame_equal(x, y)
    days = [day for day, _ in simulate(cfg, [DAY, DAY + dt.timedelta(days=1)])]
    assert days == [DAY, DAY + dt.timedelta(days=1)]


def test_ticks_are_canonical_and_valid(sim):
    t = sim.ticks
    assert list(t.columns) == list(TICK_COLUMNS)
    assert str(t["ts"].dtype) == "datetime64[ns, UTC]"
    res = validate_ticks(t, "sim", out_of_order_tolerance="0s")
    assert res.n_rejected == 0
    pd.testing.assert_frame_equal(res.ticks, t)  # already sorted by symbol, ts, seq
    assert t["symbol"].nunique() == 20
    expect = derive_seq(t["ts"].astype("int64").to_numpy(), t["symbol"].to_numpy())
    np.testing.assert_array_equal(t["seq"].to_numpy(), expect)
    # the session, New York time
    local = t["ts"].dt.tz_convert("America/New_York")
    assert local.min() >= pd.Timestamp("2024-03-04 09:30", tz="America/New_York")
    assert local.max() < pd.Timestamp("2024-03-04 16:00", tz="America/New_York")


def test_prices_on_grid_positive_never_crossed(sim):
    t = sim.ticks
    for col in ("bid", "ask", "price"):
        v = t[col].dropna().to_numpy()
        assert (v > 0).all()
        np.testing.assert_allclose(v, np.round(v / 0.01) * 0.01, atol=1e-9)
    assert (t["bid"] < t["ask"]).all()
    trades = t[t["price"].notna()]
    at_touch = (trades["price"] == trades["bid"]) | (trades["price"] == trades["ask"])
    assert at_touch.all()
    assert (t.loc[t["price"].isna(), "size"] == 0).all()
    assert 0.25 < len(trades) / len(t) < 0.35  # trade_share 0.3


def test_spreads_are_one_to_three_ticks(sim):
    ticks = ((sim.ticks["ask"] - sim.ticks["bid"]) / 0.01).round()
    assert set(ticks.unique()) <= {1.0, 2.0, 3.0}
    share = ticks.value_counts(normalize=True)
    assert share[1.0] > 0.5 and share[3.0] < 0.25
    assert ticks.median() == 1.0


def test_u_shaped_intraday_activity(sim):
    local = sim.ticks["ts"].dt.tz_convert("America/New_York")
    minutes = (local.dt.hour * 60 + local.dt.minute) - (9 * 60 + 30)
    first = (minutes < 30).sum()
    last = (minutes >= 360).sum()
    midday = ((minutes >= 180) & (minutes < 210)).sum()
    assert first > 1.5 * midday and last > 1.5 * midday


def test_trade_sizes_heavy_tailed_with_blocks(sim):
    size = sim.ticks.loc[sim.ticks["price"].notna(), "size"]
    assert (size % 100 == 0).all()
    assert size.quantile(0.99) / size.median() > 5
    blocks = (size >= 200 * 100).mean()
    assert 0.0005 < blocks < 0.01


def test_oracle_ic_follows_signal_strength():
    strong = simulate_day(SimConfig(signal_strength=0.5), DAY)
    null = simulate_day(SimConfig(signal_strength=0.0), DAY)
    assert oracle_ic(strong.latent) > 0.15
    assert abs(oracle_ic(null.latent)) < 0.06
    lat = strong.latent
    tail = lat["ts"] > lat["ts"].max() - pd.Timedelta(seconds=299)
    assert lat.loc[tail, "fwd_return"].isna().all()
    assert lat.loc[~tail, "fwd_return"].notna().all()


def test_signal_is_observable_in_flow_and_book(sim):
    t = sim.ticks
    sec = t["ts"].dt.floor("s")
    lat = sim.latent.set_index(["symbol", "ts"])["signal"]
    s = lat.reindex(pd.MultiIndex.from_arrays([t["symbol"], sec])).to_numpy()
    trades = t["price"].notna().to_numpy()
    side = np.where(t["price"] == t["ask"], 1.0, -1.0)
    assert np.corrcoef(side[trades], s[trades])[0, 1] > 0.15
    imbalance = ((t["bid_size"] - t["ask_size"]) / (t["bid_size"] + t["ask_size"])).to_numpy()
    assert np.corrcoef(imbalance, s)[0, 1] > 0.1


def test_followers_echo_the_leader_with_the_lag(sim):
    lat = sim.latent
    r = np.log(lat.pivot(index="ts", columns="symbol", values="mid")).diff().iloc[1:]
    lead, foll = r["SIM000"].to_numpy(), r["SIM005"].to_numpy()
    lag = 30
    at_lag = np.corrcoef(foll[lag:], lead[:-lag])[0, 1]
    assert at_lag > 0.3
    assert abs(np.corrcoef(foll, lead)[0, 1]) < 0.05
    assert abs(np.corrcoef(lead[lag:], foll[:-lag])[0, 1]) < 0.05  # not the other way round
    # visible in the quotes too: 10 s bars of the quoted mid, 3 bars later
    bars = np.log(_bars(sim.ticks, "10s")).diff().iloc[1:]
    followers = [c for c in bars.columns if c != "SIM000"]
    lead_b = bars["SIM000"].to_numpy()
    corr = [np.corrcoef(bars[c].to_numpy()[3:], lead_b[:-3])[0, 1] for c in followers]
    assert np.median(corr) > 0.2


def test_regimes_switch_and_change_volatility():
    cfg = SimConfig(n_symbols=5, regime_switches_per_day=10)
    lat = simulate_day(cfg, DAY).latent
    per_symbol = lat[lat["symbol"] == "SIM000"]
    switches = (per_symbol["regime"] != per_symbol["regime"].shift()).sum() - 1
    assert 3 <= switches <= 25
    assert set(lat["regime"].unique()) == set(REGIMES)
    r = np.log(lat["mid"]).groupby(lat["symbol"]).diff()
    vol = r.groupby(lat["regime"], observed=True).std()
    ratio = vol["volatile"] / vol["calm"]
    assert 1.8 < ratio < 3.2  # regime_vol (1.0, 2.5, 1.2)
    assert vol["trending"] / vol["calm"] < 1.5


def test_speed_twenty_symbols_one_day():
    cfg = SimConfig(seed=11)
    t0 = time.perf_counter()
    day = simulate_day(cfg, dt.date(2024, 3, 5))
    elapsed = time.perf_counter() - t0
    assert len(day.ticks) > 300_000
    assert elapsed < 10.0, elapsed  # ~0.7 s here; generous for a loaded 2-core machine
