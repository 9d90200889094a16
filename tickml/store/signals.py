"""Reading the live scorer's signals back from PostgreSQL (``live_signals``, written by
``live.sinks``): the consistency check compares them with the batch path."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import psycopg

from tickml.store.postgres import normalize_url

SIGNAL_COLUMNS = ("symbol", "event_timestamp", "model_version", "score", "gate")


def read_signals(url: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    """Signals with ``start <= event_timestamp <= end`` (UTC): symbol, event_timestamp,
    model_version, score (NaN when not scored), gate. No table yet: an empty frame."""
    with psycopg.connect(normalize_url(url), connect_timeout=5) as conn:
        exists = conn.execute("SELECT to_regclass('live_signals') IS NOT NULL").fetchone()
        rows = (
            conn.execute(
                "SELECT symbol, event_timestamp, model_version, score, gate FROM live_signals "
                "WHERE event_timestamp BETWEEN %s AND %s ORDER BY event_timestamp, symbol",
                (start, end),
            ).fetchall()
            if exists and exists[0]
            else []
        )
    frame = pd.DataFrame(rows, columns=list(SIGNAL_COLUMNS))
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True).astype(
        "datetime64[ns, UTC]"
    )
    frame["score"] = pd.to_numeric(frame["score"]).astype(np.float64)
    return frame
