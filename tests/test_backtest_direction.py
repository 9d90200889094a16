"""Backtest with a ``direction`` column (the direction model's prediction): it trades on the
direction's sign (not the short model's), the trap gate counts, unknown columns are ignored,
and the decisions equal per-timestamp live calls with the same direction."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from test_backtest import LONG_COLS, PLAIN, SHORT_COLS, _random_frame, frame_of, minutes

from tickml.backtest import BacktestConfig, run_backtest
from tickml.decision import DecisionConfig, DecisionState, decide

pytestmark = pytest.mark.unit

CFG = BacktestConfig(horizon=dt.timedelta(minutes=3), fee_bps=0.0)
#: the long model (DOWN in these frames) is not asked to confirm
NOLONG = PLAIN.model_copy(update={"require_agreement": False})


def _rising() -> pd.DataFrame:
    """One symbol whose mid rises a cent a minute; the short model always says DOWN."""
    t = minutes("10:00", 12)
    return frame_of([("A", w, "DOWN", 100 + 0.01 * i, 0.0) for i, w in enumerate(t)])


def test_trades_on_the_direction_sign():
    frame = _rising()
    short_only = run_backtest(frame, NOLONG, CFG)
    assert set(short_only.trades["side"]) == {-1}  # the short model's call: SHORT, loses
    assert short_only.metrics["net_pnl"] < 0
    frame["direction"] = 0.4  # the direction model says up
    frame["some_other_model_column"] = "ignored"  # unknown columns do not matter
    res = run_backtest(frame, NOLONG, CFG)
    assert set(res.trades["side"]) == {1} and res.metrics["net_pnl"] > 0
    np.testing.assert_array_equal(res.decisions["score"], 0.4)  # the score is the direction
    assert res.metrics["net_pnl"] == pytest.approx(-short_only.metrics["net_pnl"])
    # a NaN direction: no model for that row, the fallback ("last move persists") decides
    frame["direction"] = np.nan
    frame["last_return"] = -0.001
    res = run_backtest(frame, NOLONG, CFG)
    assert set(res.decisions["gate"]) == {"fallback"} and set(res.trades["side"]) == {-1}


def test_trap_gate_counts():
    frame = _rising()
    frame["direction"] = 0.4
    trap = frame.index % 3 == 0
    frame.loc[trap, SHORT_COLS] = [0.2, 0.1, 0.1, 0.55, 0.05]  # P(TRAP_UP) 0.55
    dec = NOLONG.model_copy(update={"max_trap_prob": 0.5})
    res = run_backtest(frame, dec, CFG)
    assert res.metrics["gate_counts"] == {"traded": int((~trap).sum()), "trap": int(trap.sum())}
    assert (res.decisions["gate"].to_numpy() == "trap").tolist() == trap.tolist()
    off = run_backtest(frame, NOLONG, CFG)  # max_trap_prob None: no trap gate
    assert off.metrics["gate_counts"] == {"traded": len(frame)}


def _assert_live_equal(back: pd.DataFrame, frame: pd.DataFrame, dec, by_direction) -> None:  # noqa: ANN001
    """The backtest's decisions equal one live ``decide`` call per timestamp (in time order,
    one state); ``by_direction(group)``: that timestamp's version has a direction model."""
    state = DecisionState()
    live = []
    for t, g in frame.sort_values(["event_timestamp", "symbol"]).groupby("event_timestamp"):
        d = decide(
            dec, state, t, g["symbol"].tolist(), g[SHORT_COLS].to_numpy(),
            g[LONG_COLS].to_numpy(), g["last_return"].to_numpy(), g["recent_vol"].to_numpy(),
            g["feature_age"].to_numpy(),
            direction=g["direction"].to_numpy() if by_direction(g) else None,
        )  # fmt: skip
        live.append(d.to_frame())
    live_frame = pd.concat(live, ignore_index=True)
    for col in ("symbol", "event_timestamp", "decision", "gate"):
        assert back[col].tolist() == live_frame[col].tolist(), col
    np.testing.assert_array_equal(back["score"].to_numpy(), live_frame["score"].to_numpy())


def test_decisions_equal_per_timestamp_live_calls_with_direction():
    frame = _random_frame(11)
    rng = np.random.default_rng(11)
    frame["direction"] = rng.normal(0, 0.3, len(frame))
    frame.loc[rng.random(len(frame)) < 0.03, "direction"] = np.nan
    dec = DecisionConfig(
        min_direction=0.1,
        max_trap_prob=0.3,
        cooldown=dt.timedelta(minutes=4),
        circuit_breaker_min_symbols=4,
        circuit_breaker_share=0.8,
    )
    res = run_backtest(frame, dec, BacktestConfig(horizon=dt.timedelta(minutes=5)))
    back = res.decisions
    _assert_live_equal(back, frame, dec, lambda g: True)
    assert {"traded", "trap", "min_confidence", "disagree", "fallback"} <= set(back["gate"])
    traded = back[back["gate"] == "traded"]
    assert (np.sign(traded["score"]) == traded["decision"].map({"LONG": 1, "SHORT": -1})).all()


def test_a_day_mixing_versions_with_and_without_a_direction_model():
    """Timestamps scored by a version without a direction model (``direction_model`` False) are
    decided as live decides them: ``direction=None`` (the short model calls the trade), not a
    NaN direction (that would be "no model": the fallback)."""
    frame = _random_frame(12)
    rng = np.random.default_rng(12)
    ts = frame["event_timestamp"]
    cut = ts.sort_values().iloc[len(ts) // 2]
    has = (ts >= cut).to_numpy()  # v1 (classifiers only) until the cut, then v2 (direction)
    frame["direction"] = np.where(has, rng.normal(0, 0.3, len(frame)), np.nan)
    frame.loc[has & (rng.random(len(frame)) < 0.03), "direction"] = np.nan  # v2 out on a row
    frame["direction_model"] = has
    dec = DecisionConfig(min_direction=0.1, max_trap_prob=0.3, cooldown=dt.timedelta(minutes=4))
    bcfg = BacktestConfig(horizon=dt.timedelta(minutes=5))
    res = run_backtest(frame, dec, bcfg)
    back = res.decisions
    _assert_live_equal(back, frame, dec, lambda g: bool(g["direction_model"].iloc[0]))
    early = (back["event_timestamp"] < cut).to_numpy()
    # v1's rows traded on the short model's score, not on the fallback
    assert (back["gate"][early] == "traded").any()
    assert not np.isnan(back["score"][early & (back["gate"] == "traded").to_numpy()]).any()
    # without the column every NaN direction is "no model": v1's rows would all fall back
    old = run_backtest(frame.drop(columns="direction_model"), dec, bcfg).decisions
    assert not (old["gate"][early] == "traded").any()
    # one version decides a timestamp: rows of one timestamp that disagree are an error
    frame.loc[frame.index[has][0], "direction_model"] = False
    with pytest.raises(ValueError, match="differs within a timestamp"):
        run_backtest(frame, dec, bcfg)
