"""PostgreSQL tick store: canonical ticks in a table partitioned by UTC day, written with COPY.

Tables (created by :meth:`TickStore.ensure_schema`, idempotently):

``ticks``
    the canonical tick, declaratively partitioned ``BY RANGE (ts)`` with one partition per UTC
    day named ``ticks_YYYYMMDD``; partitions are created on demand. Primary key
    ``(symbol, ts, seq)`` (a unique index on a partitioned table must contain the partition
    key). ``symbol`` uses the ``"C"`` collation: byte order of UTF-8 is code-point order, so the
    index order is exactly the canonical (Python) sort order, and comparisons are ``memcmp``
    instead of locale-aware (faster inserts).
``quarantine``
    rejected input: ``(source, position, reason)`` is the key, so writing the same rejects again
    (re-ingesting a file) stores them once.
``ingest_log``
    one row per ``(day, source)``: what was ingested, with counts; upserted, so the record of a
    re-ingested day is replaced, not duplicated.

Timestamps: PostgreSQL stores microseconds, the canonical tick nanoseconds. Ticks are written
with their timestamp **rounded up to the microsecond** (ceiling, towards the later instant; the
real vendor data is millisecond-resolution, so nothing changes there). Rounding up keeps two
rules exact: a stored tick is never earlier than the event (no look-ahead), and a tick lies in
a trading day (local midnight, next local midnight] (:mod:`tickml.market`) exactly when its
stored time does, since midnights are whole microseconds. Two ticks of one symbol that differ
only below the microsecond and share a ``seq`` therefore collide on the key.

Days: every day window of the store (replace, read, count of a day) is the trading day of
:mod:`tickml.market` in the given time zone, ``(start, end]``; the physical partitions stay UTC
days, ``[00:00, next 00:00)`` (PostgreSQL's range partitions), so a day can touch two of them.

Floats: NaN is stored as SQL NULL (there is never a ``'NaN'`` in the store) and read back as NaN;
infinities and every finite float64 (subnormals, ``-0.0``) round-trip bit-exactly because
the data travels in PostgreSQL's binary COPY format, never through text.

Writes:

- :meth:`TickStore.write_day` is an idempotent replace for batch ingest: one transaction
  deletes the day's rows of the given symbols and COPYs the new ones, so re-ingesting a day
  never duplicates rows and a failure leaves the previous day intact.
- :meth:`TickStore.append` is the live writer's at-least-once-safe insert: COPY into a
  session-temporary staging table, then ``INSERT ... ON CONFLICT DO NOTHING``; a redelivered
  tick is inserted once.

The COPY payload is built vectorised with numpy (see :func:`encode_copy_binary`): one packed
big-endian record per row with a slot for every field at its maximal width, then a byte mask
drops the unused bytes (NULL floats, the tail of shorter symbols). Measured numbers are in
``benchmarks/store.py``.

A :class:`TickStore` holds one connection and is not meant to be shared between threads. It
caches which partitions exist; a partition dropped behind its back (retention) is recreated
only by a new :class:`TickStore`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql
from psycopg.copy import LibpqWriter, QueuedLibpqWriter

from tickml.market import Market, day_span
from tickml.redact import redact
from tickml.schema import FLOAT_COLUMNS, QUARANTINE_COLUMNS, REJECT_REASONS, TICK_COLUMNS

log = logging.getLogger(__name__)

TICKS_TABLE = "ticks"
QUARANTINE_TABLE = "quarantine"
INGEST_LOG_TABLE = "ingest_log"
_STAGE_TABLE = "tickml_ticks_stage"

#: microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 UTC)
PG_EPOCH_OFFSET_US = 946_684_800_000_000
_NAT = np.iinfo(np.int64).min
_DAY_NS = 86_400 * 10**9

_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_HEADER = _COPY_SIGNATURE + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # flags, ext length
_COPY_TRAILER = b"\xff\xff"
#: rows encoded per COPY chunk: bounds memory (~2 x 110 bytes per row) and lets the encoding
#: of the next chunk overlap with PostgreSQL consuming the previous one
COPY_CHUNK_ROWS = 100_000

_ADVISORY_SCHEMA_KEY = 0x7469636B  # "tick"

_SCHEMA_SQL = [
    """
    CREATE TABLE IF NOT EXISTS ticks (
        symbol   text COLLATE "C" NOT NULL,
        ts       timestamptz NOT NULL,
        seq      bigint NOT NULL,
        bid      double precision,
        ask      double precision,
        bid_size double precision,
        ask_size double precision,
        price    double precision,
        size     double precision,
        CONSTRAINT ticks_pkey PRIMARY KEY (symbol, ts, seq)
    ) PARTITION BY RANGE (ts)
    """,
    """
    CREATE TABLE IF NOT EXISTS quarantine (
        source      text NOT NULL,
        position    bigint NOT NULL,
        reason      text NOT NULL,
        symbol      text,
        ts          timestamptz,
        raw         text,
        ingested_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT quarantine_pkey PRIMARY KEY (source, position, reason)
    )
    """,
    # the day a record was ingested with (tickml.days): a re-ingest replaces that day's only
    "ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS day date",
    """
    CREATE TABLE IF NOT EXISTS ingest_log (
        day           date NOT NULL,
        source        text NOT NULL,
        n_ticks       bigint NOT NULL,
        n_quarantined bigint NOT NULL,
        counts        jsonb NOT NULL DEFAULT '{}'::jsonb,
        started_at    timestamptz,
        finished_at   timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT ingest_log_pkey PRIMARY KEY (day, source)
    )
    """,
]

_COPY_COLUMNS = sql.SQL(", ").join(sql.Identifier(c) for c in TICK_COLUMNS)


# --------------------------------------------------------------------------------------- URLs


def normalize_url(url: str) -> str:
    """A libpq URL from a libpq or SQLAlchemy-style one (``postgresql+psycopg2://`` etc.)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("expected a URL like postgresql://user@host:5432/dbname")
    base = scheme.split("+", 1)[0].lower()
    if base not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL (scheme {scheme!r})")
    return f"postgresql://{rest}"


# ---------------------------------------------------------------------------- tick preparation


@dataclass
class PreparedTicks:
    """Canonical ticks checked and laid out as the arrays the COPY encoder needs."""

    codes: np.ndarray  # int64 index into symbols, per row
    symbols: list[str]  # distinct symbols
    symbol_bytes: list[bytes]  # their UTF-8 encodings
    ts_ns: np.ndarray  # int64 ns since the Unix epoch (UTC)
    seq: np.ndarray  # int64
    floats: dict[str, np.ndarray]  # float64, NaN = NULL

    def __len__(self) -> int:
        return len(self.ts_ns)

    def utc_days(self) -> list[dt.date]:
        if not len(self):
            return []
        days = np.unique(np.floor_divide(stored_us(self.ts_ns), _DAY_NS // 1000))
        return [dt.date(1970, 1, 1) + dt.timedelta(days=int(d)) for d in days]


def prepare_ticks(ticks: pd.DataFrame) -> PreparedTicks:
    """Check that every value of ``ticks`` can be stored and lay it out for COPY.

    Raises ``ValueError`` naming the problem (missing column, null or non-string symbol, a
    symbol with a NUL character or not encodable as UTF-8, NaT timestamp, non-integer or null
    seq, non-numeric float column) before anything is sent to the database.
    """
    missing = [c for c in TICK_COLUMNS if c not in ticks.columns]
    if missing:
        raise ValueError(f"tick frame lacks canonical columns {missing}")
    n = len(ticks)

    codes, uniques = pd.factorize(ticks["symbol"], sort=False, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    if n and (codes < 0).any():
        raise ValueError(f"{int((codes < 0).sum())} ticks have a null symbol")
    symbols: list[str] = []
    symbol_bytes: list[bytes] = []
    for s in list(uniques):
        if not isinstance(s, str):
            raise ValueError(f"symbol {s!r} is a {type(s).__name__}, not a str")
        if "\x00" in s:
            raise ValueError(f"symbol {s!r} contains a NUL character: PostgreSQL text cannot")
        try:
            b = s.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"symbol {s!r} is not encodable as UTF-8: {exc}") from exc
        symbols.append(s)
        symbol_bytes.append(b)

    ts = ticks["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype) or ts.dtype != "datetime64[ns, UTC]":
        try:
            ts = pd.to_datetime(ts, utc=True).astype("datetime64[ns, UTC]")
        except (ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"ts is not convertible to timestamp[ns, UTC]: {exc}") from exc
    ts_ns = np.asarray(ts.array.asi8, dtype=np.int64)
    if n and (ts_ns == _NAT).any():
        raise ValueError(f"{int((ts_ns == _NAT).sum())} ticks have a null ts")

    seq_col = ticks["seq"]
    if not pd.api.types.is_integer_dtype(seq_col.dtype):
        raise ValueError(f"seq must be an integer column, got {seq_col.dtype}")
    if seq_col.isna().any():
        raise ValueError(f"{int(seq_col.isna().sum())} ticks have a null seq")
    if seq_col.dtype == np.uint64 and n and int(seq_col.max()) > np.iinfo(np.int64).max:
        raise ValueError("seq values exceed the bigint range")
    seq = seq_col.to_numpy(dtype=np.int64)

    floats: dict[str, np.ndarray] = {}
    for c in FLOAT_COLUMNS:
        try:
            floats[c] = np.ascontiguousarray(
                ticks[c].to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64
            )
        except (ValueError, TypeError) as exc:
            raise ValueError(f"column {c} is not numeric: {exc}") from exc
    return PreparedTicks(codes, symbols, symbol_bytes, ts_ns, seq, floats)


def encode_copy_binary(prep: PreparedTicks, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Rows ``start:stop`` of ``prep`` as PostgreSQL binary COPY tuples (no header/trailer).

    Each tuple is ``int16 field count`` then per field ``int32 length`` (-1 = NULL) and the
    big-endian value, in :data:`TICK_COLUMNS` order; ``timestamptz`` is int64 microseconds
    since 2000-01-01 UTC. All rows are first written as fixed-size packed records with every
    field at its maximal width; a per-byte mask then removes what a row does not use (the
    8 value bytes of a NULL float, the padding after a shorter symbol). Returns uint8 bytes.
    """
    stop = len(prep) if stop is None else stop
    n = stop - start
    lens = np.fromiter(
        (len(b) for b in prep.symbol_bytes), dtype=np.int32, count=len(prep.symbol_bytes)
    )
    width = max(int(lens.max()) if len(lens) else 1, 1)
    fields: list[tuple[str, str]] = [
        ("nf", ">i2"),
        ("sl", ">i4"),
        ("sym", f"S{width}"),
        ("tl", ">i4"),
        ("ts", ">i8"),
        ("ql", ">i4"),
        ("seq", ">i8"),
    ]
    for c in FLOAT_COLUMNS:
        fields += [(f"{c}_l", ">i4"), (c, ">f8")]
    rtype = np.dtype(fields)
    if n <= 0:
        return np.empty(0, dtype=np.uint8)
    codes = prep.codes[start:stop]
    rec = np.empty(n, dtype=rtype)
    rec["nf"] = len(TICK_COLUMNS)
    row_lens = lens[codes]
    rec["sl"] = row_lens
    rec["sym"] = np.array(prep.symbol_bytes, dtype=f"S{width}")[codes]
    rec["tl"] = 8
    rec["ts"] = stored_us(prep.ts_ns[start:stop]) - PG_EPOCH_OFFSET_US
    rec["ql"] = 8
    rec["seq"] = prep.seq[start:stop]
    mask: np.ndarray | None = None
    if (lens != width).any():
        mask = np.ones((n, rtype.itemsize), dtype=bool)
        off = rtype.fields["sym"][1]  # type: ignore[index]
        mask[:, off : off + width] = np.arange(width)[None, :] < row_lens[:, None]
    for c in FLOAT_COLUMNS:
        v = prep.floats[c][start:stop]
        rec[c] = v
        null = np.isnan(v)
        if null.any():
            rec[f"{c}_l"] = np.where(null, -1, 8)
            if mask is None:
                mask = np.ones((n, rtype.itemsize), dtype=bool)
            off = rtype.fields[c][1]  # type: ignore[index]
            mask[:, off : off + 8] = ~null[:, None]
        else:
            rec[f"{c}_l"] = 8
    raw = rec.view(np.uint8).reshape(n, rtype.itemsize)
    return raw[mask] if mask is not None else raw.reshape(-1)


def _targets(
    prep: PreparedTicks, symbols: Sequence[str] | None, whole_day: bool
) -> list[str] | None:
    """The symbols a day write replaces (None: every symbol; see ``TickStore.write_day``)."""
    if whole_day:
        if symbols is not None:
            raise ValueError("give symbols or whole_day, not both")
        return None
    if symbols is None:
        return list(prep.symbols)
    targets = [str(s) for s in symbols]
    extra = sorted(set(prep.symbols) - set(targets))
    if extra:
        raise ValueError(f"ticks hold symbols not listed in symbols: {extra[:10]}")
    for s in targets:
        if "\x00" in s:
            raise ValueError(f"symbol {s!r} contains a NUL character")
    return targets


def stored_us(ts_ns: np.ndarray) -> np.ndarray:
    """The microseconds a tick's UTC ns time is stored as: rounded up (see the module text)."""
    return -np.floor_divide(-np.asarray(ts_ns, dtype=np.int64), 1000)


def _copy_chunks(prep: PreparedTicks, chunk_rows: int = COPY_CHUNK_ROWS) -> Iterator[memoryview]:
    for i in range(0, len(prep), chunk_rows):
        yield encode_copy_binary(prep, i, min(i + chunk_rows, len(prep))).data


# -------------------------------------------------------------------------------- day windows


def _to_utc(value: Any, tz: str) -> pd.Timestamp:
    t = pd.Timestamp(value)
    if t.tzinfo is None:
        t = t.tz_localize(tz)
    return t.tz_convert("UTC")


def day_window(day: dt.date | str, tz: str = "UTC") -> tuple[pd.Timestamp, pd.Timestamp]:
    """``(start, end]`` in UTC of the trading day ``day`` in time zone ``tz``
    (:func:`tickml.market.day_span`)."""
    start, end = day_span(pd.Timestamp(day).date(), tz)
    return pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")


def _utc_days_between(lo: pd.Timestamp, hi: pd.Timestamp) -> list[dt.date]:
    """The UTC days (partitions) that hold stored times in ``(lo, hi]``."""
    last = hi.date()
    out, d = [], (lo + pd.Timedelta(1, "us")).date()
    while d <= last:
        out.append(d)
        d += dt.timedelta(days=1)
    return out


def partition_name(day: dt.date) -> str:
    return f"{TICKS_TABLE}_{day:%Y%m%d}"


def _symbol_ranges_sql(table: sql.Composable) -> sql.Composed:
    """(symbol, min ts, max ts) of each symbol in ``table``, skipping through the primary key.

    A recursive CTE emulates a loose index scan: one index probe per distinct symbol plus two
    for its first and last ts, instead of reading the table.
    """
    return sql.SQL(
        """WITH RECURSIVE s(symbol) AS (
             (SELECT symbol FROM {t} ORDER BY symbol LIMIT 1)
             UNION ALL
             SELECT (SELECT t.symbol FROM {t} t WHERE t.symbol > s.symbol
                     ORDER BY t.symbol LIMIT 1)
             FROM s WHERE s.symbol IS NOT NULL)
           SELECT s.symbol,
                  (SELECT min(t.ts) FROM {t} t WHERE t.symbol = s.symbol),
                  (SELECT max(t.ts) FROM {t} t WHERE t.symbol = s.symbol)
           FROM s WHERE s.symbol IS NOT NULL"""
    ).format(t=table)


_PARTITION_RE = re.compile(rf"^{TICKS_TABLE}_(\d{{8}})$")


def _clean_text(value: Any) -> str | None:
    """Text PostgreSQL can hold: None stays None, NUL and unencodable characters are escaped."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    s = value if isinstance(value, str) else str(value)
    if "\x00" in s:
        s = s.replace("\x00", "\\x00")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    return s


# --------------------------------------------------------------------------------- the store


class TickStore:
    """Canonical ticks in PostgreSQL; see the module documentation for the layout.

    ``url`` is a libpq URL (``postgresql://user:pw@host:5432/db``) or a SQLAlchemy-style one
    (``postgresql+psycopg2://...``, ``postgresql+psycopg://...``): the driver part is ignored.
    The connection is opened on first use; the password never appears in logs
    (:attr:`redacted_url`).
    """

    def __init__(self, url: str) -> None:
        self._conninfo = normalize_url(url)
        self.redacted_url = redact(self._conninfo)
        self._conn: psycopg.Connection[Any] | None = None
        self._schema_ready = False
        self._partitions: set[dt.date] = set()
        self._stage_ready = False

    # ----------------------------------------------------------------------- connection

    @property
    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            log.debug("connecting to %s", self.redacted_url)
            self._conn = psycopg.connect(
                self._conninfo, autocommit=True, application_name="tickml-store"
            )
            self._conn.execute("SET TimeZone TO 'UTC'")
            self._stage_ready = False
        return self._conn

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None

    def __enter__(self) -> TickStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"TickStore({self.redacted_url!r})"

    # --------------------------------------------------------------------------- schema

    def ensure_schema(self) -> None:
        """Create the tables if missing (idempotent; concurrent callers are serialised)."""
        conn = self.conn
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_ADVISORY_SCHEMA_KEY,))
            for stmt in _SCHEMA_SQL:
                conn.execute(stmt)
        self._schema_ready = True
        log.debug("schema ready on %s", self.redacted_url)

    def forget_cached_state(self) -> None:
        """Forget the partitions (and schema) this object believes exist: call it after an
        outer transaction that wrapped writes of the store was rolled back."""
        self._partitions = set()
        self._schema_ready = False

    def _ready(self) -> psycopg.Connection[Any]:
        if not self._schema_ready:
            self.ensure_schema()
        return self.conn

    def partitions(self) -> list[dt.date]:
        """The UTC days that have a ``ticks`` partition, ascending."""
        conn = self._ready()
        rows = conn.execute(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = %s::regclass""",
            (TICKS_TABLE,),
        ).fetchall()
        days = []
        for (name,) in rows:
            m = _PARTITION_RE.match(name)
            if m:
                days.append(dt.datetime.strptime(m.group(1), "%Y%m%d").date())
        return sorted(days)

    def ensure_partitions(self, days: Iterable[dt.date | str]) -> list[str]:
        """Create the ``ticks`` partitions of these UTC days if missing; their names.

        Safe when writers race: each partition is created in its own short transaction with
        ``CREATE TABLE IF NOT EXISTS ... PARTITION OF``, and a duplicate error from a writer
        that lost the race is caught once the partition is seen to exist.
        """
        conn = self._ready()
        wanted = sorted({pd.Timestamp(d).date() for d in days})
        todo = [d for d in wanted if d not in self._partitions]
        if todo:
            existing = set(self.partitions())
            self._partitions |= existing
            for d in todo:
                if d in existing:
                    continue
                self._create_partition(conn, d)
                self._partitions.add(d)
        return [partition_name(d) for d in wanted]

    def _create_partition(self, conn: psycopg.Connection[Any], day: dt.date) -> None:
        lo = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
        hi = lo + dt.timedelta(days=1)
        name = partition_name(day)
        stmt = sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})"
        ).format(
            sql.Identifier(name), sql.Identifier(TICKS_TABLE), sql.Literal(lo), sql.Literal(hi)
        )
        try:
            with conn.transaction():
                conn.execute(stmt)
            log.info("created partition %s", name)
        except (
            psycopg.errors.DuplicateTable,
            psycopg.errors.UniqueViolation,
            psycopg.errors.InvalidObjectDefinition,  # "would overlap": the winner's partition
        ) as exc:
            if day not in set(self.partitions()):
                raise
            log.debug("partition %s created concurrently (%s)", name, type(exc).__name__)

    # ---------------------------------------------------------------------------- writes

    def _copy_into(
        self, cur: psycopg.Cursor[Any], table: str, prep: PreparedTicks, freeze: bool = False
    ) -> None:
        stmt = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY{})").format(
            sql.Identifier(table), _COPY_COLUMNS, sql.SQL(", FREEZE" if freeze else "")
        )
        # for more than one chunk, the queued writer sends from a thread so that encoding the
        # next chunk overlaps with the server's work; a small batch is not worth the thread
        writer = QueuedLibpqWriter(cur) if len(prep) > COPY_CHUNK_ROWS else LibpqWriter(cur)
        with cur.copy(stmt, writer=writer) as copy:
            copy.write(_COPY_HEADER)
            for chunk in _copy_chunks(prep):
                copy.write(chunk)
            copy.write(_COPY_TRAILER)

    def _clear_window(
        self,
        cur: psycopg.Cursor[Any],
        days: list[dt.date],
        lo: pd.Timestamp,
        hi: pd.Timestamp,
        targets: list[str] | None,
    ) -> tuple[list[dt.date], int]:
        """Remove the rows of ``targets`` (None: of every symbol) in ``(lo, hi]``; (truncated
        partitions, rows deleted).

        A DELETE leaves every old row as a dead tuple whose index entry each new row with the
        same key then has to check: re-writing a day that way ran ~5x slower than writing it
        fresh. So each touched partition is first locked against other writers (readers go
        on), and if all its rows belong to the replaced window and symbols it is TRUNCATEd
        (then readers wait until commit); only the remaining ones get a DELETE.
        """
        truncated: list[dt.date] = []
        deleted = 0
        target_set = None if targets is None else set(targets)
        window: sql.Composable = sql.SQL("ts > %s AND ts <= %s")
        params: list[Any] = [lo.to_pydatetime(), hi.to_pydatetime()]
        if targets is not None:
            window = sql.SQL("{} AND symbol = ANY(%s)").format(window)
            params.append(targets)
        for d in days:
            part = sql.Identifier(partition_name(d))
            cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(part))
            ranges = cur.execute(_symbol_ranges_sql(part)).fetchall()
            if all(
                (target_set is None or sym in target_set) and t_min > lo and t_max <= hi
                for sym, t_min, t_max in ranges
            ):
                cur.execute(sql.SQL("TRUNCATE {}").format(part))
                truncated.append(d)
                continue
            cur.execute(sql.SQL("DELETE FROM {} WHERE {}").format(part, window), params)
            deleted += cur.rowcount
        return truncated, deleted

    def write_day(
        self,
        ticks: pd.DataFrame,
        day: dt.date | str,
        symbols: Sequence[str] | None = None,
        tz: str = "UTC",
        whole_day: bool = False,
    ) -> int:
        """Replace the ticks of ``day`` for ``symbols`` with ``ticks``; rows written.

        ``day`` is the trading day in ``tz`` (default UTC; ``"America/New_York"`` for a US
        equity session day), i.e. the window ``(day 00:00, next day 00:00]`` there
        (:mod:`tickml.market`).
        ``symbols`` defaults to the symbols in ``ticks``; pass it explicitly to also clear
        symbols that have no ticks any more, or ``whole_day`` to replace every symbol (the day
        becomes exactly ``ticks``). In ONE transaction: delete the window's rows of those
        symbols, then COPY ``ticks``. Re-writing a day never duplicates rows; on any error
        (including a duplicate ``(symbol, ts, seq)`` in ``ticks``) nothing changes.

        Raises ``ValueError`` before touching the database when a value cannot be stored, a
        tick lies outside the day, or a tick's symbol is not in ``symbols``.
        """
        t0 = time.perf_counter()
        prep = prepare_ticks(ticks)
        lo, hi = day_window(day, tz)
        Market.all_day(tz).check_in_day(prep.ts_ns, pd.Timestamp(day).date())
        targets = _targets(prep, symbols, whole_day)
        if targets == []:
            log.info("write_day %s: no ticks and no symbols, nothing to do", day)
            return 0
        conn = self._ready()
        self.ensure_partitions(prep.utc_days())
        # the partitions the window touches that exist (a missing one holds nothing to clear)
        existing = set(self.partitions())
        days = [d for d in _utc_days_between(lo, hi) if d in existing]
        t1 = time.perf_counter()
        try:
            with conn.transaction(), conn.cursor() as cur:
                # one writer per window at a time: a concurrent re-ingest of the same day waits
                cur.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                    (f"{TICKS_TABLE}:{lo.isoformat()}",),
                )
                truncated, deleted = self._clear_window(cur, days, lo, hi, targets)
                if len(prep):
                    tick_days = prep.utc_days()
                    if len(tick_days) == 1 and tick_days[0] in truncated:
                        # straight into the freshly truncated partition: no routing, and
                        # FREEZE spares the later hint-bit / freeze rewrites of every page
                        self._copy_into(cur, partition_name(tick_days[0]), prep, freeze=True)
                    else:
                        self._copy_into(cur, TICKS_TABLE, prep)
        except psycopg.errors.UniqueViolation as exc:
            raise ValueError(
                f"duplicate (symbol, ts, seq) in the ticks for {day} (ts is stored to the "
                f"microsecond); nothing was written: {exc.diag.message_detail or exc}"
            ) from exc
        t2 = time.perf_counter()
        log.info(
            "write_day %s (%s): %d ticks, %s symbols, truncated %s, deleted %d, %.3f s "
            "(%.0f ticks/s, prepare %.3f s)",
            day,
            tz,
            len(prep),
            "all" if targets is None else len(targets),
            [partition_name(d) for d in truncated],
            deleted,
            t2 - t0,
            len(prep) / max(t2 - t0, 1e-9),
            t1 - t0,
        )
        return len(prep)

    def _ensure_stage(self, cur: psycopg.Cursor[Any]) -> None:
        if not self._stage_ready:
            cur.execute(
                sql.SQL(
                    "CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS"
                ).format(sql.Identifier(_STAGE_TABLE), sql.Identifier(TICKS_TABLE))
            )
            self._stage_ready = True

    def append(self, ticks: pd.DataFrame) -> int:
        """Insert ticks not yet stored; the number actually inserted.

        At-least-once safe: ticks already present (same ``symbol, ts, seq``), including
        repeats inside ``ticks``, are skipped. COPY into a session-temporary staging table, then
        ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``, in one transaction.
        """
        prep = prepare_ticks(ticks)
        if not len(prep):
            return 0
        conn = self._ready()
        self.ensure_partitions(prep.utc_days())
        t0 = time.perf_counter()
        cols = _COPY_COLUMNS
        with conn.transaction(), conn.cursor() as cur:
            self._ensure_stage(cur)
            self._copy_into(cur, _STAGE_TABLE, prep)
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT (symbol, ts, seq) DO NOTHING"
                ).format(sql.Identifier(TICKS_TABLE), cols, cols, sql.Identifier(_STAGE_TABLE))
            )
            inserted = cur.rowcount
        log.debug("append: %d ticks, %d new, %.3f s", len(prep), inserted, time.perf_counter() - t0)
        return int(inserted)

    def write_quarantine(
        self,
        q: pd.DataFrame,
        replace_sources: Iterable[str] | None = None,
        day: dt.date | None = None,
    ) -> int:
        """Store quarantine records (columns of :data:`tickml.schema.QUARANTINE_COLUMNS`).

        Records already stored (same source, position, reason) are skipped, so writing the
        rejects of a re-ingested file again stores them once. ``replace_sources``: delete the
        stored records of these sources first (same transaction), for a re-ingest whose rejects
        changed; with ``day`` (the ingest day the records belong to, stored with them) only
        those of that day (and records stored without a day), since one file can hold rows of
        two days. Text that PostgreSQL cannot hold (NUL characters, lone surrogates) is stored
        escaped rather than failing. Returns the number of records inserted.
        """
        missing = [c for c in QUARANTINE_COLUMNS if c not in q.columns]
        if missing:
            raise ValueError(f"quarantine frame lacks columns {missing}")
        unknown = set(pd.unique(q["reason"].astype(object))) - set(REJECT_REASONS)
        if unknown:
            raise ValueError(f"unknown reject reasons {sorted(map(str, unknown))}")
        if q["source"].isna().any() or q["position"].isna().any():
            raise ValueError("quarantine records need a source and a position")
        sources = [s for s in (replace_sources or []) if s is not None]
        if q.empty and not sources:
            return 0
        ts = pd.to_datetime(q["ts"], utc=True)
        rows = zip(
            (_clean_text(v) for v in q["source"]),
            (int(v) for v in q["position"]),
            (str(v) for v in q["reason"]),
            (_clean_text(v) for v in q["symbol"]),
            (None if pd.isna(v) else v.to_pydatetime() for v in ts),
            (_clean_text(v) for v in q["raw"]),
            strict=True,
        )
        conn = self._ready()
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in QUARANTINE_COLUMNS)
        with conn.transaction(), conn.cursor() as cur:
            names = [_clean_text(s) for s in sources]
            table = sql.Identifier(QUARANTINE_TABLE)
            if sources and day is None:
                stmt = sql.SQL("DELETE FROM {} WHERE source = ANY(%s)").format(table)
                cur.execute(stmt, (names,))
            elif sources:
                cur.execute(
                    sql.SQL(
                        "DELETE FROM {} WHERE source = ANY(%s) AND (day = %s OR day IS NULL)"
                    ).format(table),
                    (names, day),
                )
            cur.execute(
                "CREATE TEMP TABLE IF NOT EXISTS tickml_quarantine_stage_d "
                "(source text, position bigint, reason text, symbol text, ts timestamptz, "
                "raw text, day date) ON COMMIT DELETE ROWS"
            )
            with cur.copy(
                sql.SQL("COPY tickml_quarantine_stage_d ({}, day) FROM STDIN").format(cols)
            ) as copy:
                for row in rows:
                    copy.write_row((*row, day))
            cur.execute(
                sql.SQL(
                    "INSERT INTO {} ({}, day) SELECT {}, day FROM tickml_quarantine_stage_d "
                    "ON CONFLICT (source, position, reason) DO NOTHING"
                ).format(table, cols, cols)
            )
            inserted = int(cur.rowcount)
        log.info("quarantine: %d records, %d new", len(q), inserted)
        return inserted

    def log_ingest(
        self,
        day: dt.date | str,
        source: str,
        n_ticks: int,
        n_quarantined: int,
        counts: dict[str, int] | None = None,
        started_at: dt.datetime | None = None,
        finished_at: dt.datetime | None = None,
    ) -> None:
        """Record (or replace) what was ingested for ``(day, source)``."""
        conn = self._ready()
        finished = finished_at or dt.datetime.now(dt.UTC)
        conn.execute(
            sql.SQL(
                """INSERT INTO {} (day, source, n_ticks, n_quarantined, counts, started_at,
                                   finished_at)
                   VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s)
                   ON CONFLICT (day, source) DO UPDATE SET
                     n_ticks = EXCLUDED.n_ticks, n_quarantined = EXCLUDED.n_quarantined,
                     counts = EXCLUDED.counts, started_at = EXCLUDED.started_at,
                     finished_at = EXCLUDED.finished_at"""
            ).format(sql.Identifier(INGEST_LOG_TABLE)),
            (
                pd.Timestamp(day).date(),
                source,
                int(n_ticks),
                int(n_quarantined),
                json.dumps({str(k): int(v) for k, v in (counts or {}).items()}, sort_keys=True),
                started_at,
                finished,
            ),
        )

    # ----------------------------------------------------------------------------- reads

    def _window(
        self, when: dt.date | str | tuple[Any, Any], tz: str
    ) -> tuple[dt.datetime, dt.datetime]:
        if isinstance(when, tuple):
            lo, hi = _to_utc(when[0], tz), _to_utc(when[1], tz)
        else:
            lo, hi = day_window(when, tz)
        return lo.to_pydatetime(), hi.to_pydatetime()

    def read(
        self,
        when: dt.date | str | tuple[Any, Any],
        symbols: Sequence[str] | None = None,
        tz: str = "UTC",
    ) -> pd.DataFrame:
        """Canonical ticks of a trading day (in ``tz``: :mod:`tickml.market`) or of
        ``(start, end]``, sorted by symbol, ts, seq.

        Naive ``start``/``end`` are taken in ``tz``. NULLs come back as NaN. Read with a binary
        COPY of fixed-width rows (NULL floats sent as NaN, symbols fetched as per-symbol counts
        in the same snapshot) decoded by numpy.
        """
        conn = self._ready()
        lo, hi = self._window(when, tz)
        where: sql.Composable = sql.SQL("ts > %s AND ts <= %s")
        params: list[Any] = [lo, hi]
        if symbols is not None:
            where = sql.SQL("{} AND symbol = ANY(%s)").format(where)
            params.append([str(s) for s in symbols])
        table = sql.Identifier(TICKS_TABLE)
        values = sql.SQL(", ").join(
            [sql.Identifier("ts"), sql.Identifier("seq")]
            + [
                sql.SQL("coalesce({}, 'NaN'::float8)").format(sql.Identifier(c))
                for c in FLOAT_COLUMNS
            ]
        )
        buf = bytearray()
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            counts = cur.execute(
                sql.SQL(
                    "SELECT symbol, count(*) FROM {} WHERE {} GROUP BY symbol ORDER BY symbol"
                ).format(table, where),
                params,
            ).fetchall()
            total = sum(int(c) for _, c in counts)
            if total:
                stmt = sql.SQL(
                    "COPY (SELECT {} FROM {} WHERE {} ORDER BY symbol, ts, seq) "
                    "TO STDOUT (FORMAT BINARY)"
                ).format(values, table, where)
                with cur.copy(stmt, params) as copy:
                    for data in copy:
                        buf += data
        return _decode_read(buf, counts, total)

    def count(
        self, day: dt.date | str | None = None, symbol: str | None = None, tz: str = "UTC"
    ) -> int:
        """Number of stored ticks, optionally of one day (in ``tz``) and/or one symbol."""
        conn = self._ready()
        clauses: list[sql.Composable] = []
        params: list[Any] = []
        if day is not None:
            lo, hi = self._window(day, tz)
            clauses.append(sql.SQL("ts > %s AND ts <= %s"))
            params += [lo, hi]
        if symbol is not None:
            clauses.append(sql.SQL("symbol = %s"))
            params.append(symbol)
        stmt = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(TICKS_TABLE))
        if clauses:
            stmt = sql.SQL("{} WHERE {}").format(stmt, sql.SQL(" AND ").join(clauses))
        row = conn.execute(stmt, params).fetchone()
        return int(row[0]) if row else 0

    def read_quarantine(self, source: str | None = None) -> pd.DataFrame:
        """Stored quarantine records (optionally of one source), ordered by source, position."""
        conn = self._ready()
        stmt = sql.SQL(
            "SELECT source, position, reason, symbol, ts, raw, ingested_at FROM {}"
        ).format(sql.Identifier(QUARANTINE_TABLE))
        params: list[Any] = []
        if source is not None:
            stmt = sql.SQL("{} WHERE source = %s").format(stmt)
            params.append(source)
        stmt = sql.SQL("{} ORDER BY source, position, reason").format(stmt)
        rows = conn.execute(stmt, params).fetchall()
        out = pd.DataFrame(rows, columns=[*QUARANTINE_COLUMNS, "ingested_at"]).astype(
            {"position": "int64"}
        )
        out["ts"] = pd.to_datetime(out["ts"], utc=True).astype("datetime64[ns, UTC]")
        return out

    def read_ingest_log(self, day: dt.date | str | None = None) -> pd.DataFrame:
        """The ingest log (optionally of one day), ordered by day, source."""
        conn = self._ready()
        stmt = sql.SQL(
            "SELECT day, source, n_ticks, n_quarantined, counts, started_at, finished_at FROM {}"
        ).format(sql.Identifier(INGEST_LOG_TABLE))
        params: list[Any] = []
        if day is not None:
            stmt = sql.SQL("{} WHERE day = %s").format(stmt)
            params.append(pd.Timestamp(day).date())
        stmt = sql.SQL("{} ORDER BY day, source").format(stmt)
        rows = conn.execute(stmt, params).fetchall()
        return pd.DataFrame(
            rows,
            columns=[
                "day",
                "source",
                "n_ticks",
                "n_quarantined",
                "counts",
                "started_at",
                "finished_at",
            ],
        )


_READ_DTYPE = np.dtype(
    [("nf", ">i2"), ("tl", ">i4"), ("ts", ">i8"), ("ql", ">i4"), ("seq", ">i8")]
    + [(f, t) for c in FLOAT_COLUMNS for f, t in ((f"{c}_l", ">i4"), (c, ">f8"))]
)


def _decode_read(buf: bytearray, counts: list[tuple[str, int]], total: int) -> pd.DataFrame:
    """Decode the fixed-width binary COPY of :meth:`TickStore.read` into canonical ticks."""
    if total == 0:
        rec = np.empty(0, dtype=_READ_DTYPE)
    else:
        if bytes(buf[: len(_COPY_SIGNATURE)]) != _COPY_SIGNATURE:
            raise RuntimeError("unexpected binary COPY signature from the server")
        ext = int.from_bytes(buf[15:19], "big")
        body = memoryview(buf)[19 + ext : len(buf) - 2]
        if bytes(buf[-2:]) != _COPY_TRAILER or len(body) % _READ_DTYPE.itemsize:
            raise RuntimeError("unexpected binary COPY layout from the server")
        rec = np.frombuffer(body, dtype=_READ_DTYPE)
        bad = (rec["nf"] != 2 + len(FLOAT_COLUMNS)) | (rec["tl"] != 8) | (rec["ql"] != 8)
        for c in FLOAT_COLUMNS:
            bad |= rec[f"{c}_l"] != 8
        if len(rec) != total or bad.any():
            raise RuntimeError(f"read {len(rec)} rows for {total} counted, or a malformed row")
    names = np.array([s for s, _ in counts], dtype=object)
    reps = np.array([int(c) for _, c in counts], dtype=np.int64)
    ts_ns = (rec["ts"].astype(np.int64) + PG_EPOCH_OFFSET_US) * 1000
    out = pd.DataFrame(
        {
            "symbol": np.repeat(names, reps) if total else np.empty(0, dtype=object),
            "ts": pd.DatetimeIndex(ts_ns.view("datetime64[ns]")).tz_localize("UTC"),
            "seq": rec["seq"].astype(np.int64),
        }
    )
    for c in FLOAT_COLUMNS:
        out[c] = rec[c].astype(np.float64)
    return out
