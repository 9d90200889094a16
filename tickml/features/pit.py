"""The point-in-time columns: served by Feast beside the features so the training set can
prove, row by row, that no feature came from after its label time."""

from __future__ import annotations

import pandas as pd

#: not model inputs: the row's own close and its newest input tick, int64 UTC ns
PIT_COLUMNS: tuple[str, str] = ("row_event_ns", "last_tick_ns")


def with_pit_columns(features: pd.DataFrame) -> pd.DataFrame:
    """Add ``row_event_ns`` (= ``event_timestamp``) and ``last_tick_ns`` (= ``last_tick_ts``)."""
    out = features.copy()
    out["row_event_ns"] = out["event_timestamp"].astype("int64")
    out["last_tick_ns"] = out["last_tick_ts"].astype("int64")
    return out


def pit_violations(features: pd.DataFrame) -> int:
    """Rows whose newest input tick is after their event_timestamp (must be 0)."""
    if features.empty:
        return 0
    return int((features["last_tick_ts"] > features["event_timestamp"]).sum())
