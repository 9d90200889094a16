"""The shadow ledger's PostgreSQL tables: the schema, written once, and the day reader.

The live ledger (``live/shadow_store.py``) writes them; the ``shadow_vs_backtest`` asset reads
them. Every table is keyed by ``ledger_id`` (a new id each time a ledger starts from an empty
state), so a replay that starts over never collides with an earlier run's rows.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import psycopg

DDL = """
CREATE TABLE IF NOT EXISTS shadow_fills (
    ledger_id text NOT NULL,
    position_id bigint NOT NULL,
    action text NOT NULL,             -- open | close
    ts timestamptz NOT NULL,          -- fill time (the row's boundary)
    symbol text NOT NULL,
    side smallint NOT NULL,           -- +1 buy, -1 sell
    qty double precision NOT NULL,
    price double precision NOT NULL,  -- the mid it filled at
    cost double precision NOT NULL,   -- half spread + fee + slippage
    slippage double precision NOT NULL,
    reason text NOT NULL,             -- signal | horizon | reverse | eod | stop_loss | take_profit
    value double precision NOT NULL,  -- the position's value at entry
    gross double precision,           -- closing fills: the round trip's gross P&L
    net double precision,             -- closing fills: gross - both sides' costs
    model_version text NOT NULL DEFAULT '',
    boundary timestamptz NOT NULL,    -- the boundary whose step made the fill
    PRIMARY KEY (ledger_id, position_id, action)
);
CREATE TABLE IF NOT EXISTS shadow_positions (
    ledger_id text NOT NULL,
    symbol text NOT NULL,
    position_id bigint NOT NULL,
    side smallint NOT NULL,
    qty double precision NOT NULL,
    value double precision NOT NULL,
    entry_ts timestamptz NOT NULL,
    entry_price double precision NOT NULL,
    mark double precision NOT NULL,
    exit_due timestamptz NOT NULL,
    stop_price double precision,
    take_price double precision,
    boundary timestamptz NOT NULL,
    PRIMARY KEY (ledger_id, symbol)
);
CREATE TABLE IF NOT EXISTS shadow_equity (
    ledger_id text NOT NULL,
    boundary timestamptz NOT NULL,
    day date NOT NULL,
    pnl double precision NOT NULL,   -- marks + costs of this boundary
    gross_exposure double precision NOT NULL,
    net_exposure double precision NOT NULL,
    var double precision,
    positions integer NOT NULL,
    risk_gates jsonb NOT NULL,
    model_version text NOT NULL DEFAULT '',
    PRIMARY KEY (ledger_id, boundary)
);
CREATE TABLE IF NOT EXISTS shadow_daily (
    ledger_id text NOT NULL,
    day date NOT NULL,
    pnl double precision NOT NULL,
    costs double precision NOT NULL,
    n_fills integer NOT NULL,
    n_trades integer NOT NULL,
    traded_value double precision NOT NULL,
    max_gross double precision NOT NULL,
    last_boundary timestamptz NOT NULL,
    execution text NOT NULL,          -- the ledger's ExecutionConfig (JSON)
    PRIMARY KEY (ledger_id, day)
);
"""

FILL_COLUMNS = (
    "ledger_id", "position_id", "action", "ts", "symbol", "side", "qty", "price", "cost",
    "slippage", "reason", "value", "gross", "net", "model_version", "boundary",
)  # fmt: skip
POSITION_COLUMNS = (
    "ledger_id", "symbol", "position_id", "side", "qty", "value", "entry_ts", "entry_price",
    "mark", "exit_due", "stop_price", "take_price", "boundary",
)  # fmt: skip


def read_day(
    url: str, day: dt.date, day_start: dt.datetime, day_end: dt.datetime
) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """One local day of the ledger that traded it last (its latest ``last_boundary``): fills
    with ``day_start < ts <= day_end``, per-boundary equity rows, and its execution config
    (JSON); empty frames and None when no ledger ran that day."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute(DDL)
        head = conn.execute(
            "SELECT ledger_id, execution FROM shadow_daily WHERE day = %s "
            "ORDER BY last_boundary DESC LIMIT 1",
            (day,),
        ).fetchone()
        ledger_id, execution = head if head else (None, None)
        fills = conn.execute(
            f"SELECT {', '.join(FILL_COLUMNS)} FROM shadow_fills "
            "WHERE ledger_id = %s AND ts > %s AND ts <= %s ORDER BY position_id, action DESC",
            (ledger_id, day_start, day_end),
        ).fetchall()
        cols = ["boundary", "pnl", "gross_exposure", "net_exposure", "var", "positions",
                "risk_gates", "model_version"]  # fmt: skip
        equity = conn.execute(
            f"SELECT {', '.join(cols)} FROM shadow_equity WHERE ledger_id = %s AND day = %s "
            "ORDER BY boundary",
            (ledger_id, day),
        ).fetchall()
    return (
        pd.DataFrame(fills, columns=list(FILL_COLUMNS)),
        pd.DataFrame(equity, columns=cols),
        execution,
    )
