"""Bring-your-own ticks: Parquet or CSV files in the canonical schema.

Columns (by name, any order, case-insensitive, extra columns ignored):

* required: ``symbol``, ``ts``, ``bid``, ``ask``, ``bid_size``, ``ask_size``, ``price``,
  ``size`` (a missing one raises ``ValueError`` naming it);
* optional: ``seq`` (per-symbol sequence number; when absent it is derived with
  :func:`~tickml.schema.derive_seq` from ts and row order, so re-reading the same files gives the
  same seq) and ``suspicious`` (1/true/yes marks a row the data vendor flagged:
  ``vendor_suspicious``).

Values: ``ts`` is either an integer (ns since the Unix epoch, UTC) or an ISO-8601 string with
or without a zone; **a string without a zone is taken as UTC** (``2024-08-09 14:30:00`` is
14:30 UTC, not New York time). An empty price/book field is null (a quote-only row has an
empty price and size 0 or empty); ``nan``/``inf`` parse and are then rejected as
``nan_or_inf``. Symbols are stripped and upper-cased.

Bad input never stops the reader; each bad row becomes a quarantine record with its position
(CSV: the physical 1-based line number, the header being line 1; Parquet: the 1-based row
number; a file that cannot be read at all: position 0):

* ``unparseable``: wrong column count, bad quoting (a quote left open, text after a closing
  quote), invalid UTF-8, a quoted value spanning lines, an unreadable Parquet file;
* ``wrong_type``: ts, seq, a price/size or the suspicious flag that does not parse;
* the rest (``empty_symbol``, ``bad_symbol``, ``nan_or_inf``, ``non_positive``,
  ``out_of_range``, ``crossed_book``, ``price_jump``, ``out_of_order``, ``duplicate``,
  ``empty_event``) from :func:`~tickml.schema.validate_ticks`. A ``wrong_type`` record keeps its
  row's time when that parsed (it decides the record's day, :mod:`tickml.days`).

Duplicates: with a ``seq`` column, a repeated (symbol, seq). Without one, a row that repeats
exactly (all canonical fields) a row of an *earlier file* is a duplicate (overlapping exports);
exact repeats inside one file are kept, because identical prints in the same timestamp are
common in real tapes (several odd lots at one price in one millisecond). Pass
``drop_exact_repeats=True`` to drop those too.

Several files (a list, or a directory: every ``*.parquet``, ``*.csv``, ``*.csv.gz`` under it,
in sorted path order) are validated together, in that order, so out-of-order and duplicate
checks span files.

CSV speed: the file is parsed by ``pyarrow.csv`` (multi-threaded) with every column read as
text and then converted column-wise, so one bad value costs one row, not the file. When pyarrow
refuses the file (a row with the wrong column count, invalid UTF-8, ...) or its rows do not map
one-to-one onto the physical lines, the file is read again line by line with the ``csv``
module, each line on its own, so one broken line cannot swallow the next.
"""

from __future__ import annotations

import csv
import gzip
import logging
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from tickml.schema import (
    FLOAT_COLUMNS,
    TICK_COLUMNS,
    ValidationResult,
    derive_seq,
    empty_quarantine,
    empty_ticks,
    make_quarantine,
    raw_repr,
    reason_counts,
    ticks_to_arrow,
    validate_ticks,
)
from tickml.validation import ValidationConfig

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = tuple(c for c in TICK_COLUMNS if c != "seq")
OPTIONAL_COLUMNS: tuple[str, ...] = ("seq", "suspicious")
SUFFIXES: tuple[str, ...] = (".parquet", ".csv", ".csv.gz")

_FLOAT_RE = r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?(?i:nan|inf|infinity)$"
_INT_RE = r"^[+-]?\d{1,18}$"
_INT19_RE = r"^[+-]?\d{19}$"
_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"", "0", "false", "f", "no", "n"}
_I64_MAX = (1 << 63) - 1


@dataclass
class _Parsed:
    """Rows of one file as text (or typed) columns, with their positions."""

    source: str
    columns: dict[str, pa.Array]  # lower-case name -> array
    positions: np.ndarray
    quarantine: pd.DataFrame  # rows already rejected while parsing (unparseable)


# ------------------------------------------------------------------ files


def source_files(path: Path | str | Sequence[Path | str]) -> list[Path]:
    """The files a path (a file, a list, or a directory: every ``*.parquet``, ``*.csv``,
    ``*.csv.gz`` under it, sorted) stands for; ``FileNotFoundError`` for a missing path."""
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(
                sorted(
                    f
                    for f in p.rglob("*")
                    if f.is_file() and any(f.name.lower().endswith(s) for s in SUFFIXES)
                )
            )
        elif p.exists():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p} does not exist")
    return out


def _is_parquet(path: Path) -> bool:
    if path.name.lower().endswith(".parquet"):
        return True
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


def _read_raw(path: Path) -> tuple[bytes, str | None]:
    """The file's bytes (gunzipped if gzip) and an error if a gzip stream was cut short."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw, None
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = d.decompress(raw) + d.flush()
    except zlib.error as exc:
        return b"", f"corrupt gzip stream: {exc}"
    if not d.eof:
        return data, "truncated gzip stream"
    if d.unused_data:  # concatenated members
        try:
            return gzip.decompress(raw), None
        except (OSError, EOFError, zlib.error) as exc:
            return data, f"corrupt gzip stream: {exc}"
    return data, None


def _header(raw: bytes, source: str) -> tuple[list[str], int]:
    """Column names (lower-case) from the first line, and the byte offset after it."""
    end = raw.find(b"\n")
    first = raw if end < 0 else raw[:end]
    try:
        text = first.decode("utf-8").lstrip("\ufeff").rstrip("\r")
        names = next(csv.reader([text], strict=True))
    except (UnicodeDecodeError, csv.Error, StopIteration) as exc:
        raise ValueError(f"{source}: cannot read the CSV header: {exc}") from None
    names = [n.strip().lower() for n in names]
    _check_columns(names, source)
    return names, (len(raw) if end < 0 else end + 1)


def _check_columns(names: Sequence[str], source: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValueError(
            f"{source}: required columns missing: {missing} (found {list(names)}); "
            f"the canonical columns are {list(TICK_COLUMNS)} (seq optional)"
        )
    wanted = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    dup = sorted({n for n in names if n in wanted and list(names).count(n) > 1})
    if dup:
        raise ValueError(f"{source}: columns named more than once: {dup}")


def _line_bounds(raw: bytes, start: int) -> tuple[np.ndarray, np.ndarray]:
    """Start/end byte offsets of every physical line after the header (end excludes CR LF)."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    nl = nl[nl >= start]
    starts = np.concatenate([[start], nl + 1]).astype(np.int64)
    ends = np.concatenate([nl, [len(raw)]]).astype(np.int64)
    if starts[-1] == len(raw):  # the file ends with a newline
        starts, ends = starts[:-1], ends[:-1]
    has_cr = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == 13)
    return starts, ends - has_cr


_FIELD = r'(?:[^",\r\n]*|"(?:[^"]|"")*")'
_QUOTED_LINE = rf"^(?:{_FIELD}(?:,{_FIELD})*)?\r?$"


def _quoting_ok(body: bytes) -> bool:
    """Every line is a sequence of plain or properly quoted fields (checked with RE2)."""
    try:
        lines = pc.split_pattern(pa.array([body], pa.large_binary()), "\n").values
        lines = pc.cast(lines, pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowException):
        return False
    return bool(pc.all(pc.match_substring_regex(lines, _QUOTED_LINE)).as_py())


def _parse_csv_fast(raw: bytes, names: list[str], start: int, source: str) -> _Parsed | None:
    """pyarrow.csv over the whole file, or None if the file needs the line-by-line path."""
    if raw.count(b"\r") != raw.count(b"\r\n"):
        return None  # a lone CR is a line break for pyarrow but not for us
    starts, ends = _line_bounds(raw, start)
    nonblank = ends > starts
    if b'"' in raw[start:] and not _quoting_ok(raw[start:]):
        return None  # pyarrow would glue '"20"24' into '2024'; the csv module rejects it
    try:
        table = pacsv.read_csv(
            pa.py_buffer(raw[start:]),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=True),
            parse_options=pacsv.ParseOptions(newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowException, UnicodeDecodeError) as exc:
        log.debug("%s: pyarrow.csv refused the file (%s); reading line by line", source, exc)
        return None
    if table.num_rows != int(nonblank.sum()):
        return None  # a quoted value spanning lines: rows and lines do not map one to one
    positions = np.flatnonzero(nonblank) + 2  # header is line 1
    cols = {n: table.column(i).combine_chunks() for i, n in enumerate(names)}
    return _Parsed(source, cols, positions, empty_quarantine())


def _parse_csv_lines(raw: bytes, names: list[str], start: int, source: str) -> _Parsed:
    """Each physical line on its own through the csv module (exact line numbers)."""
    n_cols = len(names)
    values: list[list[str]] = []
    pos: list[int] = []
    bad_pos: list[int] = []
    bad_raw: list[str] = []
    starts, ends = _line_bounds(raw, start)
    for i, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        if e <= s:
            continue  # empty line
        line = raw[s:e]
        try:
            text = line.decode("utf-8")
            fields = next(csv.reader([text], strict=True))
        except (UnicodeDecodeError, csv.Error, StopIteration):
            fields = None
        if fields is None or len(fields) != n_cols:
            bad_pos.append(i + 2)
            bad_raw.append(line.decode("utf-8", "replace")[:1000])
            continue
        values.append(fields)
        pos.append(i + 2)
    cols = {n: pa.array([row[j] for row in values], pa.string()) for j, n in enumerate(names)}
    q = make_quarantine(source, bad_pos, "unparseable", raws=bad_raw)
    return _Parsed(source, cols, np.asarray(pos, dtype=np.int64), q)


def _read_csv(path: Path) -> _Parsed:
    source = str(path)
    raw, err = _read_raw(path)
    if not raw.strip():
        q = make_quarantine(source, [0], "unparseable", raws=[err]) if err else empty_quarantine()
        return _Parsed(source, {}, np.zeros(0, dtype=np.int64), q)
    names, start = _header(raw, source)
    if err is not None:  # keep complete lines only
        cut = raw.rfind(b"\n")
        raw = raw[: cut + 1] if cut >= start else raw[:start]
    parsed = _parse_csv_fast(raw, names, start, source)
    if parsed is None:
        parsed = _parse_csv_lines(raw, names, start, source)
    if err is not None:
        n_lines = raw.count(b"\n") + 1
        extra = make_quarantine(source, [n_lines], "unparseable", raws=[err])
        parsed.quarantine = pd.concat([parsed.quarantine, extra], ignore_index=True)
    return parsed


def _read_parquet(path: Path) -> _Parsed:
    source = str(path)
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        q = make_quarantine(source, [0], "unparseable", raws=[f"cannot read Parquet: {exc}"])
        return _Parsed(source, {}, np.zeros(0, dtype=np.int64), q)
    names = [n.strip().lower() for n in table.column_names]
    _check_columns(names, source)
    cols = {
        n: table.column(i).combine_chunks()
        for i, n in enumerate(names)
        if n in REQUIRED_COLUMNS or n in OPTIONAL_COLUMNS
    }
    positions = np.arange(1, table.num_rows + 1, dtype=np.int64)
    return _Parsed(source, cols, positions, empty_quarantine())


# ------------------------------------------------------------------ column conversion


def _text(arr: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    return pc.utf8_trim_whitespace(pc.fill_null(arr, ""))


def _mask(arr: pa.Array) -> np.ndarray:
    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)


def _parse_int64(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Integers (up to 19 digits, in int64 range) from text; (values, ok)."""
    n = len(text)
    vals = np.zeros(n, dtype=np.int64)
    ok = _mask(pc.match_substring_regex(text, _INT_RE))
    if ok.any():
        vals[ok] = pc.cast(text.filter(pa.array(ok)), pa.int64()).to_numpy()
    long = np.flatnonzero(_mask(pc.match_substring_regex(text, _INT19_RE)))
    for i in long.tolist():  # rare: 19 digits may overflow int64
        v = int(text[i].as_py())
        if -_I64_MAX - 1 <= v <= _I64_MAX:
            vals[i], ok[i] = v, True
    return vals, ok


def _floats(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (empty/null -> NaN) and a mask of the values that did not parse."""
    t = arr.type
    if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
        vals = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        return np.asarray(vals, dtype=np.float64), np.zeros(len(arr), dtype=bool)
    if pa.types.is_boolean(t):
        return np.full(len(arr), np.nan), ~_mask(arr.is_null())
    text = _text(arr)
    empty = _mask(pc.equal(text, ""))
    good = _mask(pc.match_substring_regex(text, _FLOAT_RE))
    vals = np.full(len(arr), np.nan)
    if good.any():
        sub = text.filter(pa.array(good))
        try:
            vals[good] = pc.cast(sub, pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            vals[good] = [float(x) for x in sub.to_pylist()]
    return vals, ~(good | empty)


def _timestamps(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """ns since epoch (UTC) and a mask of the values that did not parse."""
    n = len(arr)
    t = arr.type
    if pa.types.is_timestamp(t):
        ns = pc.cast(arr, pa.timestamp("ns", tz=t.tz), safe=False)
        vals = pc.fill_null(pc.cast(ns, pa.int64()), 0).to_numpy()  # UTC epoch, naive = UTC
        return np.asarray(vals, dtype=np.int64), _mask(arr.is_null())
    if pa.types.is_integer(t):
        bad = _mask(arr.is_null())
        vals = pc.fill_null(pc.cast(arr, pa.int64()), 0).to_numpy(zero_copy_only=False)
        return np.asarray(vals, dtype=np.int64), bad
    text = _text(arr)
    vals, is_int = _parse_int64(text)
    rest = np.flatnonzero(~is_int)
    bad = np.zeros(n, dtype=bool)
    if len(rest):
        sub = text.take(pa.array(rest))
        for target in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
            try:  # all with a zone, or all without (naive = UTC): Arrow's fast ISO parser
                vals[rest] = pc.cast(pc.cast(sub, target), pa.int64()).to_numpy()
                return vals, bad
            except pa.ArrowInvalid:
                pass
        strings = sub.to_numpy(zero_copy_only=False)
        parsed = pd.to_datetime(
            pd.Series(strings, dtype=object), utc=True, format="ISO8601", errors="coerce"
        )
        nat = parsed.isna().to_numpy()
        vals[rest[~nat]] = parsed[~nat].astype("int64").to_numpy()
        bad[rest[nat]] = True
    return vals, bad


def _suspicious(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    if pa.types.is_boolean(arr.type):
        return _mask(pc.fill_null(arr, False)), np.zeros(len(arr), dtype=bool)
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        v = np.asarray(pc.fill_null(pc.cast(arr, pa.float64()), 0).to_numpy(), dtype=float)
        return v != 0, ~np.isin(v, [0.0, 1.0])
    low = pc.utf8_lower(_text(arr))
    yes = _mask(pc.is_in(low, value_set=pa.array(sorted(_TRUE))))
    no = _mask(pc.is_in(low, value_set=pa.array(sorted(_FALSE))))
    return yes, ~(yes | no)


def _convert(p: _Parsed) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray, pd.DataFrame]:
    """Canonical columns for the rows of one file; rows with a bad field go to quarantine.

    Returns (frame without seq, with a ``_suspicious`` flag; seq or None when the file has no
    seq column; positions; quarantine), all for the rows that converted.
    """
    n = len(p.positions)
    if not n:
        return pd.DataFrame(), None, p.positions, p.quarantine
    wrong = np.zeros(n, dtype=bool)
    sym = pc.utf8_upper(_text(p.columns["symbol"])).to_numpy(zero_copy_only=False)
    ts, bad_ts = _timestamps(p.columns["ts"])
    wrong |= bad_ts
    seq: np.ndarray | None = None
    if "seq" in p.columns:
        seq_arr = p.columns["seq"]
        if pa.types.is_integer(seq_arr.type):
            seq = np.asarray(pc.fill_null(pc.cast(seq_arr, pa.int64()), 0).to_numpy())
            wrong |= _mask(seq_arr.is_null())
        else:
            seq, ok = _parse_int64(_text(seq_arr))
            wrong |= ~ok
    data: dict[str, object] = {"symbol": sym}
    for c in FLOAT_COLUMNS:
        v, bad = _floats(p.columns[c])
        wrong |= bad
        data[c] = v
    susp = np.zeros(n, dtype=bool)
    if "suspicious" in p.columns:
        susp, bad = _suspicious(p.columns["suspicious"])
        wrong |= bad
    frame = pd.DataFrame(data)
    frame.insert(1, "ts", pd.to_datetime(np.where(wrong, 0, ts), unit="ns", utc=True))
    frame["_suspicious"] = susp
    bad_idx = np.flatnonzero(wrong)
    # a record keeps its row's time when that parsed: it decides the record's day
    rec_ts = np.where(bad_ts[bad_idx], np.iinfo(np.int64).min, ts[bad_idx])
    q = make_quarantine(
        p.source,
        p.positions[bad_idx],
        "wrong_type",
        raws=_raw_rows(p, bad_idx),
        symbols=sym[bad_idx],
        ts=rec_ts.view("datetime64[ns]"),
    )
    keep = ~wrong
    quarantine = pd.concat([x for x in (p.quarantine, q) if not x.empty] or [q])
    return (
        frame[keep].reset_index(drop=True),
        None if seq is None else seq[keep],
        p.positions[keep],
        quarantine.reset_index(drop=True),
    )


def _raw_rows(p: _Parsed, idx: np.ndarray) -> list[str]:
    if not len(idx):
        return []
    take = pa.array(idx)
    cols = [p.columns[c].take(take).to_pylist() for c in p.columns]
    return [
        ",".join("" if v is None else str(v) for v in row)[:1000] for row in zip(*cols, strict=True)
    ]


# ------------------------------------------------------------------ public API


def _dense_seq(ts_ns: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Fallback seq when more than 999 events share a millisecond: 1, 2, ... per symbol in
    (ts, row) order."""
    order = np.lexsort((np.arange(len(ts_ns)), ts_ns))
    rank = np.empty(len(ts_ns), dtype=np.int64)
    s = pd.Series(symbols[order])
    rank[order] = s.groupby(s.to_numpy(), sort=False).cumcount().to_numpy() + 1
    return rank


def read_canonical(
    path: Path | str | Sequence[Path | str],
    out_of_order_tolerance: pd.Timedelta | str = "0s",
    drop_exact_repeats: bool = False,
    rules: ValidationConfig | None = None,
) -> ValidationResult:
    """Read canonical ticks from Parquet/CSV files (a file, a list, or a directory).

    Returns valid canonical ticks (sorted by symbol, ts, seq) and quarantine records whose
    ``source`` is the file and ``position`` the line (CSV) or row (Parquet). Raises only for a
    path that does not exist or a file without the required columns (``ValueError`` naming
    them).
    """
    t0 = time.perf_counter()
    files = source_files(path)
    frames: list[pd.DataFrame] = []
    quarantines: list[pd.DataFrame] = []
    src_idx: list[np.ndarray] = []
    pos: list[np.ndarray] = []
    seqs: list[np.ndarray] = []
    derived_parts: list[np.ndarray] = []
    for k, f in enumerate(files):
        parsed = _read_parquet(f) if _is_parquet(f) else _read_csv(f)
        frame, seq_k, positions, q = _convert(parsed)
        quarantines.append(q)
        if not len(frame):
            continue
        frames.append(frame)
        pos.append(positions)
        src_idx.append(np.full(len(frame), k, dtype=np.int64))
        seqs.append(np.zeros(len(frame), np.int64) if seq_k is None else seq_k)
        derived_parts.append(np.full(len(frame), seq_k is None))
    sources = np.array([str(f) for f in files] or [""], dtype=object)
    if not frames:
        q = pd.concat([x for x in quarantines if not x.empty] or [empty_quarantine()])
        q = q.reset_index(drop=True)
        return ValidationResult(empty_ticks(), q, reason_counts(q))
    frame = pd.concat(frames, ignore_index=True)
    file_of = np.concatenate(src_idx)
    position = np.concatenate(pos)
    seq = np.concatenate(seqs)
    derived = np.concatenate(derived_parts)
    # rejects validate_ticks does not know about: vendor flags and exact repeats
    pre = np.full(len(frame), "", dtype=object)
    pre[frame["_suspicious"].to_numpy()] = "vendor_suspicious"
    frame = frame.drop(columns=["_suspicious"])
    key_cols = [c for c in TICK_COLUMNS if c != "seq"]
    if derived.any():
        sub = frame.loc[derived & (pre == ""), key_cols]
        if drop_exact_repeats:
            rep = sub.duplicated(keep="first").to_numpy()
        else:  # an exact repeat of a row of an earlier file
            key = sub.assign(_file=file_of[sub.index])
            first = key.groupby(key_cols, dropna=False, sort=False)["_file"].transform("first")
            rep = (key["_file"] != first).to_numpy()
        pre[sub.index[rep]] = "duplicate"
        todo = np.flatnonzero(derived & (pre == ""))
        ts_ns = frame["ts"].iloc[todo].astype("int64").to_numpy()
        syms = frame["symbol"].iloc[todo].to_numpy()
        try:
            seq[todo] = derive_seq(ts_ns, syms)
        except ValueError:
            log.warning("more than 999 ticks in one ms for one symbol: seq = rank per symbol")
            seq[todo] = _dense_seq(ts_ns, syms)
    frame.insert(2, "seq", seq)
    pre_idx = np.flatnonzero(pre != "")
    if len(pre_idx):
        quarantines.append(
            _located(
                make_quarantine(
                    "",
                    pre_idx,
                    pre[pre_idx],
                    raws=raw_repr(frame, pre_idx),
                    symbols=frame["symbol"].to_numpy()[pre_idx],
                    ts=frame["ts"].iloc[pre_idx].to_numpy(),
                ),
                sources,
                file_of,
                position,
            )
        )
    rest = np.flatnonzero(pre == "")
    res = validate_ticks(
        frame.iloc[rest].reset_index(drop=True),
        "",
        positions=rest,
        out_of_order_tolerance=out_of_order_tolerance,
        rules=rules,
    )
    quarantines.append(_located(res.quarantine, sources, file_of, position))
    q = pd.concat([x for x in quarantines if not x.empty] or [empty_quarantine()])
    q = q.sort_values(["source", "position"], kind="stable").reset_index(drop=True)
    dt = time.perf_counter() - t0
    log.info(
        "read %d file(s): %d ticks, %d quarantined %s in %.2f s",
        len(files),
        res.n_valid,
        len(q),
        reason_counts(q),
        dt,
    )
    return ValidationResult(res.ticks, q, reason_counts(q))


def _located(
    q: pd.DataFrame, sources: np.ndarray, file_of: np.ndarray, position: np.ndarray
) -> pd.DataFrame:
    """Quarantine records whose position is a row of the combined frame -> file and line."""
    if q.empty:
        return q
    idx = q["position"].to_numpy()
    q = q.copy()
    q["source"] = sources[file_of[idx]]
    q["position"] = position[idx]
    return q


def write_canonical(ticks: pd.DataFrame, path: Path | str) -> Path:
    """Write ticks in the canonical schema: Parquet for ``*.parquet``, else CSV with a header
    (``*.csv.gz`` compressed). CSV timestamps are ISO-8601 UTC with ns (``...313000001Z``) and
    floats the shortest text that reads back exactly, so write -> read is lossless."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = ticks_to_arrow(ticks)
    name = path.name.lower()
    if name.endswith(".parquet"):
        pq.write_table(table, path, compression="zstd")
    elif name.endswith(".gz"):
        with pa.CompressedOutputStream(str(path), "gzip") as out:
            pacsv.write_csv(table, out)
    else:
        pacsv.write_csv(table, path)
    return path
