"""The shadow ledger worker on real Redis + PostgreSQL, fed hand-built scorer records.

Two scorers each own one shard; the ledger steps a boundary only when both records arrived
(merged by symbol), closes everything at the session's last boundary (a symbol without an
executable row there at its last mark), survives a restart and a boundary stepped twice (crash
between the PostgreSQL commit and the Redis state) without writing anything twice, drops a late
record, and its fills equal the position book stepped directly with the same rows.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import numpy as np
import pandas as pd
import psycopg
import pytest
import redis
from prometheus_client import REGISTRY

from live.config import LiveConfig
from live.ledger import ShadowLedger, run_ledger
from live.ledger_records import FLOAT_FIELDS, Rows, encode_record
from live.shadow_store import ShadowStore
from tickml.execution import ExecutionConfig, PositionBook

pytestmark = pytest.mark.integration

EXE = ExecutionConfig(horizon=dt.timedelta(minutes=2), fee_bps=1.0)


def ny(hhmm: str) -> int:
    return int(pd.Timestamp(f"2013-10-08 {hhmm}", tz="America/New_York").value)


#: boundary -> {symbol: (decision, mid)}; A belongs to scorer 0 (shard 0), B to scorer 1
PATH = {
    "15:57": {"A": (1, 100.0), "B": (-1, 50.0)},
    "15:58": {"A": (0, 100.5), "B": (0, 49.0)},
    "15:59": {"A": (1, 101.0), "B": (1, 48.0)},  # both time out, then both open again
    "16:00": {"A": (0, 102.0), "B": (0, np.nan)},  # the close; B has no executable row
}


def record(hhmm: str, sym: str, shard: int) -> dict:
    want, mid = PATH[hhmm][sym]
    floats = {k: np.array([np.nan]) for k in FLOAT_FIELDS}
    floats.update(mid=np.array([mid]), spread=np.array([0.02]), score=np.array([0.3 * want]))
    return encode_record(ny(hhmm), [shard], [sym], np.array([want]), np.array([0]), floats, "v1")


def reference() -> pd.DataFrame:
    """The book stepped directly with the merged rows (what the backtest does)."""
    book = PositionBook(EXE)
    fills = []
    for hhmm, rows in PATH.items():
        syms = sorted(rows)
        want = np.array([rows[s][0] for s in syms])
        mid = np.array([rows[s][1] for s in syms])
        b = ny(hhmm)
        steps = [book.step(b, syms, want, mid, np.full(2, 0.02), eod=np.full(2, hhmm == "16:00"))]
        if hhmm == "16:00":
            steps.append(book.flatten())
        for st in steps:
            for i in range(sum(len(x) for x in st.fills["slot"])):
                f = {k: np.concatenate(v)[i] for k, v in st.fills.items()}
                fills.append((int(f["pos_id"]), book.symbols[int(f["slot"])], int(f["ts"]),
                              int(f["side"]), float(f["qty"]), float(f["price"]),
                              float(f["cost"])))  # fmt: skip
    cols = ["position_id", "symbol", "ts", "side", "qty", "price", "cost"]
    return pd.DataFrame(fills, columns=cols).sort_values("position_id", ignore_index=True)


def stored_fills(url: str) -> pd.DataFrame:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT position_id, symbol, ts, side, qty, price, cost, action, reason, net "
            "FROM shadow_fills ORDER BY position_id, action DESC"
        ).fetchall()
    cols = ["position_id", "symbol", "ts", "side", "qty", "price", "cost", "action", "reason",
            "net"]  # fmt: skip
    out = pd.DataFrame(rows, columns=cols)
    out["ts"] = pd.to_datetime(out["ts"], utc=True).astype("int64")
    return out


def wait(cond, timeout: float = 20.0) -> None:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def test_ledger_aggregates_scorers_persists_and_restarts(redis_url: str, fresh_pg_url: str):
    cfg = LiveConfig(redis_url=redis_url, pg_url=fresh_pg_url, shards=2, ledger_wait_s=30)
    r = redis.Redis.from_url(redis_url)
    stream = cfg.key("decisions")

    def last() -> int:
        v = r.get(cfg.key("ledger", "last"))
        return int(v) if v else -1

    def start() -> tuple[threading.Event, threading.Thread]:
        stop = threading.Event()
        th = threading.Thread(target=run_ledger, args=(cfg, stop, EXE), daemon=True)
        th.start()
        return stop, th

    stop, th = start()
    r.xadd(stream, record("15:57", "A", 0))
    r.xadd(stream, record("15:57", "B", 1))
    wait(lambda: last() == ny("15:57"))
    r.xadd(stream, record("15:58", "A", 0))  # scorer 1 is late: the ledger waits for it
    time.sleep(0.5)
    assert last() == ny("15:57")
    r.xadd(stream, record("15:58", "B", 1))
    wait(lambda: last() == ny("15:58"))
    r.xadd(stream, record("15:57", "A", 0))  # a repeat of a stepped boundary: dropped
    stop.set()
    th.join(10)

    # restarts continue from the stored book and stream position
    stop, th = start()
    r.xadd(stream, record("15:59", "B", 1))
    r.xadd(stream, record("15:59", "A", 0))
    wait(lambda: last() == ny("15:59"))
    stop.set()
    th.join(10)
    at_1559 = r.hgetall(cfg.key("ledger", "state"))
    stop, th = start()
    r.xadd(stream, record("16:00", "A", 0))
    r.xadd(stream, record("16:00", "B", 1))
    wait(lambda: last() == ny("16:00"))
    stop.set()
    th.join(10)

    got = stored_fills(fresh_pg_url)
    want = reference()
    assert len(got) == len(want) == 8
    for col in ("position_id", "symbol", "ts", "side", "qty", "price", "cost"):
        assert got[col].tolist() == want[col].tolist(), col
    closes = got[got["action"] == "close"].set_index("position_id")
    assert closes["reason"].tolist() == ["horizon", "horizon", "eod", "eod"]
    # B (opened at 15:59) had no executable row at the close: closed at its last mark
    assert closes.loc[3, "price"] == 48.0 and closes.loc[3, "ts"] == ny("15:59")
    assert closes.loc[2, "price"] == 102.0 and closes.loc[2, "ts"] == ny("16:00")
    with psycopg.connect(fresh_pg_url) as conn:
        pnl, n_trades, n_fills = conn.execute(
            "SELECT pnl, n_trades, n_fills FROM shadow_daily"
        ).fetchone()
        assert conn.execute("SELECT count(*) FROM shadow_positions").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM shadow_equity").fetchone()[0] == 4
    assert (n_trades, n_fills) == (4, 8)
    # Prometheus (the ledger ran in this process): fills by reason, risk gates, exposure
    sample = REGISTRY.get_sample_value
    assert sample("tickml_ledger_fills_total", {"reason": "eod"}) == 2
    assert sample("tickml_ledger_risk_gates_total", {"gate": "opened"}) == 4
    assert sample("tickml_ledger_exposure", {"kind": "gross"}) == 0.0
    assert sample("tickml_ledger_pnl", {"kind": "day"}) == pytest.approx(pnl)
    assert pnl == pytest.approx(closes["net"].sum(), abs=1e-12)

    # the close stepped again (killed after the PostgreSQL commit, before the Redis state):
    # the same fills, nothing written twice
    r.hset(cfg.key("ledger", "state"), mapping=at_1559)
    rows = Rows.merge([Rows.decode(_b(record("16:00", s, i))) for i, s in enumerate("AB")])
    store = ShadowStore(fresh_pg_url)
    again = ShadowLedger(cfg, EXE, client=r, store=store).step(rows, "0-0")
    store.close()
    assert again["fills"] == 2  # A at the close, B at its mark
    pd.testing.assert_frame_equal(stored_fills(fresh_pg_url), got)
    with psycopg.connect(fresh_pg_url) as conn:
        assert conn.execute("SELECT pnl FROM shadow_daily").fetchone()[0] == pnl

    # another execution config: a flat book starts a new ledger from the same stream position;
    # open positions under the old config refuse to start, with one clear line
    other = EXE.model_copy(update={"fee_bps": 2.0})
    flat = ShadowLedger(cfg, other, client=r)
    assert flat.last_b == ny("16:00") and flat.meta["ledger_id"] != again_id(r, cfg)
    r.hset(cfg.key("ledger", "state"), mapping=at_1559)
    with pytest.raises(SystemExit, match="open positions under another execution config"):
        ShadowLedger(cfg, other, client=r)


def again_id(r: redis.Redis, cfg: LiveConfig) -> str:
    return json.loads(r.hget(cfg.key("ledger", "state"), "meta"))["ledger_id"]


def _b(rec: dict) -> dict[bytes, bytes]:
    """A record as Redis returns it (bytes keys and values)."""
    return {k.encode(): v if isinstance(v, bytes) else str(v).encode() for k, v in rec.items()}
