"""Canonical ticks -> PostgreSQL tick store (COPY), on one real equity day.

``store``: ``value`` is ticks/s of :meth:`tickml.store.postgres.TickStore.write_day` (median of
``repeats``; the first repeat writes a fresh day, the others re-ingest it, which is what the
idempotent replace does in production), end to end: checks, partition creation, the replace
(TRUNCATE or DELETE), vectorised binary COPY, commit. ``baseline_value``: the naive way, the
same ticks COPYed row by row with psycopg's ``Copy.write_row`` (NaN -> None per value),
measured in the same run on the first ``baseline_ticks`` ticks; ``executemany_ticks_per_s``:
``executemany`` of an ``INSERT``, the "DB operations per second" style of the reference system.

Other entries, each with its own baseline:

- ``store_replace_delete``: ``write_day`` when the day's partition holds other symbols too,
  so the old rows are DELETEd (dead tuples the new rows' unique checks must visit) instead of
  the partition TRUNCATEd; baseline = the TRUNCATE path (``store``).
- ``store_append``: the live writer's ``append`` (COPY to a temp table + INSERT ON CONFLICT DO
  NOTHING) of new ticks, and (``redelivered_ticks_per_s``) of the same ticks again, all
  skipped; baseline = ``write_day``.
- ``store_append_batches``: ``append`` of 1,000-tick batches one after the other (the live
  writer's shape), with ``p50_ms`` / ``p99_ms`` per batch; baseline = ``executemany`` of an
  ``INSERT ... ON CONFLICT DO NOTHING`` per batch.
- ``store_copy_no_pk``: the same binary COPY into a plain table without the primary key,
  and ``pk_after_ticks_per_s``: COPY without it then ``ADD PRIMARY KEY``; baseline = COPY
  into the same table with the key (the cost of the index).
- ``store_copy_csv``: COPY of CSV written by ``pyarrow.csv.write_csv`` (vectorised text),
  baseline = the binary COPY into the same table.
- ``store_read``: ``read`` of the day (binary COPY out, numpy decode) in ticks/s; baseline =
  ``SELECT`` + ``fetchall`` + ``DataFrame``.

The server is the one at ``url`` (default ``$TICKML_PG_URL``, else the local
``postgresql://postgres@127.0.0.1:5432/postgres``); everything runs in a scratch database
created for the run and dropped afterwards. Ticks: the first ``n_ticks`` (in time) of one real
equity day (``root``, all symbols, via :func:`tickml.readers.equity.read_equity_day`), or
synthetic ticks when the data is absent or the day has fewer than ``n_ticks``.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql

from benchmarks.common import equity_root
from tickml.redact import redact
from tickml.schema import FLOAT_COLUMNS, TICK_COLUMNS
from tickml.settings import Settings
from tickml.store.postgres import (
    TickStore,
    encode_copy_binary,
    normalize_url,
    prepare_ticks,
)

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
_COLS = ", ".join(TICK_COLUMNS)


def _median_rate(n: int, seconds: list[float]) -> float:
    return n / statistics.median(seconds)


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _real_ticks(root: Path, day: dt.date, n: int) -> pd.DataFrame | None:
    if not root.is_dir():
        return None
    try:
        from tickml.readers.equity import read_equity_day
    except ImportError:
        return None
    ticks = read_equity_day(root, day).ticks
    if len(ticks) < n:
        return None
    first = ticks.sort_values(["ts", "symbol", "seq"], kind="stable").head(n)
    return first.sort_values(["symbol", "ts", "seq"], kind="stable").reset_index(drop=True)


def synthetic_ticks(n: int, day: dt.date, n_symbols: int = 20, seed: int = 0) -> pd.DataFrame:
    """Quote-heavy ticks over a US session: ~8% trades, one trades-only symbol, ms stamps."""
    rng = np.random.default_rng(seed)
    sym_idx = np.sort(rng.integers(0, n_symbols, n))
    start = pd.Timestamp(day, tz="America/New_York") + pd.Timedelta(hours=9, minutes=30)
    ms = np.sort(rng.integers(0, 6 * 3600 * 1000 + 30 * 60 * 1000, n))
    ts = start.tz_convert("UTC").value + ms * 1_000_000
    order = np.lexsort((ts, sym_idx))
    sym_idx, ts = sym_idx[order], ts[order]
    mid = 50 + np.cumsum(rng.normal(0, 0.01, n))
    trade = rng.random(n) < 0.08
    trades_only = sym_idx == 0
    trade |= trades_only
    book = np.where(trades_only, np.nan, 1.0)
    frame = pd.DataFrame(
        {
            "symbol": np.array([f"S{i:04d}" for i in range(n_symbols)], dtype=object)[sym_idx],
            "ts": pd.to_datetime(ts, utc=True),
            "seq": (ts // 1_000_000) * 1000 + np.arange(n) % 1000,
            "bid": np.round(mid - 0.005, 2) * book,
            "ask": np.round(mid + 0.005, 2) * book,
            "bid_size": rng.integers(1, 50, n) * 100.0 * book,
            "ask_size": rng.integers(1, 50, n) * 100.0 * book,
            "price": np.where(trade, np.round(mid, 2), np.nan),
            "size": np.where(trade, rng.integers(1, 10, n) * 100.0, 0.0),
        }
    )
    return frame.drop_duplicates(["symbol", "seq"]).reset_index(drop=True)


def _naive_write_row(conn: psycopg.Connection[Any], ticks: pd.DataFrame) -> None:
    """The naive COPY: one Python tuple per tick through ``Copy.write_row``."""
    with conn.transaction(), conn.cursor() as cur:
        with cur.copy(f"COPY ticks ({_COLS}) FROM STDIN") as copy:
            for row in ticks.itertuples(index=False, name=None):
                copy.write_row([None if isinstance(v, float) and v != v else v for v in row])


def _naive_executemany(
    conn: psycopg.Connection[Any], ticks: pd.DataFrame, on_conflict: bool = False
) -> None:
    rows = [
        tuple(None if isinstance(v, float) and v != v else v for v in row)
        for row in ticks.itertuples(index=False, name=None)
    ]
    with conn.transaction(), conn.cursor() as cur:
        values = ", ".join(["%s"] * len(TICK_COLUMNS))
        conflict = " ON CONFLICT DO NOTHING" if on_conflict else ""
        cur.executemany(f"INSERT INTO ticks ({_COLS}) VALUES ({values}){conflict}", rows)


def _csv_copy(conn: psycopg.Connection[Any], table: str, ticks: pd.DataFrame) -> None:
    """COPY of CSV produced by pyarrow (NaN -> empty = NULL), in 100k-row chunks."""
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))
        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT CSV)").format(
            sql.Identifier(table), sql.SQL(_COLS)
        )
        with cur.copy(stmt) as copy:
            for i in range(0, len(ticks), 100_000):
                part = ticks.iloc[i : i + 100_000]
                arrays = [pa.array(part["symbol"].to_numpy(), pa.string())]
                arrays.append(pa.array(part["ts"].dt.ceil("us")))  # as the store rounds
                arrays.append(pa.array(part["seq"].to_numpy()))
                arrays += [pa.array(part[c].to_numpy(), from_pandas=True) for c in FLOAT_COLUMNS]
                buf = io.BytesIO()
                pacsv.write_csv(
                    pa.Table.from_arrays(arrays, names=list(TICK_COLUMNS)),
                    buf,
                    pacsv.WriteOptions(include_header=False),
                )
                copy.write(buf.getbuffer())


def _binary_copy(store: TickStore, table: str, prep: Any) -> None:
    conn = store.conn
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))
        store._copy_into(cur, table, prep, freeze=True)


def _copy_then_pk(store: TickStore, prep: Any) -> None:
    conn = store.conn
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS bench_pk_after")
        cur.execute("CREATE TABLE bench_pk_after (LIKE bench_nopk)")
        store._copy_into(cur, "bench_pk_after", prep, freeze=True)
        cur.execute("ALTER TABLE bench_pk_after ADD PRIMARY KEY (symbol, ts, seq)")


def run(
    url: str | None = None,
    n_ticks: int = 1_000_000,
    repeats: int = 3,
    root: Path | str | None = None,
    day: str | dt.date = "2013-10-08",
    baseline_ticks: int = 50_000,
    variants: bool = True,
) -> list[dict[str, Any]]:
    day = pd.Timestamp(day).date()
    admin = normalize_url(url or Settings.from_env().pg_url or DEFAULT_URL)
    ticks = _real_ticks(Path(root) if root else equity_root(), day, n_ticks)
    source = f"real equity day {day} (all symbols, first {n_ticks:,} ticks)"
    if ticks is None:
        ticks = synthetic_ticks(n_ticks, day)
        source = f"synthetic ({len(ticks):,} ticks, 20 symbols)"
    n = len(ticks)
    tz = "America/New_York"
    name = f"tickml_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(admin)
    scratch = urlunsplit(parts._replace(path=f"/{name}"))
    common = {
        "data": source,
        "n_ticks": n,
        "repeats": repeats,
        "server": redact(urlunsplit(parts._replace(path="", query=""))),
    }
    out: list[dict[str, Any]] = []
    store: TickStore | None = None
    try:
        store = TickStore(scratch)
        store.ensure_schema()
        conn = store.conn
        server_version = conn.info.server_version

        t0 = time.perf_counter()
        prep = prepare_ticks(ticks)
        chunks = [encode_copy_binary(prep, i, min(i + 100_000, n)) for i in range(0, n, 100_000)]
        encode_s = time.perf_counter() - t0
        payload_mb = sum(len(c) for c in chunks) / 1e6
        del chunks

        writes = [_timed(lambda: store.write_day(ticks, day, tz=tz)) for _ in range(repeats)]
        assert store.count(day, tz=tz) == n

        sample = ticks.iloc[:baseline_ticks]
        conn.execute("TRUNCATE ticks")
        naive = _timed(lambda: _naive_write_row(conn, sample))
        conn.execute("TRUNCATE ticks")
        small = sample.iloc[: max(baseline_ticks // 5, 1)]
        many = _timed(lambda: _naive_executemany(conn, small))
        conn.execute("TRUNCATE ticks")
        rate = _median_rate(n, writes)
        base = len(sample) / naive
        out.append(
            {
                "name": "store",
                "value": round(rate),
                "unit": "ticks/s",
                "baseline_value": round(base),
                "ratio": round(rate / base, 2),
                "baseline": f"psycopg Copy.write_row per tick ({len(sample):,} ticks)",
                "fresh_ticks_per_s": round(n / writes[0]),
                "reingest_ticks_per_s": [round(n / s) for s in writes[1:]],
                "executemany_ticks_per_s": round(len(small) / many),
                "encode_ticks_per_s": round(n / encode_s),
                "copy_payload_mb": round(payload_mb, 1),
                "server_version": server_version,
                **common,
            }
        )
        if not variants:
            return out

        # DELETE path: another symbol's ticks stay in the partition
        keep = ticks["symbol"] == ticks["symbol"].iloc[-1]
        others = ticks[~keep]
        syms = sorted(others["symbol"].unique())
        store.write_day(ticks, day, tz=tz)
        dels = [
            _timed(lambda: store.write_day(others, day, symbols=syms, tz=tz))
            for _ in range(repeats)
        ]
        d_rate = _median_rate(len(others), dels)
        out.append(
            {
                "name": "store_replace_delete",
                "value": round(d_rate),
                "unit": "ticks/s",
                "baseline_value": round(rate),
                "ratio": round(d_rate / rate, 2),
                "baseline": "write_day that can TRUNCATE the partition",
                "n_replaced": len(others),
                **common,
            }
        )

        apps, redeliver = [], []
        for _ in range(repeats):
            conn.execute("TRUNCATE ticks")
            t = time.perf_counter()
            assert store.append(ticks) == n
            apps.append(time.perf_counter() - t)
            t = time.perf_counter()
            assert store.append(ticks) == 0
            redeliver.append(time.perf_counter() - t)
        a_rate = _median_rate(n, apps)
        out.append(
            {
                "name": "store_append",
                "value": round(a_rate),
                "unit": "ticks/s",
                "baseline_value": round(rate),
                "ratio": round(a_rate / rate, 2),
                "baseline": "write_day",
                "redelivered_ticks_per_s": round(_median_rate(n, redeliver)),
                **common,
            }
        )
        conn.execute("TRUNCATE ticks")

        # the live writer's shape: many small batches (one sampling interval each)
        batch = 1_000
        lat = []
        n_batches = min(n // batch, 300)
        for i in range(n_batches):
            part = ticks.iloc[i * batch : (i + 1) * batch]
            t = time.perf_counter()
            store.append(part)
            lat.append(time.perf_counter() - t)
        conn.execute("TRUNCATE ticks")
        n_naive = min(n_batches, 30)
        naive_lat = []
        for i in range(n_naive):
            part = ticks.iloc[i * batch : (i + 1) * batch]
            naive_lat.append(_timed(functools.partial(_naive_executemany, conn, part, True)))
        conn.execute("TRUNCATE ticks")
        ms = np.array(lat) * 1000
        out.append(
            {
                "name": "store_append_batches",
                "value": round(batch * len(lat) / sum(lat)),
                "unit": "ticks/s",
                "baseline_value": round(batch * len(naive_lat) / sum(naive_lat)),
                "ratio": round(sum(naive_lat) / len(naive_lat) / (sum(lat) / len(lat)), 2),
                "baseline": "executemany INSERT ... ON CONFLICT DO NOTHING per batch",
                "batch_ticks": batch,
                "n_batches": len(lat),
                "p50_ms": round(float(np.percentile(ms, 50)), 2),
                "p99_ms": round(float(np.percentile(ms, 99)), 2),
                "baseline_p50_ms": round(float(np.median(naive_lat)) * 1000, 2),
                **common,
            }
        )

        conn.execute("CREATE TABLE bench_pk (LIKE ticks, PRIMARY KEY (symbol, ts, seq))")
        conn.execute("CREATE TABLE bench_nopk (LIKE ticks)")
        pk = [_timed(lambda: _binary_copy(store, "bench_pk", prep)) for _ in range(repeats)]
        nopk = [_timed(lambda: _binary_copy(store, "bench_nopk", prep)) for _ in range(repeats)]
        after = [_timed(lambda: _copy_then_pk(store, prep)) for _ in range(repeats)]
        pk_rate, nopk_rate = _median_rate(n, pk), _median_rate(n, nopk)
        out.append(
            {
                "name": "store_copy_no_pk",
                "value": round(nopk_rate),
                "unit": "ticks/s",
                "baseline_value": round(pk_rate),
                "ratio": round(nopk_rate / pk_rate, 2),
                "baseline": "binary COPY into the same table with PRIMARY KEY (symbol, ts, seq)",
                "pk_after_ticks_per_s": round(_median_rate(n, after)),
                **common,
            }
        )
        csv = [_timed(lambda: _csv_copy(conn, "bench_pk", ticks)) for _ in range(repeats)]
        csv_rate = _median_rate(n, csv)
        out.append(
            {
                "name": "store_copy_csv",
                "value": round(csv_rate),
                "unit": "ticks/s",
                "baseline_value": round(pk_rate),
                "ratio": round(csv_rate / pk_rate, 2),
                "baseline": "vectorised binary COPY into the same table",
                **common,
            }
        )

        store.write_day(ticks, day, tz=tz)
        reads = [_timed(lambda: store.read(day, tz=tz)) for _ in range(repeats)]

        def naive_read() -> None:
            cur = conn.execute(f"SELECT {_COLS} FROM ticks ORDER BY symbol, ts, seq")
            pd.DataFrame(cur.fetchall(), columns=list(TICK_COLUMNS))

        naive_r = _timed(naive_read)
        r_rate = _median_rate(n, reads)
        out.append(
            {
                "name": "store_read",
                "value": round(r_rate),
                "unit": "ticks/s",
                "baseline_value": round(n / naive_r),
                "ratio": round(r_rate * naive_r / n, 2),
                "baseline": "SELECT + fetchall + DataFrame",
                **common,
            }
        )
        return out
    finally:
        if store is not None:
            store.close()
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.WARNING)
    for result in run():
        print(json.dumps(result))
