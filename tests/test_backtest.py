"""Backtest: hand-computed P&L with costs, every gate in a scripted run, zero signal, decisions
identical to per-timestamp live calls, and real equity quotes (alignment with fwd_return)."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

from tickml.backtest import BacktestConfig, run_backtest
from tickml.decision import (
    LONG_CLASSES,
    SHORT_CLASSES,
    DecisionConfig,
    DecisionState,
    TimeWindow,
    decide,
)

NY = "America/New_York"
SHORT_COLS = [f"p_short_{c}" for c in SHORT_CLASSES]
LONG_COLS = [f"p_long_{c}" for c in LONG_CLASSES]
PROBS = {
    "UP": ([0.6, 0.1, 0.2, 0.05, 0.05], [0.5, 0.2, 0.3]),
    "DOWN": ([0.1, 0.6, 0.2, 0.05, 0.05], [0.2, 0.5, 0.3]),
    "FLAT": ([0.1, 0.1, 0.7, 0.05, 0.05], [0.2, 0.2, 0.6]),
    "WEAK": ([0.35, 0.3, 0.25, 0.05, 0.05], [0.5, 0.2, 0.3]),
    "DISAGREE": ([0.6, 0.1, 0.2, 0.05, 0.05], [0.2, 0.5, 0.3]),
    "NAN": ([np.nan] * 5, [np.nan] * 3),
}

#: gates only where a test wants them
PLAIN = DecisionConfig(
    session_open=None,
    session_close=None,
    no_trade_after_open=dt.timedelta(0),
    no_trade_before_close=dt.timedelta(0),
    cooldown=dt.timedelta(0),
    max_trades_per_day=None,
    vol_halt_k=None,
    circuit_breaker_share=None,
)


def ny(hhmm: str, day: str = "2013-10-08") -> pd.Timestamp:
    return pd.Timestamp(f"{day} {hhmm}", tz=NY).tz_convert("UTC")


def frame_of(rows: list[tuple]) -> pd.DataFrame:
    """rows: (symbol, "HH:MM" or Timestamp, signal, mid, spread, extra dict)."""
    out = []
    for sym, when, sig, mid, spread, *extra in rows:
        ps, pl = PROBS[sig]
        rec = {
            "symbol": sym,
            "event_timestamp": ny(when) if isinstance(when, str) else when,
            "mid": mid,
            "spread": spread,
        }
        rec.update(zip(SHORT_COLS, ps, strict=True))
        rec.update(zip(LONG_COLS, pl, strict=True))
        if extra:
            rec.update(extra[0])
        out.append(rec)
    return pd.DataFrame(out)


def minutes(start: str, n: int) -> list[str]:
    t0 = pd.Timestamp(f"2013-10-08 {start}")
    return [(t0 + pd.Timedelta(minutes=i)).strftime("%H:%M") for i in range(n)]


@pytest.mark.unit
def test_hand_computed_pnl_with_costs():
    cfg = BacktestConfig(horizon=dt.timedelta(minutes=5), fee_bps=1.0, notional=1000.0)
    t = minutes("10:00", 11)
    a_mid = [100, 100.2, 99.9, 100.1, 100.3, 100.5, 100.5, 100.4, 100.4, 100.4, 100.4]
    a_spread = [0.02, 0.02, 0.02, 0.02, 0.02, 0.04, 0.02, 0.02, 0.02, 0.02, 0.02]
    b_mid = [50, 49.8, 49.5, 49.6, 49.7, 49.8, 49.8, 49.9, 50.0, 50.0, 50.0]
    c_mid = [20.0, 20.1, 20.2, 20.3, 20.4, 20.5, 20.6, 20.7, 20.8, 20.9, 21.0]
    rows = []
    for i, hhmm in enumerate(t):
        rows.append(("A", hhmm, "UP" if i == 0 else "FLAT", a_mid[i], a_spread[i]))
        # B: short at 10:00, reversed by a long signal at 10:02, held 5 minutes
        rows.append(("B", hhmm, {0: "DOWN", 2: "UP"}.get(i, "FLAT"), b_mid[i], 0.01))
        # C: long at 10:00, extended by another long signal at 10:03 -> exit at 10:08
        rows.append(("C", hhmm, "UP" if i in (0, 3) else "FLAT", c_mid[i], 0.0))
    # D: long at 15:58, the day ends at 16:00 before the horizon -> closed at the last row
    for hhmm, mid in (("15:58", 10.0), ("15:59", 10.1), ("16:00", 10.2)):
        rows.append(("D", hhmm, "UP" if hhmm == "15:58" else "FLAT", mid, 0.02))
    frame = frame_of(rows).sample(frac=1.0, random_state=3)  # input order must not matter
    res = run_backtest(frame, PLAIN, cfg)
    tr = res.trades.set_index(["symbol", "entry_ts"])
    fee = 1e-4

    def cost(q, mid, spread):
        return q * (spread / 2 + mid * fee)

    # A: qty 10; entry cost 10 * (0.01 + 0.01) = 0.2; exit 10 * (0.02 + 0.01005) = 0.3005
    a = tr.loc[("A", ny("10:00"))]
    assert a.exit_ts == ny("10:05") and a.exit_reason == "horizon" and a.side == 1
    assert a.gross == pytest.approx(5.0) and a.costs == pytest.approx(0.5005)
    assert a.net == pytest.approx(4.4995) and a.net_return == pytest.approx(4.4995e-3)
    # B: short 20 @ 50, covered @ 49.5 on the reversal; long 1000 / 49.5 @ 49.5 to 10:07 @ 49.9
    b1 = tr.loc[("B", ny("10:00"))]
    assert b1.side == -1 and b1.exit_reason == "reverse" and b1.exit_ts == ny("10:02")
    assert b1.gross == pytest.approx(10.0)
    assert b1.costs == pytest.approx(cost(20, 50, 0.01) + cost(20, 49.5, 0.01))
    b2 = tr.loc[("B", ny("10:02"))]
    q2 = 1000 / 49.5
    assert b2.side == 1 and b2.exit_ts == ny("10:07") and b2.exit_reason == "horizon"
    assert b2.gross == pytest.approx(q2 * 0.4)
    assert b2.costs == pytest.approx(cost(q2, 49.5, 0.01) + cost(q2, 49.9, 0.01))
    c = tr.loc[("C", ny("10:00"))]
    assert c.exit_ts == ny("10:08") and c.gross == pytest.approx(50 * 0.8)
    assert c.costs == pytest.approx(cost(50, 20.0, 0) + cost(50, 20.8, 0))
    d = tr.loc[("D", ny("15:58"))]
    assert d.exit_ts == ny("16:00") and d.exit_reason == "eod"
    assert d.gross == pytest.approx(100 * 0.2)
    assert len(res.trades) == 5

    m = res.metrics
    nets = [a.net, b1.net, b2.net, c.net, d.net]
    assert m["net_pnl"] == pytest.approx(sum(nets))
    assert res.equity["equity"].iloc[-1] == pytest.approx(sum(nets))
    assert m["n_trades"] == 5 and m["hit_rate"] == 1.0 and m["n_days"] == 1
    assert m["exit_reasons"] == {
        "horizon": 3,
        "reverse": 1,
        "eod": 1,
        "stop_loss": 0,
        "take_profit": 0,
    }
    assert m["sharpe"] is None  # one day
    assert m["trades_per_day"] == 5.0
    # traded value: 5 entries of 1000 + the exits at their mids
    exits = 10 * 100.5 + 20 * 49.5 + q2 * 49.9 + 50 * 20.8 + 100 * 10.2
    assert m["turnover"] == pytest.approx((5000 + exits) / 1000)
    # A's marked-to-market equity: -0.2, +2, -3, +2, +2, +2 - 0.3005 -> drawdown 3.0 alone
    a_eq = res.symbol_equity.query("symbol == 'A'")["equity"].to_numpy()
    np.testing.assert_allclose(a_eq[:6], [-0.2, 1.8, -1.2, 0.8, 2.8, 4.4995])
    assert res.symbol_equity.query("symbol == 'A'")["position"].tolist()[:6] == [1] * 5 + [0]
    only_a = run_backtest(frame[frame["symbol"] == "A"], PLAIN, cfg)
    assert only_a.metrics["max_drawdown"] == pytest.approx(3.0)
    assert res.daily["pnl"].sum() == pytest.approx(sum(nets))
    json.dumps(m, allow_nan=False)


@pytest.mark.unit
def test_every_gate_fires_in_a_scripted_run():
    dec = DecisionConfig(
        cooldown=dt.timedelta(minutes=10),
        max_trades_per_day=2,
        vol_halt_k=5.0,
        vol_halt_duration=dt.timedelta(minutes=5),
        circuit_breaker_share=0.9,
        circuit_breaker_min_symbols=4,
        max_feature_age=dt.timedelta(minutes=2),
        no_trade_windows=(TimeWindow(start=dt.time(12), end=dt.time(12, 5)),),
    )
    calm = {"last_return": 0.0, "recent_vol": 0.001, "feature_age": 5.0}
    rows = []

    def add(sym, hhmm, sig, **over):
        rows.append((sym, hhmm, sig, 10.0, 0.01, {**calm, **over}))

    add("A", "09:33", "UP")  # no_trade_window (first 5 minutes)
    add("A", "10:00", "UP")  # traded
    add("A", "10:05", "UP")  # cooldown
    add("A", "10:20", "DOWN")  # traded (reverses)
    add("A", "10:40", "UP")  # max_trades (2 a day)
    add("B", "10:00", "WEAK")  # min_confidence
    add("B", "10:05", "DISAGREE")  # disagree
    add("B", "10:20", "UP", feature_age=300.0)  # stale
    add("B", "10:40", "NAN", last_return=0.0004)  # fallback, traded by the rule
    add("C", "10:00", "FLAT", last_return=0.02)  # a flash move halts C ...
    add("C", "10:04", "UP")  # vol_halt (halted until 10:05)
    add("C", "12:01", "UP")  # no_trade_window (configured)
    for s in ("D", "E", "F", "G"):  # 4 of 4 scored symbols say UP at 11:00
        add(s, "11:00", "UP")
    res = run_backtest(frame_of(rows), dec, BacktestConfig())
    got = res.decisions.set_index(["symbol", "event_timestamp"])["gate"]
    expected = {
        ("A", "09:33"): "no_trade_window",
        ("A", "10:00"): "traded",
        ("A", "10:05"): "cooldown",
        ("A", "10:20"): "traded",
        ("A", "10:40"): "max_trades",
        ("B", "10:00"): "min_confidence",
        ("B", "10:05"): "disagree",
        ("B", "10:20"): "stale",
        ("B", "10:40"): "fallback",
        ("C", "10:00"): "min_confidence",
        ("C", "10:04"): "vol_halt",
        ("C", "12:01"): "no_trade_window",
        ("D", "11:00"): "circuit_breaker",
    }
    for (sym, hhmm), gate in expected.items():
        assert got.loc[(sym, ny(hhmm))] == gate, (sym, hhmm)
    tr = res.trades
    assert sorted(zip(tr["symbol"], tr["entry_ts"], tr["side"], strict=True)) == [
        ("A", ny("10:00"), 1),
        ("A", ny("10:20"), -1),
        ("B", ny("10:40"), 1),
    ]
    # A's long is due at 10:15; its next row is 10:20: closed there first, then the short opens
    first = tr.set_index("entry_ts").loc[ny("10:00")]
    assert first.exit_reason == "horizon" and first.exit_ts == ny("10:20")
    assert res.metrics["gate_counts"]["circuit_breaker"] == 4


@pytest.mark.unit
def test_zero_signal_means_no_trades():
    rng = np.random.default_rng(0)
    rows = []
    for day in ("2013-10-07", "2013-10-08"):
        for i in range(60):
            for s in ("A", "B"):
                when = pd.Timestamp(f"{day} 10:00", tz=NY) + pd.Timedelta(minutes=i)
                rows.append((s, when, "FLAT", 10 + rng.normal(), 0.01))
    res = run_backtest(frame_of(rows), PLAIN, BacktestConfig())
    assert res.trades.empty and res.metrics["n_trades"] == 0
    assert res.metrics["net_pnl"] == 0.0 and res.metrics["max_drawdown"] == 0.0
    assert res.metrics["hit_rate"] is None and res.metrics["sharpe"] is None
    assert (res.equity["equity"] == 0).all() and (res.decisions["decision"] == "NONE").all()
    assert res.metrics["gate_counts"] == {"min_confidence": 240}
    assert res.daily["n_trades"].tolist() == [0, 0]


def _random_frame(seed: int, days=("2013-10-07", "2013-10-08"), n_sym=6, minutes_per_day=120):
    rng = np.random.default_rng(seed)
    parts = []
    for day in days:
        ev = pd.Timestamp(f"{day} 09:30", tz=NY) + pd.to_timedelta(
            np.arange(1, minutes_per_day + 1), unit="min"
        )
        for s in range(n_sym):
            k = ev.size
            keep = rng.random(k) > 0.05  # a few missing rows per symbol
            ps = rng.dirichlet([2, 2, 2, 1, 1], size=k)
            pl = rng.dirichlet([2, 2, 2], size=k)
            ps[rng.random(k) < 0.03] = np.nan
            mid = 50 * np.exp(np.cumsum(rng.normal(0, 5e-4, k)))
            f = pd.DataFrame(
                {
                    "symbol": f"S{s}",
                    "event_timestamp": ev.tz_convert("UTC"),
                    "mid": mid,
                    "spread": rng.choice([0.01, 0.02], size=k),
                    "last_return": np.r_[np.nan, np.diff(np.log(mid))],
                    "recent_vol": 5e-4,
                    "feature_age": rng.choice([1.0, 200.0], p=[0.97, 0.03], size=k),
                }
            )
            f[SHORT_COLS] = ps
            f[LONG_COLS] = pl
            parts.append(f[keep])
    return pd.concat(parts, ignore_index=True)


@pytest.mark.unit
def test_backtest_decisions_equal_per_timestamp_live_calls():
    frame = _random_frame(7)
    dec = DecisionConfig(
        min_confidence=0.3,
        min_score=0.05,
        cooldown=dt.timedelta(minutes=4),
        max_trades_per_day=6,
        vol_halt_k=3.0,
        circuit_breaker_min_symbols=4,
        circuit_breaker_share=0.8,
    )
    res = run_backtest(frame, dec, BacktestConfig(horizon=dt.timedelta(minutes=5)))
    # the live worker: one call per timestamp with that timestamp's cross-section, the state
    # persisted as JSON between calls
    state_json = DecisionState().to_json()
    live = []
    for ts, g in frame.sort_values(["event_timestamp", "symbol"]).groupby("event_timestamp"):
        state = DecisionState.from_json(state_json)
        d = decide(
            dec,
            state,
            ts,
            g["symbol"].tolist(),
            g[SHORT_COLS].to_numpy(),
            g[LONG_COLS].to_numpy(),
            g["last_return"].to_numpy(),
            g["recent_vol"].to_numpy(),
            g["feature_age"].to_numpy(),
        )
        state_json = state.to_json()
        live.append(d.to_frame())
    live_frame = pd.concat(live, ignore_index=True)
    back = res.decisions
    assert len(back) == len(live_frame) == len(frame)
    for col in ("symbol", "event_timestamp", "decision", "gate"):
        assert back[col].tolist() == live_frame[col].tolist(), col
    np.testing.assert_array_equal(back["score"].to_numpy(), live_frame["score"].to_numpy())
    assert set(back["gate"]) >= {"traded", "fallback", "stale", "cooldown", "min_confidence"}
    # positions follow the decisions: every trade opens on a traded/fallback row
    opened = res.trades[["symbol", "entry_ts"]].rename(columns={"entry_ts": "event_timestamp"})
    gates = opened.merge(back, on=["symbol", "event_timestamp"])["gate"]
    assert len(gates) == len(opened) and set(gates) <= {"traded", "fallback"}
    # accounting identities
    m = res.metrics
    assert m["net_pnl"] == pytest.approx(m["gross_pnl"] - m["costs"])
    assert res.equity["equity"].iloc[-1] == pytest.approx(m["net_pnl"])
    assert res.symbol_equity["pnl"].sum() == pytest.approx(m["net_pnl"])
    assert res.daily["pnl"].sum() == pytest.approx(m["net_pnl"])
    assert res.daily["n_trades"].sum() == m["n_trades"]
    assert m["sharpe"] is not None and m["sharpe_se"] == pytest.approx(
        math.sqrt((1 + (m["sharpe"] / math.sqrt(252)) ** 2 / 2) / 2) * math.sqrt(252)
    )


@pytest.mark.unit
def test_bad_frames_are_rejected():
    frame = frame_of([("A", "10:00", "UP", 10.0, 0.01), ("A", "10:00", "UP", 10.0, 0.01)])
    with pytest.raises(ValueError, match="duplicate"):
        run_backtest(frame, PLAIN)
    with pytest.raises(ValueError, match="lacks columns"):
        run_backtest(frame.drop(columns=["spread"]), PLAIN)
    # a row without a mid is never executed (and never marks a position)
    f = frame_of([("A", "10:00", "UP", np.nan, 0.01), ("A", "10:01", "FLAT", 10.0, 0.01)])
    res = run_backtest(f, PLAIN)
    assert res.trades.empty and res.metrics["n_signals_not_executed"] == 1


# -- real equity quotes ---------------------------------------------------------------------


def _real_bars(root, day: dt.date, symbols=("IBM", "BAC"), horizon=15) -> pd.DataFrame:
    from tickml.readers.equity import read_equity_day

    ticks = read_equity_day(root, day, list(symbols)).ticks
    ticks = ticks[ticks["bid"].notna() & ticks["ask"].notna()]
    open_ = pd.Timestamp(dt.datetime.combine(day, dt.time(9, 30)), tz=NY)
    grid = open_ + pd.to_timedelta(np.arange(1, 391), unit="min")
    out = []
    for sym, g in ticks.groupby("symbol"):
        # the book as of each bar close: the last event at or before it
        at = pd.merge_asof(
            pd.DataFrame({"t": grid.tz_convert("UTC")}),
            g.sort_values(["ts", "seq"])[["ts", "bid", "ask"]],
            left_on="t",
            right_on="ts",
            direction="backward",
        )
        mid = ((at["bid"] + at["ask"]) / 2).to_numpy()
        f = pd.DataFrame(
            {
                "symbol": sym,
                "event_timestamp": grid.tz_convert("UTC"),
                "mid": mid,
                "spread": (at["ask"] - at["bid"]).to_numpy(),
                "fwd_return": np.r_[mid[horizon:] / mid[:-horizon] - 1, [np.nan] * horizon],
                "last_return": np.r_[np.nan, mid[1:] / mid[:-1] - 1],
            }
        )
        out.append(f)
    return pd.concat(out, ignore_index=True)


@pytest.mark.unit
def test_real_quotes_oracle_trades_earn_exactly_the_forward_return(equity_root):
    """Probabilities from the sign of the real 15-minute forward mid return: every trade must
    exit 15 minutes later at the mid the label used, with gross = notional x |fwd_return|."""
    bars = _real_bars(equity_root, dt.date(2013, 10, 8))
    up = bars["fwd_return"] > 0
    down = bars["fwd_return"] < 0
    sig = np.where(up, "UP", np.where(down, "DOWN", "FLAT"))
    for i, c in enumerate(SHORT_COLS):
        bars[c] = [PROBS[s][0][i] for s in sig]
    for i, c in enumerate(LONG_COLS):
        bars[c] = [PROBS[s][1][i] for s in sig]
    dec = DecisionConfig(cooldown=dt.timedelta(minutes=15), max_trades_per_day=None)
    cfg = BacktestConfig(horizon=dt.timedelta(minutes=15), fee_bps=0.5)
    res = run_backtest(bars, dec, cfg)
    tr = res.trades
    assert len(tr) > 20
    assert (tr["exit_reason"] == "horizon").all()
    assert ((tr["exit_ts"] - tr["entry_ts"]) == pd.Timedelta(minutes=15)).all()
    fwd = bars.set_index(["symbol", "event_timestamp"])["fwd_return"]
    expected = fwd.loc[list(zip(tr["symbol"], tr["entry_ts"], strict=True))].to_numpy()
    np.testing.assert_allclose(tr["gross"], tr["side"] * expected, rtol=1e-9, atol=1e-12)
    assert (tr["gross"] > 0).all()
    # costs: half the real quoted spread on each side plus 0.5 bp of the traded value
    bar = bars.set_index(["symbol", "event_timestamp"])
    s_in = bar.loc[list(zip(tr["symbol"], tr["entry_ts"], strict=True)), "spread"].to_numpy()
    s_out = bar.loc[list(zip(tr["symbol"], tr["exit_ts"], strict=True)), "spread"].to_numpy()
    expected_cost = tr["qty"] * (s_in / 2 + s_out / 2 + (tr["entry_mid"] + tr["exit_mid"]) * 5e-5)
    np.testing.assert_allclose(tr["costs"], expected_cost, rtol=1e-9)
    m = res.metrics
    assert m["net_pnl"] == pytest.approx(m["gross_pnl"] - m["costs"])
    # no trade in the first 5 or the last 15 minutes of the session
    local = tr["entry_ts"].dt.tz_convert(NY).dt.time
    assert (local > dt.time(9, 35)).all() and (local <= dt.time(15, 45)).all()
    print(json.dumps({k: m[k] for k in ("net_pnl", "gross_pnl", "costs", "n_trades")}))
