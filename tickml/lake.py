"""The Parquet tick lake: ``ROOT/ticks/date=YYYY-MM-DD/symbol=SYM/part-0.parquet``.

Hive-style partitions by trading day and symbol, so the offline side (features, Feast's file
source, ad-hoc DuckDB/pyarrow queries) reads exactly the days and symbols it needs. A day is
replaced atomically: every file is written into a hidden folder beside the day's, which is then
swapped in (``renameat2(RENAME_EXCHANGE)`` on Linux), so a failed or interrupted re-ingest leaves
the previous day byte for byte, and re-ingesting a day is idempotent. Symbols become folder
names only when :func:`tickml.validation.symbol_error` accepts them. Quarantine records live
beside: ``ROOT/quarantine/date=YYYY-MM-DD/part-0.parquet``.

A day is a trading day of the run's market (:mod:`tickml.market`: (local midnight, next local
midnight]), assigned by the ingest (:mod:`tickml.days`); given the market, the lake refuses a
tick outside the day it is written under.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tickml.atomic import atomic_write, exchange, link_tree, write_aside
from tickml.market import Market, utc_ns
from tickml.schema import TICK_SCHEMA, empty_quarantine, empty_ticks, ticks_to_arrow
from tickml.validation import check_symbol


def _safe_symbol(symbol: str) -> str:
    """A symbol usable as a partition folder name (the rule of :mod:`tickml.validation`)."""
    return check_symbol(symbol)


class TickLake:
    """Read and write canonical ticks partitioned by day and symbol under ``root``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    # -- paths -----------------------------------------------------------------------------
    def day_dir(self, day: dt.date) -> Path:
        return self.root / "ticks" / f"date={day.isoformat()}"

    def symbol_file(self, day: dt.date, symbol: str) -> Path:
        return self.day_dir(day) / f"symbol={_safe_symbol(symbol)}" / "part-0.parquet"

    def quarantine_file(self, day: dt.date) -> Path:
        return self.root / "quarantine" / f"date={day.isoformat()}" / "part-0.parquet"

    # -- writing ---------------------------------------------------------------------------
    def write_day(
        self,
        ticks: pd.DataFrame,
        day: dt.date,
        symbols: Sequence[str] | None = None,
        market: Market | None = None,
    ) -> int:
        """Replace one day of canonical ticks atomically; returns the number of rows written.

        ``symbols`` None: the day becomes exactly ``ticks`` (symbols without ticks disappear);
        otherwise only those symbols are replaced and the others are kept. See
        :meth:`stage_day`: nothing of the previous day changes unless every file was written.
        """
        staged = self.stage_day(ticks, day, symbols=symbols, market=market)
        staged.commit()
        return staged.rows

    def stage_day(
        self,
        ticks: pd.DataFrame,
        day: dt.date,
        quarantine: pd.DataFrame | None = None,
        symbols: Sequence[str] | None = None,
        market: Market | None = None,
    ) -> StagedDay:
        """Write a day aside (a hidden folder beside the day's) without touching the day.

        :meth:`StagedDay.commit` swaps it in (one ``renameat2(RENAME_EXCHANGE)`` on Linux, two
        renames elsewhere) and replaces the quarantine file; :meth:`StagedDay.discard` drops it.
        A symbol that is not an allowed partition name, or (given the ``market``) a tick
        outside the market's ``day``, raises ``ValueError`` before anything is written; any
        error while writing removes the staged files and leaves the day as it was.
        """
        for s in pd.unique(ticks["symbol"]) if len(ticks) else []:
            _safe_symbol(str(s))
        if market is not None:
            market.check_in_day(utc_ns(ticks["ts"]), day)
        day_dir = self.day_dir(day)
        day_dir.parent.mkdir(parents=True, exist_ok=True)
        stage = day_dir.with_name(f".{day_dir.name}.{uuid.uuid4().hex}.staging")
        stage.mkdir()
        staged = StagedDay(self, day, stage)
        try:
            staged.rows = _write_symbols(stage, ticks)
            keep_others = symbols is not None and day_dir.is_dir()
            if keep_others:
                replaced = {f"symbol={s}" for s in symbols or []}
                replaced |= {p.name for p in stage.iterdir()}
                for old in day_dir.iterdir():
                    if old.name.startswith("symbol=") and old.name not in replaced:
                        link_tree(old, stage / old.name)
            staged.empty = not keep_others and staged.rows == 0
            if quarantine is not None:
                staged.quarantine_tmp = write_aside(
                    _quarantine_table(quarantine), self.quarantine_file(day)
                )
        except BaseException:
            staged.discard()
            raise
        return staged

    def write_quarantine(self, quarantine: pd.DataFrame, day: dt.date) -> Path:
        path = self.quarantine_file(day)
        atomic_write(_quarantine_table(quarantine), path)
        return path

    # -- reading ---------------------------------------------------------------------------
    def days(self) -> list[dt.date]:
        base = self.root / "ticks"
        if not base.is_dir():
            return []
        out = []
        for p in base.iterdir():
            if p.is_dir() and p.name.startswith("date="):
                out.append(dt.date.fromisoformat(p.name[5:]))
        return sorted(out)

    def symbols(self, day: dt.date) -> list[str]:
        d = self.day_dir(day)
        if not d.is_dir():
            return []
        return sorted(p.name[7:] for p in d.iterdir() if p.name.startswith("symbol="))

    def read_day(self, day: dt.date, symbols: Sequence[str] | None = None) -> pd.DataFrame:
        names = self.symbols(day) if symbols is None else list(symbols)
        tables = [
            pq.read_table(self.symbol_file(day, s), schema=TICK_SCHEMA)
            for s in names
            if self.symbol_file(day, s).exists()
        ]
        if not tables:
            return empty_ticks()
        return pa.concat_tables(tables).to_pandas()

    def read_range(
        self, start: dt.date, end: dt.date, symbols: Sequence[str] | None = None
    ) -> pd.DataFrame:
        frames = [self.read_day(d, symbols) for d in self.days() if start <= d <= end]
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else empty_ticks()

    def read_quarantine(self, day: dt.date) -> pd.DataFrame:
        path = self.quarantine_file(day)
        return pq.read_table(path).to_pandas() if path.exists() else empty_quarantine()


def _quarantine_table(quarantine: pd.DataFrame) -> pa.Table:
    q = quarantine if not quarantine.empty else empty_quarantine()
    q = q.astype({"source": str, "reason": str, "raw": str})
    sym = q["symbol"].astype(object)
    q["symbol"] = [None if pd.isna(v) else str(v) for v in sym]
    return pa.Table.from_pandas(q, preserve_index=False)


def _write_symbols(folder: Path, ticks: pd.DataFrame) -> int:
    """One ``symbol=SYM/part-0.parquet`` per symbol of ``ticks`` under ``folder``; rows."""
    if ticks.empty:
        return 0
    ticks = ticks.reset_index(drop=True)
    table = ticks_to_arrow(ticks)
    written = 0
    for symbol, part in ticks.groupby("symbol", sort=True):
        sub = table.take(pa.array(part.index.to_numpy()))
        target = folder / f"symbol={_safe_symbol(str(symbol))}" / "part-0.parquet"
        target.parent.mkdir()
        pq.write_table(sub, target, compression="zstd")
        written += sub.num_rows
    return written


class StagedDay:
    """A day written aside by :meth:`TickLake.stage_day`, not yet visible."""

    def __init__(self, lake: TickLake, day: dt.date, path: Path) -> None:
        self.lake, self.day, self.path = lake, day, path
        self.rows = 0
        self.empty = False
        self.quarantine_tmp: Path | None = None
        self.done = False

    def commit(self) -> None:
        """Make the staged day the day (ticks first, then its quarantine file)."""
        if self.done:
            raise RuntimeError("staged day already committed or discarded")
        day_dir = self.lake.day_dir(self.day)
        trash = self.path.with_name(self.path.name.replace(".staging", ".old"))
        if self.empty:  # no ticks: the day has no folder (as if never written)
            if day_dir.exists():
                day_dir.rename(trash)
            shutil.rmtree(self.path, ignore_errors=True)
        elif not day_dir.exists():
            self.path.rename(day_dir)
        elif exchange(self.path, day_dir):
            self.path.rename(trash)
        else:  # two renames: the day is absent for an instant, never half written
            day_dir.rename(trash)
            try:
                self.path.rename(day_dir)
            except BaseException:
                trash.rename(day_dir)
                raise
        shutil.rmtree(trash, ignore_errors=True)
        if self.quarantine_tmp is not None:
            os.replace(self.quarantine_tmp, self.lake.quarantine_file(self.day))
        self.done = True

    def discard(self) -> None:
        """Drop the staged files; the day stays as it was."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self.quarantine_tmp is not None:
            self.quarantine_tmp.unlink(missing_ok=True)
        self.done = True


class DayTables:
    """One Parquet file per day for all symbols: ``ROOT/<kind>/date=YYYY-MM-DD/part-0.parquet``.

    ``features`` (the Feast offline source of ``tick_features``) and ``labels`` use it.
    """

    kind = "tables"

    def __init__(self, root: str | os.PathLike[str], kind: str | None = None) -> None:
        self.root = Path(root) / (kind or self.kind)

    def day_file(self, day: dt.date) -> Path:
        return self.root / f"date={day.isoformat()}" / "part-0.parquet"

    def write_day(self, frame: pd.DataFrame, day: dt.date) -> Path:
        path = self.day_file(day)
        atomic_write(pa.Table.from_pandas(frame, preserve_index=False), path)
        return path

    def days(self) -> list[dt.date]:
        if not self.root.is_dir():
            return []
        return sorted(
            dt.date.fromisoformat(p.name[5:])
            for p in self.root.iterdir()
            if p.name.startswith("date=") and (p / "part-0.parquet").exists()
        )

    def has_day(self, day: dt.date) -> bool:
        return self.day_file(day).exists()

    def read_day(self, day: dt.date) -> pd.DataFrame:
        return pq.read_table(self.day_file(day)).to_pandas()

    def read_range(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        frames = [self.read_day(d) for d in self.days() if start <= d <= end]
        frames = [f for f in frames if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    def read_all(self) -> pd.DataFrame:
        days = self.days()
        return self.read_range(days[0], days[-1]) if days else pd.DataFrame()


class FeatureTables(DayTables):
    """Batch feature tables: the Feast offline source of the ``tick_features`` view."""

    kind = "features"


class LabelTables(DayTables):
    """Label tables (both horizons) keyed by (symbol, event_timestamp)."""

    kind = "labels"


ONLINE_LOG = "online_log"


def online_log_dir(root: str | os.PathLike[str], day: dt.date) -> Path:
    """``ROOT/online_log/date=YYYY-MM-DD``: the live materializer's log of one day."""
    return Path(root) / ONLINE_LOG / f"date={day.isoformat()}"


def online_log_files(root: str | os.PathLike[str], day: dt.date) -> list[Path]:
    """The day's log files, every shard (``shard=S/<first>-<last>.parquet``), sorted."""
    return sorted(online_log_dir(root, day).glob("shard=*/*.parquet"))


#: one boundary's logged rows: (boundary ns, symbols, values [n, features], last tick ns [n],
#: logged at ns)
LoggedRows = tuple[int, Sequence[str], np.ndarray, np.ndarray, int]


def write_online_log(
    root: str | os.PathLike[str], day: dt.date, shard: int, names: Sequence[str],
    items: Sequence[LoggedRows],
) -> Path:
    """Write boundaries' rows of one shard and local ``day`` as one file of the layout
    :func:`read_online_log` reads, named by its first and last boundary (written aside, then
    renamed: a reader never sees half a file; a replay after a crash may write a boundary
    again, readers keep the latest ``logged_at``)."""
    folder = online_log_dir(root, day) / f"shard={shard}"
    folder.mkdir(parents=True, exist_ok=True)
    vals = np.vstack([it[2] for it in items])
    n = [len(it[1]) for it in items]
    stamp = pa.timestamp("ns", tz="UTC")
    ts = pa.array(np.repeat([it[0] for it in items], n).astype(np.int64))
    cols = {
        "symbol": pa.array([s for it in items for s in it[1]], pa.string()),
        "event_timestamp": ts.cast(stamp),
    }
    for k, name in enumerate(names):
        cols[name] = pa.array(vals[:, k])
    cols["last_tick_ts"] = pa.array(np.concatenate([it[3] for it in items])).cast(stamp)
    cols["logged_at"] = pa.array(np.repeat([it[4] for it in items], n)).cast(stamp)
    path = folder / f"{items[0][0]}-{items[-1][0]}.parquet"
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.table(cols), tmp)
    tmp.replace(path)
    return path


def read_online_log(root: str | os.PathLike[str], day: dt.date) -> pd.DataFrame:
    """Every feature row the live materializer pushed online on ``day`` (all shards).

    Files are ``ROOT/online_log/date=D/shard=S/<first>-<last>.parquet``
    (:func:`write_online_log`) with ``symbol``,
    ``event_timestamp`` (UTC), one float64 column per feature, ``last_tick_ts`` and
    ``logged_at``. A row logged twice (a boundary replayed after a restart) is kept once, the
    latest ``logged_at``. Sorted by (event_timestamp, symbol). No log: an empty frame.
    """
    import pyarrow.dataset as pads

    files = online_log_files(root, day)
    if not files:
        return pd.DataFrame()
    frame = pads.dataset([str(f) for f in files], format="parquet").to_table().to_pandas()
    for col in ("event_timestamp", "last_tick_ts", "logged_at"):
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col], utc=True).astype("datetime64[ns, UTC]")
    if "logged_at" in frame.columns:
        frame = frame.sort_values("logged_at", kind="stable")
    frame = frame.drop_duplicates(["symbol", "event_timestamp"], keep="last")
    return frame.sort_values(["event_timestamp", "symbol"], kind="stable").reset_index(drop=True)
