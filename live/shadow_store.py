"""The shadow ledger's writer: one boundary per transaction into the tables of
:mod:`tickml.store.shadow`.

One boundary is written in one transaction and every insert is idempotent (``ON CONFLICT``): a
ledger that crashed after the commit and steps the boundary again writes nothing twice.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from live.sinks import PgSink
from tickml.store.shadow import DDL, FILL_COLUMNS, POSITION_COLUMNS


class ShadowStore(PgSink):
    """Writes one boundary of the ledger per transaction (see the module doc)."""

    ddl = DDL

    def close(self) -> None:
        self._disconnect()

    def write_boundary(
        self,
        ledger_id: str,
        fills: list[tuple],
        positions: list[tuple],
        equity: dict[str, Any],
        daily: dict[str, Any],
    ) -> None:
        """Fills, the open positions (replacing the previous set), the boundary's equity row and
        the day's running totals, in one transaction. Raises ``psycopg.Error`` (the caller
        retries the boundary)."""
        try:
            conn = self._ready()
            with conn.transaction(), conn.cursor() as cur:
                if fills:
                    cols = ", ".join(FILL_COLUMNS)
                    marks = ", ".join(["%s"] * len(FILL_COLUMNS))
                    cur.executemany(
                        f"INSERT INTO shadow_fills ({cols}) VALUES ({marks}) "
                        "ON CONFLICT DO NOTHING",
                        fills,
                    )
                cur.execute("DELETE FROM shadow_positions WHERE ledger_id = %s", (ledger_id,))
                if positions:
                    cols = ", ".join(POSITION_COLUMNS)
                    marks = ", ".join(["%s"] * len(POSITION_COLUMNS))
                    cur.executemany(
                        f"INSERT INTO shadow_positions ({cols}) VALUES ({marks})", positions
                    )
                cur.execute(
                    "INSERT INTO shadow_equity (ledger_id, boundary, day, pnl, gross_exposure, "
                    "net_exposure, var, positions, risk_gates, model_version) VALUES ("
                    "%(ledger_id)s, %(boundary)s, %(day)s, %(pnl)s, %(gross)s, %(net)s, %(var)s, "
                    "%(positions)s, %(risk_gates)s, %(model_version)s) ON CONFLICT DO NOTHING",
                    {
                        **equity,
                        "ledger_id": ledger_id,
                        "risk_gates": json.dumps(equity["risk_gates"]),
                    },
                )
                cur.execute(
                    "INSERT INTO shadow_daily (ledger_id, day, pnl, costs, n_fills, n_trades, "
                    "traded_value, max_gross, last_boundary, execution) VALUES (%(ledger_id)s, "
                    "%(day)s, %(pnl)s, %(costs)s, %(n_fills)s, %(n_trades)s, %(traded_value)s, "
                    "%(max_gross)s, %(last_boundary)s, %(execution)s) "
                    "ON CONFLICT (ledger_id, day) DO UPDATE SET "
                    "pnl = EXCLUDED.pnl, costs = EXCLUDED.costs, n_fills = EXCLUDED.n_fills, "
                    "n_trades = EXCLUDED.n_trades, traded_value = EXCLUDED.traded_value, "
                    "max_gross = EXCLUDED.max_gross, last_boundary = EXCLUDED.last_boundary",
                    {**daily, "ledger_id": ledger_id},
                )
        except psycopg.Error:
            self._disconnect()
            raise
