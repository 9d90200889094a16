"""Triple-barrier labels: every class and precedence rule on hand-built paths, session and
price rules, no look-ahead, and checks against straightforward pandas/numpy on a real day."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tickml.labels import (
    CLASSES_3,
    CLASSES_5,
    LABEL_COLUMNS,
    TOUCH_VALUES,
    LabelConfig,
    consensus_filter,
    estimate_volatility,
    make_labels,
    triple_barrier,
)
from tickml.schema import coerce_ticks
from tickml.simulator import SimConfig, simulate_day

NY = "America/New_York"
DAY = dt.date(2013, 10, 8)
REAL_SYMBOLS = ["AIG", "BAC", "IBM", "SPY"]


def _ny(hhmm: str, day: dt.date = DAY) -> pd.Timestamp:
    return pd.Timestamp(f"{day} {hhmm}", tz=NY).tz_convert("UTC")


T0 = _ny("10:00")
H = pd.Timedelta("15min")
# barriers +-10 cents from 100.00, trap levels +-6 cents, path-quality limit 5 cents
POINTS = LabelConfig(barrier_mode="points", profit_take=10, stop_loss=10, point_value=0.01)


def _ticks(
    points: list[tuple[float, float]],
    t0: pd.Timestamp = T0,
    symbol: str = "XYZ",
    ref: float | None = 100.0,
    book: bool = True,
) -> pd.DataFrame:
    """A one-cent-wide book with the given mid at t0 + seconds (a reference tick at t0 - 60 s)."""
    rows = ([(-60.0, ref)] if ref is not None else []) + points
    ts = [t0 + pd.Timedelta(seconds=s) for s, _ in rows]
    mid = np.array([m for _, m in rows], dtype=float)
    n = len(rows)
    frame = pd.DataFrame(
        {
            "symbol": symbol,
            "ts": pd.DatetimeIndex(ts),
            "seq": np.arange(n, dtype=np.int64),
            "bid": mid - 0.005 if book else np.nan,
            "ask": mid + 0.005 if book else np.nan,
            "bid_size": 100.0 if book else np.nan,
            "ask_size": 100.0 if book else np.nan,
            "price": np.nan if book else mid,
            "size": 0.0 if book else 100.0,
        }
    )
    return coerce_ticks(frame)


def _events(times: list[pd.Timestamp], symbol: str = "XYZ") -> pd.DataFrame:
    return pd.DataFrame({"symbol": symbol, "event_timestamp": pd.DatetimeIndex(times)})


def _one(points, config=POINTS, n_classes=5, horizon=H, t0=T0, **kw) -> pd.Series:
    out = triple_barrier(_ticks(points, t0=t0, **kw), _events([t0]), horizon, config, n_classes)
    assert len(out) == 1
    return out.iloc[0]


# ------------------------------------------------------------------ hand-built paths

# (path [(seconds after t, mid)], expected label, touch, label_end seconds after t or None = H)
CASES_5 = {
    "up": ([(60, 100.03), (120, 100.10), (180, 99.0)], "UP", "up", 120),
    "down": ([(60, 99.97), (120, 99.90), (180, 101.0)], "DOWN", "down", 120),
    "flat_vertical": ([(60, 100.04), (120, 99.96), (600, 100.02)], "FLAT", "vertical", None),
    "flat_empty_path": ([], "FLAT", "vertical", None),
    "trap_up_by_touch": ([(60, 100.06), (120, 99.90)], "TRAP_UP", "down", 120),
    "trap_up_by_close": ([(60, 100.07), (300, 99.99)], "TRAP_UP", "vertical", None),
    "trap_down_by_touch": ([(60, 99.94), (120, 100.10)], "TRAP_DOWN", "up", 120),
    "trap_down_by_close": ([(60, 99.93), (300, 100.01)], "TRAP_DOWN", "vertical", None),
    # reached the trap level but closed above the start: not a failed move
    "up_share_close_above": ([(60, 100.07), (300, 100.01)], "FLAT", "vertical", None),
    # closing exactly at the start is not "beyond" it
    "up_share_close_at_start": ([(60, 100.07), (300, 100.00)], "FLAT", "vertical", None),
    # both trap levels reached: the close decides which move failed
    "both_shares_close_below": (
        [(60, 100.06), (120, 99.94), (300, 99.99)],
        "TRAP_UP",
        "vertical",
        None,
    ),
    "both_shares_close_above": (
        [(60, 99.94), (120, 100.06), (300, 100.01)],
        "TRAP_DOWN",
        "vertical",
        None,
    ),
    # 5 cents adverse = exactly max_adverse_share (0.5) of the 10-cent stop: not "below" it
    "down_touch_adverse_at_limit": ([(60, 100.05), (120, 99.90)], "FLAT", "down", 120),
    "down_touch_adverse_under_limit": ([(60, 100.04), (120, 99.90)], "DOWN", "down", 120),
    "up_touch_adverse_at_limit": ([(60, 99.95), (120, 100.10)], "FLAT", "up", 120),
    "up_touch_adverse_under_limit": ([(60, 99.96), (120, 100.10)], "UP", "up", 120),
    # a touch at exactly t + horizon counts; the tick after it cannot
    "touch_at_horizon": ([(900, 100.10)], "UP", "up", 900),
    "touch_after_horizon": ([(600, 100.02), (900.001, 100.50)], "FLAT", "vertical", None),
    # a barrier overshoot still is a touch of that barrier
    "gap_through_barrier": ([(60, 99.50)], "DOWN", "down", 60),
}


@pytest.mark.unit
@pytest.mark.parametrize("case", sorted(CASES_5))
def test_five_class_cases(case):
    path, label, touch, end_s = CASES_5[case]
    row = _one(path)
    assert row["label"] == label
    assert row["touch"] == touch
    expected_end = T0 + (H if end_s is None else pd.Timedelta(seconds=end_s))
    assert row["label_end"] == expected_end
    assert row["ref_price"] == pytest.approx(100.0)
    assert row["barrier_up"] == pytest.approx(100.10)
    assert row["barrier_down"] == pytest.approx(99.90)
    assert not row["truncated"]


CASES_3 = {
    # traps do not exist with 3 classes: path quality turns these into FLAT ...
    "trap_up_by_touch": ([(60, 100.06), (120, 99.90)], "FLAT", "DOWN"),
    "trap_down_by_touch": ([(60, 99.94), (120, 100.10)], "FLAT", "UP"),
    "trap_up_by_close": ([(60, 100.07), (300, 99.99)], "FLAT", "FLAT"),
    "up": ([(60, 100.03), (120, 100.10)], "UP", "UP"),
    "down": ([(60, 99.97), (120, 99.90)], "DOWN", "DOWN"),
    "flat": ([(60, 100.09), (120, 99.91)], "FLAT", "FLAT"),
}


@pytest.mark.unit
@pytest.mark.parametrize("case", sorted(CASES_3))
def test_three_class_cases_with_and_without_path_quality(case):
    path, with_pq, without_pq = CASES_3[case]
    assert _one(path, n_classes=3)["label"] == with_pq
    loose = POINTS.model_copy(update={"path_quality": False})
    assert _one(path, loose, n_classes=3)["label"] == without_pq


@pytest.mark.unit
def test_trap_beats_path_quality_and_path_quality_can_be_off():
    # 6 cents adverse before the up touch: a trap in 5 classes whatever path quality says
    assert _one([(60, 99.94), (120, 100.10)])["label"] == "TRAP_DOWN"
    loose = POINTS.model_copy(update={"path_quality": False})
    assert _one([(60, 99.94), (120, 100.10)], loose)["label"] == "TRAP_DOWN"
    assert _one([(60, 100.05), (120, 99.90)], loose)["label"] == "DOWN"  # FLAT with it on
    strict = POINTS.model_copy(update={"max_adverse_share": 0.2})
    assert _one([(60, 99.97), (120, 100.10)], strict)["label"] == "FLAT"
    assert _one([(60, 99.985), (120, 100.10)], strict)["label"] == "UP"


@pytest.mark.unit
def test_trap_share_is_configurable():
    path = [(60, 100.05), (120, 99.90)]  # 50% of the up barrier, then the down barrier
    assert _one(path)["label"] == "FLAT"  # 0.6: no trap; 5 cents adverse: path quality
    half = POINTS.model_copy(update={"trap_share": 0.5})
    assert _one(path, half)["label"] == "TRAP_UP"


@pytest.mark.unit
def test_min_return_at_the_vertical_barrier():
    loose = POINTS.model_copy(update={"path_quality": False, "min_return": 0.0002})
    assert _one([(300, 100.03)], loose)["label"] == "UP"  # r = 3.0e-4
    assert _one([(300, 99.97)], loose)["label"] == "DOWN"
    assert _one([(300, 100.01)], loose)["label"] == "FLAT"  # r = 1.0e-4 < min_return
    # traps still win over the close's sign
    assert _one([(60, 100.07), (300, 99.97)], loose)["label"] == "TRAP_UP"
    assert _one([(60, 100.07), (300, 99.97)], loose, n_classes=3)["label"] == "DOWN"
    # default None: a vertical close is FLAT; with path quality a target not reached is FLAT
    no_min = POINTS.model_copy(update={"path_quality": False})
    assert _one([(300, 100.03)], no_min)["label"] == "FLAT"
    pq = POINTS.model_copy(update={"min_return": 0.0002})
    assert _one([(300, 100.03)], pq)["label"] == "FLAT"


@pytest.mark.unit
def test_excursions_and_diagnostics():
    row = _one([(60, 100.06), (120, 99.90)])  # TRAP_UP decided by the down touch
    assert row["mfe"] == pytest.approx(np.log(100.0 / 99.90))
    assert row["mae"] == pytest.approx(np.log(100.06 / 100.0))
    row = _one([(60, 99.96), (120, 100.10), (130, 90.0)])
    assert row["label"] == "UP"
    assert row["mfe"] == pytest.approx(np.log(100.10 / 100.0))
    assert row["mae"] == pytest.approx(np.log(100.0 / 99.96))  # the 90.0 comes after the touch
    assert np.isnan(row["sigma"])  # points mode


@pytest.mark.unit
def test_reference_is_last_price_at_or_before_t_and_path_starts_after():
    # a tick exactly at t is the reference, not part of the path
    row = _one([(0, 100.10), (60, 100.15)])
    assert row["ref_price"] == pytest.approx(100.10)
    assert row["label"] == "FLAT" and row["barrier_up"] == pytest.approx(100.20)
    # fwd_return: price at t + horizon against the reference
    row = _one([(0, 100.10), (60, 100.15), (900, 100.12), (901, 105.0)])
    assert row["fwd_return"] == pytest.approx(np.log(100.12 / 100.10))


@pytest.mark.unit
def test_fwd_return_is_independent_of_the_touch():
    row = _one([(60, 100.10), (600, 100.30)])
    assert row["label"] == "UP"
    assert row["fwd_return"] == pytest.approx(np.log(100.30 / 100.0))


# ------------------------------------------------------------------ sessions, missing labels


@pytest.mark.unit
def test_horizon_never_crosses_the_close():
    t = _ny("15:50")
    late = [(300, 100.05), (660, 100.50)]  # 15:55, 16:01: the touch is after the close
    row = _one(late, t0=t)
    assert row["truncated"] and row["label"] == "FLAT" and row["touch"] == "vertical"
    assert row["label_end"] == _ny("16:00") and np.isnan(row["fwd_return"])
    # a touch before the close still labels a truncated event
    row = _one([(300, 100.10)], t0=t)
    assert row["truncated"] and row["label"] == "UP" and row["label_end"] == _ny("15:55")
    drop = POINTS.model_copy(update={"at_close": "drop"})
    row = _one(late, drop, t0=t)
    assert row["label"] is None and row["touch"] == "dropped_at_close"
    assert row["label_end"] == t + H and np.isnan(row["barrier_up"])
    # without a session the day and the symbol's data bound the path
    free = POINTS.model_copy(update={"session_only": False})
    row = _one([*late, (1000, 100.0)], free, t0=t)
    assert row["label"] == "UP" and row["label_end"] == _ny("16:01") and not row["truncated"]
    assert row["fwd_return"] == pytest.approx(np.log(100.50 / 100.0))
    row = _one([(300, 100.05), (600, 100.04)], free, t0=t)  # data ends at 16:00 < 16:05
    assert row["truncated"] and row["label_end"] == _ny("16:00") and np.isnan(row["fwd_return"])
    # the short horizon ends before the close: untouched by the session
    row = _one(late, t0=t, horizon="5min")
    assert not row["truncated"] and row["fwd_return"] == pytest.approx(np.log(100.05 / 100.0))


@pytest.mark.unit
def test_unlabelled_events_say_why():
    ticks = _ticks([(60, 100.03), (120, 100.10)])
    events = _events(
        [
            _ny("09:20"),  # before the open
            _ny("16:00"),  # at the close
            T0,  # fine
            T0 - pd.Timedelta("2min"),  # before the symbol's first tick
            T0 + pd.Timedelta("1D"),  # a day without ticks: nothing carries over a day
        ]
    )
    out = triple_barrier(ticks, events, H, POINTS)
    assert out["touch"].tolist() == [
        "outside_session",
        "outside_session",
        "up",
        "no_price",
        "no_price",
    ]
    assert out["label"].tolist() == [None, None, "UP", None, None]
    assert set(out["touch"]) <= set(TOUCH_VALUES)
    missing = out["label"].isna()
    assert (out.loc[missing, "label_end"] == out.loc[missing, "event_timestamp"] + H).all()
    assert out.loc[missing, "fwd_return"].isna().all()
    unknown = triple_barrier(ticks, _events([T0], symbol="NOPE"), H, POINTS)
    assert unknown["touch"].tolist() == ["no_price"]
    free = POINTS.model_copy(update={"session_only": False})
    out_free = triple_barrier(ticks, events, H, free)
    # 09:20 precedes the first tick; 16:00 follows the last one
    assert out_free["touch"].tolist() == [
        "no_price",
        "outside_session",
        "up",
        "no_price",
        "no_price",
    ]
    out_free = triple_barrier(ticks, _events([T0 + pd.Timedelta("2min")]), H, free)
    assert out_free["touch"].tolist() == ["outside_session"]  # at the symbol's last tick
    assert str(out["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert str(out["label_end"].dtype) == "datetime64[ns, UTC]"
    assert out.index.equals(events.index)
    assert list(out.columns) == ["symbol", "event_timestamp", *LABEL_COLUMNS]


@pytest.mark.unit
def test_empty_inputs():
    from tickml.schema import empty_ticks

    out = triple_barrier(empty_ticks(), _events([T0]), H)
    assert out["touch"].tolist() == ["no_price"] and out["label"].tolist() == [None]
    both = make_labels(_ticks([(60, 100.1)]), _events([]))
    assert len(both) == 0 and "label_short" in both.columns and "label_long" in both.columns


@pytest.mark.unit
def test_price_is_mid_else_last_trade():
    # trades-only symbol: the trade price is the price
    row = _one([(60, 100.10)], book=False)
    assert row["label"] == "UP" and row["ref_price"] == pytest.approx(100.0)
    # trades before the first quote, then the mid; a null-book trade later keeps the mid
    ticks = pd.concat(
        [
            _ticks([], ref=None).iloc[:0],
            _ticks([(-120, 99.0)], ref=None, book=False),  # first a trade at 99
            _ticks([(-30, 100.0)], ref=None),  # then a book with mid 100
            _ticks([(30, 100.5)], ref=None, book=False),  # a trade with a null book
            _ticks([(60, 100.10)], ref=None),
        ],
        ignore_index=True,
    )
    ticks["seq"] = np.arange(len(ticks))
    ev = _events([T0 - pd.Timedelta("1min"), T0])
    out = triple_barrier(ticks, ev, H, POINTS)
    assert out["ref_price"].tolist() == pytest.approx([99.0, 100.0])
    assert out["label"].tolist()[1] == "UP" and out["label_end"].iloc[1] == T0 + pd.Timedelta("60s")


@pytest.mark.unit
def test_vol_mode_on_a_hand_built_grid():
    # one price per minute from the open, alternating +-0.1% log steps: every 1-minute return
    # has |r| = 0.001, so the EWMA volatility is exactly 0.001 per minute
    open_ = _ny("09:30")
    k = np.arange(0, 40)
    logp = np.log(100.0) + 0.001 * (k % 2)
    ticks = _ticks(
        [(60.0 * i, float(np.exp(lp))) for i, lp in zip(k, logp, strict=True)], t0=open_, ref=None
    )
    cfg = LabelConfig(vol_min_samples=5)
    times = [open_ + pd.Timedelta(minutes=m) for m in (3, 4, 5, 10)]
    sigma = estimate_volatility(ticks, _events(times), "4min", cfg)
    assert np.isnan(sigma[0]) and np.isnan(sigma[1])  # 3, 4 returns < vol_min_samples
    assert sigma[2:] == pytest.approx([0.002, 0.002])  # 0.001 * sqrt(4)
    out = triple_barrier(ticks, _events(times), "4min", cfg)
    assert out["touch"].tolist()[:2] == ["no_vol", "no_vol"]
    assert out["label"].tolist()[:2] == [None, None]
    assert out["fwd_return"].notna().all()  # known even without a volatility
    # at minute 10 (price 100): barriers at 100 exp(+-0.002), never reached by +-0.1% steps
    assert out["barrier_up"].iloc[3] == pytest.approx(100 * np.exp(0.002))
    assert out["label"].iloc[3] == "FLAT"
    # a volatility passed in replaces the estimate
    given = triple_barrier(ticks, _events(times), "4min", cfg, volatility=np.full(4, 0.0008))
    assert given["touch"].tolist() == ["down", "up", "down", "up"]  # odd minutes are high
    # a barrier is never inside one point (min_barrier_points, default 1 cent)
    tiny = triple_barrier(ticks, _events(times), "4min", cfg, volatility=np.full(4, 1e-6))
    np.testing.assert_allclose(tiny["barrier_up"], tiny["ref_price"] + 0.01)
    np.testing.assert_allclose(tiny["barrier_down"], tiny["ref_price"] - 0.01)
    free = cfg.model_copy(update={"min_barrier_points": 0.0})
    tiny = triple_barrier(ticks, _events(times), "4min", free, volatility=np.full(4, 1e-6))
    np.testing.assert_allclose(tiny["barrier_up"], tiny["ref_price"] * np.exp(1e-6))


@pytest.mark.unit
def test_config_fields_are_described_and_validated():
    for name, info in LabelConfig.model_fields.items():
        assert info.description, name
    with pytest.raises(ValidationError):
        LabelConfig(short_horizon="-5min")
    with pytest.raises(ValidationError):
        LabelConfig(trap_share=1.5)
    with pytest.raises(ValidationError):
        LabelConfig(barrier_mode="atr")
    with pytest.raises(ValidationError):
        LabelConfig(session_open=dt.time(16), session_close=dt.time(9, 30))
    with pytest.raises(ValidationError):
        LabelConfig(bogus=1)
    with pytest.raises(ValueError):
        triple_barrier(_ticks([]), _events([T0]), H, POINTS, n_classes=4)  # type: ignore[arg-type]


# ------------------------------------------------------------------ consensus filter


@pytest.mark.unit
def test_consensus_filter_rules():
    short = ["UP", "UP", "DOWN", "FLAT", "FLAT", "TRAP_UP", "TRAP_UP", "TRAP_DOWN", None, "UP"]
    long = ["UP", "DOWN", "DOWN", "FLAT", "UP", "DOWN", "UP", "FLAT", "UP", None]
    agree = [True, False, True, True, False]
    assert consensus_filter(short, long).tolist() == agree + [True, True, True, False, False]
    assert consensus_filter(short, long, traps="opposite").tolist() == agree + [
        True,
        False,
        False,
        False,
        False,
    ]
    assert consensus_filter(short, long, traps="drop").tolist() == agree + [False] * 5
    with pytest.raises(ValueError):
        consensus_filter(["UP"], ["TRAP_UP"])
    with pytest.raises(ValueError):
        consensus_filter(["UP"], ["UP", "UP"])


# ------------------------------------------------------------------ simulator: many symbols/days


@pytest.mark.unit
def test_symbols_and_days_are_independent_and_order_free():
    cfg = SimConfig(n_symbols=3, base_intensity=0.5)
    days = [dt.date(2024, 3, 4), dt.date(2024, 3, 5)]
    ticks = pd.concat([simulate_day(cfg, d).ticks for d in days], ignore_index=True)
    ticks = ticks.sort_values(["symbol", "ts", "seq"], kind="stable").reset_index(drop=True)
    events = pd.concat(
        [
            _events(list(pd.date_range(_ny("09:31", d), _ny("16:00", d), freq="1min")), symbol=s)
            for d in days
            for s in cfg.symbol_names
        ],
        ignore_index=True,
    )
    config = LabelConfig(short_horizon="5min", long_horizon="10min")
    whole = make_labels(ticks, events, config)
    assert whole["label_short"].notna().mean() > 0.95
    parts = []
    for (sym, day), ev in events.groupby(
        [events["symbol"], events["event_timestamp"].dt.tz_convert(NY).dt.date], sort=False
    ):
        tk = ticks[(ticks["symbol"] == sym) & (ticks["ts"].dt.tz_convert(NY).dt.date == day)]
        parts.append(make_labels(tk, ev, config))
    pd.testing.assert_frame_equal(pd.concat(parts).sort_index(), whole)
    shuffled = ticks.sample(frac=1.0, random_state=3)
    pd.testing.assert_frame_equal(make_labels(shuffled, events, config), whole)


# ------------------------------------------------------------------ a real day


@pytest.fixture(scope="module")
def real(equity_root):
    from tickml.readers.equity import read_equity_day

    ticks = read_equity_day(equity_root, DAY, symbols=REAL_SYMBOLS).ticks
    grid = pd.date_range(_ny("09:31"), _ny("16:00"), freq="1min")
    events = pd.concat([_events(list(grid), symbol=s) for s in REAL_SYMBOLS], ignore_index=True)
    return ticks, events


def _price_series(ticks: pd.DataFrame) -> pd.DataFrame:
    """The documented price, the plain pandas way: mid (forward filled) else last trade."""
    out = []
    for _, g in ticks.groupby("symbol", sort=True):
        mid = ((g["bid"] + g["ask"]) / 2).ffill()
        trade = g["price"].ffill()
        out.append(pd.DataFrame({"symbol": g["symbol"], "ts": g["ts"], "p": mid.fillna(trade)}))
    return pd.concat(out).dropna(subset=["p"])


def _asof(prices: pd.DataFrame, symbols: pd.Series, at: pd.Series) -> np.ndarray:
    left = pd.DataFrame({"symbol": symbols.to_numpy(), "ts": at.to_numpy()})
    left["row"] = np.arange(len(left))
    merged = pd.merge_asof(
        left.sort_values("ts", kind="stable"),
        prices.sort_values("ts", kind="stable"),
        on="ts",
        by="symbol",
        direction="backward",
        allow_exact_matches=True,
    )
    return merged.sort_values("row")["p"].to_numpy()


@pytest.mark.slow
@pytest.mark.parametrize("horizon", ["1min", "5min", "15min"])
def test_fwd_return_matches_pandas(real, horizon):
    ticks, events = real
    out = triple_barrier(ticks, events, horizon, LabelConfig())
    prices = _price_series(ticks)
    p0 = _asof(prices, events["symbol"], events["event_timestamp"])
    p1 = _asof(prices, events["symbol"], events["event_timestamp"] + pd.Timedelta(horizon))
    crosses = events["event_timestamp"] + pd.Timedelta(horizon) > _ny("16:00")
    expected = np.where(
        crosses | (events["event_timestamp"] >= _ny("16:00")), np.nan, np.log(p1 / p0)
    )
    np.testing.assert_allclose(out["fwd_return"], expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        out["ref_price"][out["touch"] != "outside_session"],
        p0[(out["touch"] != "outside_session").to_numpy()],
    )
    assert (out["truncated"] == (crosses & (events["event_timestamp"] < _ny("16:00")))).all()


def _config(mode: str) -> LabelConfig:
    """Defaults, or 8-cent point barriers."""
    if mode == "points":
        return LabelConfig(barrier_mode="points", profit_take=8, stop_loss=8)
    return LabelConfig()


def _brute_force(
    by_symbol: dict[str, pd.DataFrame],
    row: pd.Series,
    horizon: pd.Timedelta,
    cfg: LabelConfig,
    n_classes: int,
) -> tuple[str, pd.Timestamp]:
    """One event's label from its raw tick path, written plainly from the docstring table."""
    g = by_symbol[row["symbol"]]
    t = row["event_timestamp"]
    end = min(t + horizon, _ny("16:00"))
    ref = g.loc[g["ts"] <= t, "p"].iloc[-1]
    path = g[(g["ts"] > t) & (g["ts"] <= end)]
    up, down = row["barrier_up"], row["barrier_down"]
    eps = 1e-9 * ref
    hit = path[(path["p"] >= up - eps) | (path["p"] <= down + eps)]
    if len(hit):
        stop = hit.index[0]
        before = path.loc[:stop]
        touched = "up" if hit["p"].iloc[0] >= up - eps else "down"
        decided_at = hit["ts"].iloc[0]
    else:
        before, touched, decided_at = path, "vertical", end
    hi = max(ref, before["p"].max()) if len(before) else ref
    lo = min(ref, before["p"].min()) if len(before) else ref
    close = before["p"].iloc[-1] if len(before) else ref
    five = n_classes == 5
    went_up = hi >= ref + cfg.trap_share * (up - ref) - eps
    went_down = lo <= ref - cfg.trap_share * (ref - down) + eps
    if touched == "up":
        if five and went_down:
            return "TRAP_DOWN", decided_at
        ok = (ref - lo) < cfg.max_adverse_share * (ref - down) - eps
        return ("UP" if ok or not cfg.path_quality else "FLAT"), decided_at
    if touched == "down":
        if five and went_up:
            return "TRAP_UP", decided_at
        ok = (hi - ref) < cfg.max_adverse_share * (up - ref) - eps
        return ("DOWN" if ok or not cfg.path_quality else "FLAT"), decided_at
    if five and went_up and close < ref - eps:
        return "TRAP_UP", decided_at
    if five and went_down and close > ref + eps:
        return "TRAP_DOWN", decided_at
    return "FLAT", decided_at


@pytest.mark.slow
@pytest.mark.parametrize(
    ("horizon", "mode", "n_classes"),
    [
        ("1min", "vol", 5),
        ("5min", "points", 5),
        ("15min", "vol", 5),
        ("30min", "vol", 3),
        ("15min", "points", 3),
    ],
)
def test_labels_match_a_brute_force_walk_on_a_real_day(real, horizon, mode, n_classes):
    ticks, events = real
    cfg = _config(mode)
    td = pd.Timedelta(horizon)
    out = triple_barrier(ticks, events, horizon, cfg, n_classes)
    classes = CLASSES_5 if n_classes == 5 else CLASSES_3
    lab = out["label"].notna()
    assert lab.mean() > 0.97
    assert set(out.loc[lab, "label"]) <= set(classes)
    assert (out["label_end"] >= out["event_timestamp"]).all()
    assert (out["label_end"] <= out["event_timestamp"] + td).all()
    assert (out.loc[lab, "label_end"] <= _ny("16:00")).all()
    assert (out.loc[lab, "mfe"] >= 0).all() and (out.loc[lab, "mae"] >= 0).all()
    by_symbol = {str(k): g for k, g in _price_series(ticks).groupby("symbol")}
    sample = out[lab].iloc[::7]
    assert set(sample["label"]) == set(classes)  # every class gets checked
    for _, row in sample.iterrows():
        label, end = _brute_force(by_symbol, row, td, cfg, n_classes)
        assert (row["label"], row["label_end"]) == (label, end), row


@pytest.mark.slow
def test_volatility_matches_pandas_and_uses_only_the_past(real):
    ticks, events = real
    cfg = LabelConfig()
    sigma = estimate_volatility(ticks, events, "15min", cfg)
    prices = _price_series(ticks)
    for sym in REAL_SYMBOLS:
        sel = (events["symbol"] == sym).to_numpy()
        grid = pd.Series(pd.date_range(_ny("09:30"), _ny("16:00"), freq="1min"))
        p = _asof(prices, pd.Series([sym] * len(grid)), grid)
        r2 = pd.Series(np.log(p)).diff() ** 2
        vol = np.sqrt(r2.ewm(halflife=30, adjust=True, min_periods=5).mean()) * np.sqrt(15)
        expected = vol.to_numpy()[1:]  # events at 09:31 .. 16:00 = grid points 1..390
        np.testing.assert_allclose(sigma[sel], expected, rtol=1e-10, equal_nan=True)
    # known at t: the estimate from ticks cut at C equals the full one for events up to C
    cut = _ny("12:00")
    early = (events["event_timestamp"] <= cut).to_numpy()
    sigma_cut = estimate_volatility(ticks[ticks["ts"] <= cut], events, "15min", cfg)
    np.testing.assert_array_equal(sigma_cut[early], sigma[early])
    assert np.isfinite(sigma[early]).sum() > 300


def _perturb(ticks: pd.DataFrame, mask: np.ndarray, factor: float) -> pd.DataFrame:
    out = ticks.copy()
    for c in ("bid", "ask", "price"):
        out.loc[mask, c] = out.loc[mask, c] * factor
    return out


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["points", "vol"])
def test_no_look_ahead_beyond_the_horizon(real, mode):
    ticks, events = real
    cfg = _config(mode)
    cut = _ny("12:30")
    base = make_labels(ticks, events, cfg)
    moved = make_labels(_perturb(ticks, (ticks["ts"] > cut).to_numpy(), 1.02), events, cfg)
    done = (events["event_timestamp"] + pd.Timedelta(cfg.long_horizon) <= cut).to_numpy()
    pd.testing.assert_frame_equal(moved[done], base[done])
    # the perturbation is real: later labels move
    assert not moved[~done].equals(base[~done])
    dropped = make_labels(ticks[ticks["ts"] <= cut], events, cfg)
    pd.testing.assert_frame_equal(dropped[done], base[done])


@pytest.mark.slow
def test_ticks_before_the_reference_act_only_through_the_volatility(real):
    ticks, events = real
    cut = _ny("12:00")
    before = (ticks["ts"] < cut).to_numpy()
    later = (events["event_timestamp"] >= cut + pd.Timedelta("1min")).to_numpy()
    # points mode: nothing before the reference tick matters
    pts = _config("points")
    a = triple_barrier(ticks, events, "15min", pts)
    b = triple_barrier(_perturb(ticks, before, 0.97), events, "15min", pts)
    pd.testing.assert_frame_equal(a[later], b[later])
    assert not a[~later].equals(b[~later])
    # vol mode: the old ticks move the volatility known at t, and through it only
    cfg = LabelConfig()
    moved_ticks = _perturb(ticks, before & (ticks["ts"] > _ny("11:00")).to_numpy(), 0.995)
    a = triple_barrier(ticks, events, "15min", cfg)
    b = triple_barrier(moved_ticks, events, "15min", cfg)
    assert not np.allclose(a.loc[later, "sigma"], b.loc[later, "sigma"])
    np.testing.assert_array_equal(a.loc[later, "ref_price"], b.loc[later, "ref_price"])
    c = triple_barrier(moved_ticks, events, "15min", cfg, volatility=a["sigma"])
    pd.testing.assert_frame_equal(a[later], c[later])


@pytest.mark.slow
def test_make_labels_and_class_balance_on_a_real_day(real):
    ticks, events = real
    out = make_labels(ticks, events, LabelConfig())
    for name in ("short", "long"):
        for col in LABEL_COLUMNS:
            assert f"{col}_{name}" in out.columns
    assert out["label_end"].equals(
        pd.Series(np.maximum(out["label_end_short"], out["label_end_long"]), index=out.index)
    )
    assert set(out["label_short"].dropna()) == set(CLASSES_5)
    assert set(out["label_long"].dropna()) == set(CLASSES_3)
    for sym in ["AIG", "BAC", "IBM"]:
        share = out.loc[out["symbol"] == sym, "label_short"].value_counts(normalize=True)
        assert share.max() < 0.6, (sym, share)
        assert share[["UP", "DOWN"]].min() > 0.08, (sym, share)
        assert share[["TRAP_UP", "TRAP_DOWN"]].sum() > 0.03, (sym, share)
    kept = out[consensus_filter(out["label_short"], out["label_long"])]
    assert 0.2 * len(out) < len(kept) < len(out)


@pytest.mark.slow
def test_one_symbol_day_labels_fast(real):
    ticks, events = real
    aig, ev = ticks[ticks["symbol"] == "AIG"], events[events["symbol"] == "AIG"]
    triple_barrier(aig, ev, "15min")  # compile / warm the numba cache
    start = time.perf_counter()
    triple_barrier(aig, ev, "15min")
    assert time.perf_counter() - start < 1.0
