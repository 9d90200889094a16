"""The backtest at unit size without stops equals the pre-book implementation, exactly.

``tests/data/backtest_golden/`` holds fixed inputs and the outputs the backtest produced on them
BEFORE it was rebuilt on :mod:`tickml.execution` (generated with ``python
tests/test_backtest_golden.py`` at the commit that added this file, whose ``run_backtest`` was
the original ~300-line loop). The rebuilt backtest must reproduce every trade, decision, equity
point, daily row and metric bit for bit: the execution model changed its structure, not its
numbers.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tickml.backtest import BacktestConfig, run_backtest
from tickml.decision import LONG_CLASSES, SHORT_CLASSES, DecisionConfig

GOLDEN = Path(__file__).parent / "data" / "backtest_golden"
NY = "America/New_York"
SHORT_COLS = [f"p_short_{c}" for c in SHORT_CLASSES]
LONG_COLS = [f"p_long_{c}" for c in LONG_CLASSES]

#: name -> (decision config, backtest config); the inputs are in GOLDEN/<name>.input.parquet
CASES: dict[str, tuple[DecisionConfig, BacktestConfig]] = {
    "gated": (
        DecisionConfig(
            min_confidence=0.3,
            min_score=0.05,
            cooldown=dt.timedelta(minutes=4),
            max_trades_per_day=8,
            vol_halt_k=3.0,
            circuit_breaker_min_symbols=4,
            circuit_breaker_share=0.8,
        ),
        BacktestConfig(horizon=dt.timedelta(minutes=5), fee_bps=0.5),
    ),
    "plain_long_horizon": (
        DecisionConfig(
            min_confidence=0.3,
            min_score=0.05,
            cooldown=dt.timedelta(0),
            max_trades_per_day=None,
            vol_halt_k=None,
            circuit_breaker_share=None,
            session_open=None,
            session_close=None,
            no_trade_after_open=dt.timedelta(0),
            no_trade_before_close=dt.timedelta(0),
        ),
        BacktestConfig(horizon=dt.timedelta(minutes=15), fee_bps=1.0, notional=1000.0),
    ),
    "universe_cap": (
        DecisionConfig(
            min_confidence=0.25,
            min_score=0.02,
            cooldown=dt.timedelta(minutes=2),
            max_trades_per_day_universe=40,
            require_agreement=False,
        ),
        BacktestConfig(horizon=dt.timedelta(minutes=10), fee_bps=0.2, notional=5.0),
    ),
}


def make_input(seed: int, days: tuple[str, ...], n_sym: int, session_minutes: int) -> pd.DataFrame:
    """Random cross-sections on the 1-minute grid from 09:31 (full sessions reach 16:00): a few
    missing rows, NaN probabilities (fallback), NaN mids (not executable), stale rows."""
    rng = np.random.default_rng(seed)
    parts = []
    for day in days:
        ev = pd.Timestamp(f"{day} 09:30", tz=NY) + pd.to_timedelta(
            np.arange(1, session_minutes + 1), unit="min"
        )
        for s in range(n_sym):
            k = ev.size
            keep = rng.random(k) > 0.04
            ps = rng.dirichlet([2, 2, 1.5, 1, 1], size=k)
            pl = rng.dirichlet([2, 2, 2], size=k)
            ps[rng.random(k) < 0.03] = np.nan
            mid = 20 * (s + 1) * np.exp(np.cumsum(rng.normal(0, 6e-4, k)))
            mid[rng.random(k) < 0.01] = np.nan
            ret = np.r_[np.nan, np.diff(np.log(mid))] * 1e4
            f = pd.DataFrame(
                {
                    "symbol": f"S{s}",
                    "event_timestamp": ev.tz_convert("UTC"),
                    "mid": mid,
                    "spread": rng.choice([0.01, 0.02, 0.03], size=k),
                    "last_return": ret,
                    "recent_vol": rng.uniform(3.0, 8.0, size=k),
                    "feature_age": rng.choice([0.0, 1.0, 200.0], p=[0.5, 0.47, 0.03], size=k),
                }
            )
            f[SHORT_COLS] = ps
            f[LONG_COLS] = pl
            parts.append(f[keep])
    return pd.concat(parts, ignore_index=True)


def _inputs() -> dict[str, pd.DataFrame]:
    return {
        "gated": make_input(11, ("2013-10-07", "2013-10-08"), 5, 390),
        "plain_long_horizon": make_input(12, ("2013-10-07", "2013-10-08"), 5, 150),
        "universe_cap": make_input(13, ("2013-10-10", "2013-10-11"), 6, 240),
    }


FRAMES = ("trades", "decisions", "symbol_equity", "equity", "daily")


def _frames(res) -> dict[str, pd.DataFrame]:  # noqa: ANN001
    out = {name: getattr(res, name).copy() for name in FRAMES}
    out["daily"]["day"] = out["daily"]["day"].astype(str)
    return out


def write_golden() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name, frame in _inputs().items():
        dec, cfg = CASES[name]
        frame.to_parquet(GOLDEN / f"{name}.input.parquet", index=False, compression="zstd")
        res = run_backtest(frame, dec, cfg)
        for key, f in _frames(res).items():
            f.to_parquet(GOLDEN / f"{name}.{key}.parquet", index=False, compression="zstd")
        (GOLDEN / f"{name}.metrics.json").write_text(json.dumps(res.metrics, indent=1) + "\n")


@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(CASES))
def test_unit_size_backtest_equals_the_pre_book_implementation(name: str) -> None:
    dec, cfg = CASES[name]
    frame = pd.read_parquet(GOLDEN / f"{name}.input.parquet")
    res = run_backtest(frame, dec, cfg)
    got = _frames(res)
    for key in FRAMES:
        want = pd.read_parquet(GOLDEN / f"{name}.{key}.parquet")
        pd.testing.assert_frame_equal(got[key][list(want.columns)], want, check_exact=True)
    want_m = json.loads((GOLDEN / f"{name}.metrics.json").read_text())
    got_m = json.loads(json.dumps(res.metrics))
    for key, want in want_m.items():
        if isinstance(want, dict):  # counts: new keys (new exit reasons) must be 0
            assert {k: got_m[key].get(k, 0) for k in want} == want, key
            assert not any(v for k, v in got_m[key].items() if k not in want), key
        else:
            assert got_m[key] == want, key
    assert res.metrics["n_trades"] > 20  # the inputs exercise the book


if __name__ == "__main__":
    write_golden()
    sys.exit(0)
