"""The position book on hand-built paths with known answers: every exit and its precedence, end
of day, volatility sizing, the per-symbol cap, gross and net exposure caps, the portfolio risk
limit, slippage, and a restart from the serialized state that continues exactly."""

from __future__ import annotations

import datetime as dt
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from tickml.backtest import BacktestConfig, fills_frame, run_backtest
from tickml.decision import LONG_CLASSES, SHORT_CLASSES, DecisionConfig
from tickml.execution import ExecutionConfig, PositionBook, sized_preset

pytestmark = pytest.mark.unit

T0 = int(pd.Timestamp("2013-10-08 14:00", tz="UTC").value)
MIN = 60 * 10**9
FEE = 0.5e-4


def t(i: int) -> int:
    return T0 + i * MIN


def run_path(book: PositionBook, sym: str, mids: list[float], signals: dict[int, int], **cols):
    """Step one symbol along ``mids`` (spread 0.02), ``signals``: row -> +1/-1."""
    steps = []
    for i, m in enumerate(mids):
        extra = {k: np.array([v[i]]) for k, v in cols.items()}
        steps.append(book.step(t(i), [sym], np.array([signals.get(i, 0)]), [m], [0.02], **extra))
    return steps


def closes(steps) -> pd.DataFrame:  # noqa: ANN001
    """The round trips the steps closed (exit reason codes as in EXIT_REASONS)."""
    parts = [
        pd.DataFrame({k: np.concatenate(v) for k, v in s.trades.items()})
        for s in steps
        if s.trades["slot"]
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def test_stop_loss_and_take_profit_in_points():
    cfg = ExecutionConfig(horizon=dt.timedelta(minutes=10), stop_loss=0.5, take_profit=0.8)
    book = PositionBook(cfg)
    # long at 100: 99.8 holds, 99.4 is beyond the 99.5 stop -> closed at 99.4 (the close, not
    # the level: gaps are paid)
    steps = run_path(book, "A", [100.0, 99.8, 99.4, 99.0], {0: 1})
    tr = closes(steps)
    assert len(tr) == 1 and tr.loc[0, "reason"] == 3  # stop_loss
    assert tr.loc[0, "exit_ts"] == t(2) and tr.loc[0, "exit_mid"] == 99.4
    assert tr.loc[0, "gross"] == pytest.approx(0.01 * -0.6)
    # a short at 50 takes profit at 49.2 (entry - 0.8) exactly at the level
    book = PositionBook(cfg)
    tr = closes(run_path(book, "B", [50.0, 49.5, 49.2, 49.0], {0: -1}))
    assert tr.loc[0, "reason"] == 4 and tr.loc[0, "exit_mid"] == 49.2  # take_profit
    assert tr.loc[0, "gross"] == pytest.approx(0.02 * 0.8)


def test_exit_precedence_stop_then_take_then_time():
    cfg = ExecutionConfig(horizon=dt.timedelta(minutes=2), stop_loss=0.5, take_profit=0.5)
    # the horizon is due at row 2 where the stop is also hit: stop_loss names the exit
    tr = closes(run_path(PositionBook(cfg), "A", [100.0, 100.1, 99.0], {0: 1}))
    assert tr["reason"].tolist() == [3]
    tr = closes(run_path(PositionBook(cfg), "A", [100.0, 100.1, 101.0], {0: 1}))
    assert tr["reason"].tolist() == [4]
    tr = closes(run_path(PositionBook(cfg), "A", [100.0, 100.1, 100.2], {0: 1}))
    assert tr["reason"].tolist() == [0]  # horizon
    # an exit and a new entry share a row: stopped at row 2, the signal there opens again
    steps = run_path(PositionBook(cfg), "A", [100.0, 100.1, 99.0, 99.1], {0: 1, 2: 1})
    assert closes(steps)["reason"].tolist() == [3]
    assert steps[2].position.tolist() == [1] and steps[3].position.tolist() == [1]


def test_volatility_exits_use_the_volatility_known_at_entry():
    cfg = ExecutionConfig(stop_loss=2.0, exit_unit="volatility", returns_unit=1e-4)
    book = PositionBook(cfg)
    # vol 10 bp at entry -> stop distance 2 x 10e-4 x 100 = 0.2 -> level 99.8; the later vol
    # of 50 bp would move it to 99.0, but the level is fixed at entry
    vol = [10.0, 50.0, 50.0, 50.0]
    tr = closes(run_path(book, "A", [100.0, 99.9, 99.79, 99.0], {0: 1}, vol=vol))
    assert tr.loc[0, "reason"] == 3 and tr.loc[0, "exit_ts"] == t(2)
    # without a volatility at entry there is no stop (the horizon still exits)
    book = PositionBook(cfg)
    tr = closes(run_path(book, "A", [100.0, 90.0], {0: 1}, vol=[np.nan, 10.0]))
    assert tr.empty


def test_end_of_day_closes_and_flatten_uses_the_last_mark():
    book = PositionBook(ExecutionConfig(horizon=dt.timedelta(hours=2)))
    s0 = book.step(t(0), ["A", "B"], np.array([1, -1]), [10.0, 20.0], [0.01, 0.02])
    pos = book.open_positions()
    assert [(p.symbol, p.side, p.qty, p.position_id) for p in pos] == [
        ("A", 1, 0.1, 0),
        ("B", -1, 0.05, 1),
    ]
    assert pos[0].exit_due == t(0) + 2 * 3600 * 10**9 and np.isnan(pos[0].stop_px)
    # A's last executable row is flagged eod (the backtest's rule) -> closed there
    s1 = book.step(t(1), ["A", "B"], np.array([0, 0]), [10.5, 19.5], [0.03, 0.04],
                   eod=np.array([True, False]))  # fmt: skip
    assert s1.position.tolist() == [0, -1]
    assert np.concatenate(s1.fills["reason"]).tolist() == [2]
    # B never prints an executable row again: the live end of day closes it at its last mark
    book.step(t(2), ["B"], np.array([0]), [np.nan], [0.04])
    f = book.flatten()
    fills = fills_frame(f.fills, book.symbols)
    assert fills[["symbol", "side", "price", "reason"]].values.tolist() == [["B", 1, 19.5, "eod"]]
    assert fills["ts"].iloc[0].value == t(1)
    q = 1 / 20.0
    assert fills["cost"].iloc[0] == pytest.approx(q * (0.04 / 2 + 19.5 * FEE))
    assert (book.s["side"] == 0).all() and s0.pnl.sum() < 0  # entry costs


def test_volatility_sizing_strength_and_symbol_cap():
    cfg = ExecutionConfig(sizing="volatility", risk_per_trade=0.001, returns_unit=1e-4)
    book = PositionBook(cfg)
    # vol 5 bp -> value 0.001 / 5e-4 = 2.0; vol 20 bp -> 0.5; NaN vol -> refused
    s = book.step(t(0), ["A", "B", "C"], np.array([1, -1, 1]), [50.0, 10.0, 20.0],
                  [0.01, 0.01, 0.01], vol=np.array([5.0, 20.0, np.nan]))  # fmt: skip
    f = fills_frame(s.fills, book.symbols)
    assert f["value"].tolist() == [2.0, 0.5] and f["qty"].tolist() == [2.0 / 50, 0.5 / 10]
    assert s.gate.tolist() == [1, 1, 10]  # opened, opened, refused_no_vol
    # strength: x |score|; a fallback row (no score) counts 1; the cap binds
    cfg = cfg.model_copy(update={"strength_scaled": True, "max_position_value": 1.5})
    book = PositionBook(cfg)
    s = book.step(t(0), ["A", "B"], np.array([1, 1]), [50.0, 10.0], [0.01, 0.01],
                  vol=np.array([5.0, 5.0]), strength=np.array([0.5, np.nan]))  # fmt: skip
    assert fills_frame(s.fills, book.symbols)["value"].tolist() == [1.0, 1.5]
    assert s.gate.tolist() == [1, 3]  # opened, capped_symbol
    # a direction score is in volatilities: |4.0| is capped at max_strength (default 1)
    cfg = cfg.model_copy(update={"max_position_value": None})
    for cap, want in ((1.0, [2.0, 1.0]), (3.0, [6.0, 1.0])):
        book = PositionBook(cfg.model_copy(update={"max_strength": cap}))
        s = book.step(t(0), ["A", "B"], np.array([1, -1]), [50.0, 10.0], [0.01, 0.01],
                      vol=np.array([5.0, 5.0]), strength=np.array([-4.0, 0.5]))  # fmt: skip
        assert fills_frame(s.fills, book.symbols)["value"].tolist() == want


def test_gross_and_net_exposure_caps_scale_or_refuse():
    cfg = ExecutionConfig(notional=2.0, max_gross=5.0)
    book = PositionBook(cfg)
    book.step(t(0), ["A"], np.array([1]), [10.0], [0.0])  # long 2.0 -> gross 2
    book.step(t(1), ["A"], np.array([0]), [15.0], [0.0])  # marked: value 3.0
    assert book.exposure() == (3.0, 3.0)
    # two new longs of 2 want 4, room 2 -> each scaled by 0.5 to 1.0
    s = book.step(t(2), ["A", "B", "C"], np.array([0, 1, 1]), [15.0, 10.0, 20.0], [0.0] * 3)
    assert fills_frame(s.fills, book.symbols)["value"].tolist() == [1.0, 1.0]
    assert s.gate.tolist() == [0, 4, 4]  # scaled_gross
    assert book.exposure() == pytest.approx((5.0, 5.0))
    # net cap 4 with a long book of 3: +2 and +2 would make 7 -> scale (4 - 3) / 4 = 0.25
    book = PositionBook(ExecutionConfig(notional=2.0, max_net=4.0))
    book.step(t(0), ["A"], np.array([1]), [10.0], [0.0])
    book.step(t(1), ["A"], np.array([0]), [15.0], [0.0])
    s = book.step(t(2), ["B", "C"], np.array([1, 1]), [10.0, 20.0], [0.0, 0.0])
    assert fills_frame(s.fills, book.symbols)["value"].tolist() == [0.5, 0.5]
    assert s.gate.tolist() == [5, 5]  # scaled_net
    # a long and a short that net to +0: within the net cap whatever the book
    s = book.step(t(3), ["D", "E"], np.array([1, -1]), [10.0, 20.0], [0.0, 0.0])
    assert s.gate.tolist() == [1, 1]
    # refuse instead of scaling
    book = PositionBook(ExecutionConfig(notional=2.0, max_gross=3.0, risk_action="refuse"))
    book.step(t(0), ["A"], np.array([1]), [10.0], [0.0])
    s = book.step(t(1), ["B"], np.array([1]), [10.0], [0.0])
    assert s.gate.tolist() == [7] and not s.fills["slot"]  # refused_gross


def test_risk_limit_scales_to_the_var_and_refuses_without_history():
    h = 390
    cfg = ExecutionConfig(
        returns_unit=1.0, var_limit=0.02, var_window=20, var_min_obs=10, var_horizon_bars=h,
        min_position_value=0.01,
    )  # fmt: skip
    book = PositionBook(cfg)
    syms = ["A", "B", "D"]  # D moves exactly as A; B does not move
    r = np.array([0.001, -0.001] * 12)
    flat = [100.0, 50.0, 20.0]
    gates = []
    for i in range(24):
        want = np.array([1, 0, 0]) if i == 5 else np.zeros(3, dtype=np.int8)
        s = book.step(t(i), syms, want, flat, [0.0] * 3, returns=[r[i], 0.0, r[i]])
        gates.append(s.gate[0])
    assert gates[5] == 9  # 6 intervals < var_min_obs: the risk is unknown -> refused_risk
    s = book.step(t(24), syms, np.array([1, 0, 0]), flat, [0.0] * 3, returns=[0.001, 0, 0.001])
    # the window holds the last 20 intervals of A: +-0.001 -> VaR of a value-1 position
    sd = np.std(book.window.rows()[:, 0], ddof=1)
    var_unit = NormalDist().inv_cdf(0.99) * np.sqrt(h) * sd
    assert sd == pytest.approx(0.001 * np.sqrt(20 / 19))
    assert s.gate[0] == 6  # scaled_risk
    value = fills_frame(s.fills, book.symbols)["value"].iloc[0]
    assert value == pytest.approx(0.02 / var_unit, rel=1e-12) and value < 1.0
    assert book.var() == pytest.approx(0.02, rel=1e-9)
    # B adds no risk: opened in full; then D would double A's risk: refused. (New positions of
    # one row share one scale: B and D together would both be refused.)
    s = book.step(t(25), syms, np.array([0, 1, 0]), flat, [0.0] * 3, returns=[-0.001, 0, -0.001])
    assert s.gate.tolist() == [0, 1, 0]
    s = book.step(t(26), syms, np.array([0, 0, 1]), flat, [0.0] * 3, returns=[0.001, 0, 0.001])
    assert s.gate.tolist() == [0, 0, 9]
    # a new local day restarts the window: the risk is unknown again, entries are refused
    s = book.step(t(27), ["E"], np.array([1]), [10.0], [0.0], returns=[0.0], day=1)
    assert s.gate.tolist() == [9] and book.window.count == 1
    # scaling off: the same breach refuses
    book = PositionBook(cfg.model_copy(update={"risk_action": "refuse"}))
    for i in range(25):
        s = book.step(t(i), syms, np.array([int(i == 24), 0, 0]), flat, [0.0] * 3,
                      returns=[r[i % 24], 0.0, r[i % 24]])  # fmt: skip
    assert s.gate.tolist() == [9, 0, 0]


def test_slippage_over_displayed_depth():
    cfg = ExecutionConfig(notional=1000.0, fee_bps=1.0, slippage_bps=10.0)
    book = PositionBook(cfg)
    s = book.step(t(0), ["A", "B"], np.array([1, -1]), [100.0, 50.0], [0.02, 0.01],
                  bid_size=np.array([5.0, 40.0]), ask_size=np.array([20.0, 8.0]))  # fmt: skip
    f = fills_frame(s.fills, book.symbols)
    # A buys 10 against 20 on the ask; B sells 20 against 40 on the bid
    want_a = 10 * (0.01 + 100 * 1e-4) + 10 * 100 * 10e-4 * (10 / 20)
    want_b = 20 * (0.005 + 50 * 1e-4) + 20 * 50 * 10e-4 * (20 / 40)
    assert f["cost"].tolist() == pytest.approx([want_a, want_b])
    assert f["slippage"].tolist() == pytest.approx([0.5, 0.5])
    # unknown depth counts as size = depth
    s = book.step(t(1), ["C"], np.array([1]), [100.0], [0.0])
    assert fills_frame(s.fills, book.symbols)["slippage"].iloc[0] == pytest.approx(1.0)


def _random_session(seed: int, n_sym: int = 6, n: int = 120):
    rng = np.random.default_rng(seed)
    syms = [f"S{i}" for i in range(n_sym)]
    mids = 50 * np.exp(np.cumsum(rng.normal(0, 1e-3, (n, n_sym)), axis=0))
    return syms, mids, rng


def test_state_round_trip_continues_exactly():
    cfg = ExecutionConfig(
        sizing="volatility", risk_per_trade=0.002, strength_scaled=True, max_position_value=3,
        max_gross=8, max_net=3, var_limit=0.3, var_min_obs=5, var_window=30, stop_loss=1.5,
        take_profit=2.0, exit_unit="volatility", slippage_bps=5, horizon=dt.timedelta(minutes=7),
    )  # fmt: skip
    syms, mids, rng = _random_session(3)
    want = rng.choice([-1, 0, 0, 1], size=mids.shape).astype(np.int8)
    vol = rng.uniform(3, 12, mids.shape)
    score = rng.uniform(-1, 1, mids.shape)
    ret = np.vstack([np.zeros(len(syms)), np.diff(np.log(mids), axis=0) * 1e4])

    def go(book: PositionBook, rows: range) -> list:
        out = []
        for i in rows:
            k = len(syms)
            s = book.step(t(i), syms, want[i], mids[i], np.full(k, 0.02), vol=vol[i],
                          strength=score[i], returns=ret[i], bid_size=np.full(k, 50.0),
                          ask_size=np.full(k, 30.0), eod=np.full(k, i == 119))  # fmt: skip
            out.append(
                (s.pnl, s.gate, {k: np.concatenate(v) if v else v for k, v in s.fills.items()})
            )
        return out

    whole = go(PositionBook(cfg), range(120))
    for split in (12, 60):  # the risk window part-filled, then full
        first = PositionBook(cfg)
        part = go(first, range(split))
        again = PositionBook.from_bytes(first.to_bytes(), cfg)
        part += go(again, range(split, 120))
        for (p1, g1, f1), (p2, g2, f2) in zip(whole, part, strict=True):
            np.testing.assert_array_equal(p1, p2)
            np.testing.assert_array_equal(g1, g2)
            for k in f1:
                np.testing.assert_array_equal(f1[k], f2[k])
    gates = np.concatenate([g for _, g, _ in whole])
    assert {3, 4, 5, 6} & set(gates.tolist())  # the caps and the risk limit were exercised
    with pytest.raises(ValueError, match="another execution config"):
        PositionBook.from_bytes(first.to_bytes(), ExecutionConfig())


def test_sized_backtest_records_values_and_risk_gates():
    rng = np.random.default_rng(5)
    rows = []
    ev = pd.Timestamp("2013-10-08 09:30", tz="America/New_York") + pd.to_timedelta(
        np.arange(1, 391), unit="min"
    )
    for s in range(4):
        mid = 30 * (s + 1) * np.exp(np.cumsum(rng.normal(0, 4e-4, ev.size)))
        ps = rng.dirichlet([3, 3, 1, 1, 1], size=ev.size)
        f = pd.DataFrame(
            {
                "symbol": f"S{s}",
                "event_timestamp": ev.tz_convert("UTC"),
                "mid": mid,
                "spread": 0.01,
                "last_return": np.r_[np.nan, np.diff(np.log(mid))] * 1e4,
                "recent_vol": rng.uniform(2, 6, ev.size),
            }
        )
        f[[f"p_short_{c}" for c in SHORT_CLASSES]] = ps
        f[[f"p_long_{c}" for c in LONG_CLASSES]] = np.c_[ps[:, :2], 1 - ps[:, :2].sum(1)]
        rows.append(f)
    frame = pd.concat(rows, ignore_index=True)
    dec = DecisionConfig(min_confidence=0.3, circuit_breaker_share=None, vol_halt_k=None)
    unit = run_backtest(frame, dec, BacktestConfig())
    preset = sized_preset().model_dump()
    sized = run_backtest(frame, dec, BacktestConfig(**{**preset, "var_limit": 0.02}))
    assert unit.metrics["n_trades"] > 20 and unit.metrics["sizing"] == "unit"
    assert (unit.trades["value"] == 1.0).all()
    tr = sized.trades
    want = np.minimum(0.0003 / (tr["entry_vol"] * 1e-4), 3.0)
    assert (tr["value"] <= want + 1e-12).all() and (tr["value"] < want - 1e-9).any()
    assert sized.metrics["risk_gate_counts"].get("scaled_risk", 0) > 0
    np.testing.assert_allclose(tr["net_return"], tr["net"] / tr["value"])
    # the decisions do not depend on the sizing
    assert (unit.decisions["gate"] == sized.decisions["gate"]).all()
