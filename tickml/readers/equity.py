"""Reader for the AlgoSeek US equity tick files (QuantConnect Lean layout) -> canonical ticks.

Layout: ``{root}/{symbol}/{YYYYMMDD}_{trade|quote}.zip``, each zip holding one headerless CSV.

- quote rows: ``ms_since_midnight, bid, bid_size, ask, ask_size, exchange, quote_condition,
  suspicious``
- trade rows: ``ms_since_midnight, price, size, exchange, sale_condition, suspicious``

Prices are deci-cents (/ 10,000 -> dollars); times are milliseconds since midnight New York
wall-clock time, converted to UTC with the real America/New_York offset of the day.

NBBO: every quote row updates one side of the consolidated best bid/offer (a side with price 0
means "no update to that side"; a row with both sides non-zero updates both). The last bid
(price, size) and the last ask are carried forward. Rows sharing a millisecond form ONE quote
event carrying the state after all of that millisecond's updates, so a bid/ask pair published
together is never seen half applied. Before a side has been seen it is null.

Trades are merged into the event stream: within a millisecond the trades come first (file
order), then the quote event; a trade carries the book of the last quote event strictly before
its millisecond (the quote update stamped with the trade's millisecond is usually its
consequence). Trades-only symbols (SPY) carry a null book.

Crossed books: a crossed quote event is quarantined (``crossed_book``) by
:func:`tickml.schema.validate_ticks`, but the carried book keeps evolving from the raw updates,
so the next event may uncross it. A trade whose carried book is crossed is KEPT with a null
book: the print itself is valid (it comes from the separate trade feed) and dropping it would
lose a real trade; the crossed state is a defect of the quote feed at that instant (one side
stale), so attaching it would hand a negative spread and a wrong mid to everything downstream,
and attaching an older uncrossed book would silently pretend to know a state we do not. Null is
the schema's "no book known", the same as a trade before the first quote.

Robustness: a file that the fast path (``pyarrow.csv`` over the whole buffer) refuses is split
into lines; lines with the wrong number of fields are ``unparseable``, the rest are parsed again
by ``pyarrow.csv`` in blocks, bisecting failing blocks down to the single lines that do not
convert (``wrong_type``). Good rows around bad ones are kept and both paths apply exactly the
same parser to every kept row. All numeric fields are parsed as float64 (pyarrow's int64
conversion would accept hexadecimal such as ``0x10``); ms and suspicious must then be integral.
Row-level rejects (each with its 1-based line number in the CSV and the raw line):
``unparseable``, ``wrong_type`` (including a time that is not a whole ms within 0..24 h),
``nan_or_inf``, ``non_positive`` (negative price/size, a quote side with a price but no size, a
trade without a positive price and size), ``empty_event`` (a quote row updating neither side),
``vendor_suspicious`` (suspicious != 0; such a quote row does not touch the book). Damaged zips
(not a zip, truncated, missing member) give a file-level record at position 0; what can be
inflated from a truncated zip is still read (its last, incomplete line is quarantined).
``seq = ts_ms * 1000 + k`` cannot number more than 1000 events of one millisecond: events past
the 1000th (only a repeated block of rows makes that many) are quarantined as ``duplicate``.

Accounting, exact per symbol and day (see :class:`EquityReadResult`): every non-blank CSV line
is either a canonical tick, a row-level quarantine record, or a quote row merged into the
event of the same millisecond (``merged``): ``rows_in == ticks + quarantined rows + merged``,
where quarantined rows are the records with ``position > 0``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from tickml.readers.zipfiles import read_zip_members
from tickml.schema import (
    TICK_COLUMNS,
    ValidationResult,
    derive_seq,
    empty_quarantine,
    empty_ticks,
    make_quarantine,
    reason_counts,
    validate_ticks,
)
from tickml.validation import DEFAULT_RULES, ValidationConfig

__all__ = [
    "EquityReadResult",
    "list_equity_days",
    "list_equity_symbols",
    "parse_equity_files",
    "read_equity",
    "read_equity_day",
]

log = logging.getLogger(__name__)

NEW_YORK = ZoneInfo("America/New_York")
PRICE_SCALE = 10_000.0
MS_PER_DAY = 86_400_000
_FILE_RE = re.compile(r"^(\d{8})_(trade|quote)\.zip$", re.IGNORECASE)

QUOTE_FIELDS: tuple[str, ...] = (
    "ms",
    "bid",
    "bid_size",
    "ask",
    "ask_size",
    "exchange",
    "condition",
    "suspicious",
)
TRADE_FIELDS: tuple[str, ...] = ("ms", "price", "size", "exchange", "condition", "suspicious")
_TEXT_FIELDS = ("exchange", "condition")  # not used, never converted (their content is free)

#: lines per block when re-parsing a file the fast path refused
_SLOW_BLOCK = 1 << 15
#: failing blocks this small get the per-line character pre-check before bisecting further
_PREFILTER_BLOCK = 256
#: characters pyarrow's float conversion can possibly accept (a superset: a line passing this
#: check still goes through pyarrow, so both paths keep exactly the same rows)
_NUMBER_CHARS = re.compile(rb"[0-9+\-.eE \tnNaAiIfFtTyY]*")


def _may_convert(line: bytes, allowed: list[re.Pattern[bytes] | None]) -> bool:
    return all(
        pat is None or pat.fullmatch(part) is not None
        for pat, part in zip(allowed, line.split(b","), strict=False)
    )


@dataclass
class EquityReadResult(ValidationResult):
    """A :class:`ValidationResult` plus the per-symbol row accounting of the vendor files.

    ``rows_in[symbol]``: non-blank CSV lines read (quote + trade files); ``merged[symbol]``:
    quote rows folded into the event of an earlier row of the same millisecond. For each symbol
    ``rows_in == ticks + quarantine records with position > 0 + merged`` (position 0 marks
    file-level records: damaged zip, missing member).
    """

    rows_in: dict[str, int] = field(default_factory=dict)
    merged: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# CSV bytes -> numeric columns + row-level quarantine
# --------------------------------------------------------------------------------------------


@dataclass
class _Rejects:
    lines: list[np.ndarray] = field(default_factory=list)
    reasons: list[np.ndarray] = field(default_factory=list)
    ms: list[np.ndarray] = field(default_factory=list)
    raws: list[list[str]] = field(default_factory=list)

    def add(self, lines: np.ndarray, reason: str, ms: np.ndarray | None, raws: list[str]) -> None:
        if len(lines) == 0:
            return
        self.lines.append(np.asarray(lines, dtype=np.int64))
        self.reasons.append(np.full(len(lines), reason, dtype=object))
        self.ms.append(
            np.asarray(ms, dtype=np.int64) if ms is not None else np.full(len(lines), -1)
        )
        self.raws.append(raws)


@dataclass
class _Parsed:
    cols: dict[str, np.ndarray]
    lines: np.ndarray  # 1-based CSV line number of each kept row
    n_rows: int  # non-blank lines
    rejects: _Rejects


def _csv_options(
    names: tuple[str, ...], use_threads: bool
) -> tuple[pacsv.ReadOptions, pacsv.ParseOptions, pacsv.ConvertOptions]:
    types: dict[str, pa.DataType] = {}
    for n in names:
        if n not in _TEXT_FIELDS:
            # all numeric fields as float64, integers included: pyarrow's int64 conversion
            # accepts hexadecimal ("0x10" -> 16), which no vendor writes; integrality and
            # range of ms / suspicious are checked after parsing
            types[n] = pa.float64()
    read = pacsv.ReadOptions(column_names=list(names), use_threads=use_threads)
    # no quoting, no escapes: a field is exactly the bytes between two commas (as in the
    # line-by-line path), and no string such as "NA" silently becomes null
    parse = pacsv.ParseOptions(quote_char=False, escape_char=False, newlines_in_values=False)
    convert = pacsv.ConvertOptions(
        column_types=types,
        include_columns=list(types),
        null_values=[],
        true_values=[],
        false_values=[],
        strings_can_be_null=False,
    )
    return read, parse, convert


def _try_read(data: bytes, names: tuple[str, ...], use_threads: bool) -> pa.Table | None:
    read, parse, convert = _csv_options(names, use_threads)
    try:
        return pacsv.read_csv(
            pa.py_buffer(data), read_options=read, parse_options=parse, convert_options=convert
        )
    except (pa.ArrowException, ValueError, OverflowError):
        return None


def _table_cols(table: pa.Table) -> dict[str, np.ndarray]:
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}


def _line_texts(data: bytes, lines: np.ndarray) -> list[str]:
    """The raw text of the given 1-based line numbers (only called for the few rejects)."""
    if len(lines) == 0:
        return []
    nl = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [len(data)]))
    out = []
    for ln in lines:
        s, e = int(starts[ln - 1]), int(ends[ln - 1])
        out.append(_decode(data[s:e]))
    return out


def _decode(raw: bytes) -> str:
    return raw.rstrip(b"\r").decode("utf-8", errors="backslashreplace")


def _parse_fast(data: bytes, names: tuple[str, ...]) -> tuple[pa.Table, int] | None:
    """Whole-buffer pyarrow parse; None when it refuses or rows cannot map 1:1 onto lines."""
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return None  # a lone CR is a line break for pyarrow but not for line numbering
    body = data.rstrip(b"\r\n")  # trailing blank lines are not rows (no copy if none)
    n_lines = body.count(b"\n") + (1 if body else 0)
    table = _try_read(body, names, use_threads=True)
    if table is None or table.num_rows != n_lines:  # blank lines are skipped by pyarrow
        return None
    return table, n_lines


def _parse_slow(
    data: bytes, names: tuple[str, ...], rejects: _Rejects
) -> tuple[list[pa.Table], list[np.ndarray], int]:
    """Line-by-line path: column-count check per line, pyarrow on blocks, bisect failures."""
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    n_commas = len(names) - 1
    good: list[bytes] = []
    good_no: list[int] = []
    bad_no: list[int] = []
    bad_raw: list[str] = []
    n_rows = 0
    for i, line in enumerate(raw_lines):
        body = line[:-1] if line.endswith(b"\r") else line
        if not body.strip(b"\r"):
            continue  # blank line: not a row
        n_rows += 1
        if body.count(b",") != n_commas or b"\r" in body:
            bad_no.append(i + 1)
            bad_raw.append(_decode(body))
        else:
            good.append(body)
            good_no.append(i + 1)
    rejects.add(np.asarray(bad_no, dtype=np.int64), "unparseable", None, bad_raw)

    tables: list[pa.Table] = []
    line_arrays: list[np.ndarray] = []
    wrong: list[int] = []  # indices into good
    good_arr = np.asarray(good_no, dtype=np.int64)
    allowed = [None if name in _TEXT_FIELDS else _NUMBER_CHARS for name in names]
    # blocks of line indices, bisected until every failing block is a single line; a small
    # failing block is first rid of lines with characters no number can hold (cheap, and it
    # spares the bisection most of its pyarrow calls on heavily damaged files)
    stack = [
        np.arange(lo, min(lo + _SLOW_BLOCK, len(good))) for lo in range(0, len(good), _SLOW_BLOCK)
    ]
    stack.reverse()
    while stack:
        block = stack.pop()
        table = _try_read(b"\n".join([good[i] for i in block]), names, use_threads=False)
        if table is not None and table.num_rows == len(block):
            tables.append(table)
            line_arrays.append(good_arr[block])
        elif len(block) == 1:
            wrong.append(int(block[0]))
        else:
            if len(block) <= _PREFILTER_BLOCK:
                ok = np.array([_may_convert(good[i], allowed) for i in block], dtype=bool)
                if not ok.all():
                    wrong.extend(int(i) for i in block[~ok])
                    if ok.any():
                        stack.append(block[ok])
                    continue
            mid = len(block) // 2
            stack.append(block[mid:])
            stack.append(block[:mid])
    wrong.sort()
    wrong_no = [good_no[i] for i in wrong]
    wrong_raw = [_decode(good[i]) for i in wrong]
    rejects.add(np.asarray(wrong_no, dtype=np.int64), "wrong_type", None, wrong_raw)
    return tables, line_arrays, n_rows


def _parse_csv(data: bytes, names: tuple[str, ...]) -> _Parsed:
    rejects = _Rejects()
    numeric = [n for n in names if n not in _TEXT_FIELDS]
    fast = _parse_fast(data, names) if data else None
    if fast is not None:
        table, n_rows = fast
        cols = _table_cols(table)
        lines = np.arange(1, n_rows + 1, dtype=np.int64)
    else:
        tables, line_arrays, n_rows = _parse_slow(data, names, rejects) if data else ([], [], 0)
        if tables:
            cols = _table_cols(pa.concat_tables(tables))
            lines = np.concatenate(line_arrays)
        else:
            cols = {n: np.empty(0, dtype=np.float64) for n in numeric}
            lines = np.empty(0, dtype=np.int64)
    return _Parsed(cols, lines, n_rows, rejects)


def _row_checks(
    parsed: _Parsed, kind: str, data: bytes, rules: ValidationConfig = DEFAULT_RULES
) -> np.ndarray:
    """Vectorized row-level checks; records the rejects, returns the keep mask.

    Prices and sizes outside the plausibility bounds are rejected here, on the vendor row, so
    that an absurd quote never enters the carried book of the events after it."""
    c = parsed.cols
    ms_f, susp = c["ms"], c["suspicious"]
    n = len(ms_f)
    reason = np.zeros(n, dtype=np.int8)  # 0 = keep, else index into codes
    codes = ["", "wrong_type", "nan_or_inf", "non_positive", "out_of_range", "empty_event",
             "vendor_suspicious"]
    lo_px, hi_px = rules.min_price * PRICE_SCALE, rules.max_price * PRICE_SCALE

    def mark(mask: np.ndarray, code: str) -> None:
        reason[mask & (reason == 0)] = codes.index(code)

    with np.errstate(invalid="ignore"):
        # a time of day in whole ms, and an integer flag
        ms_ok = (ms_f >= 0) & (ms_f < MS_PER_DAY) & (ms_f == np.floor(ms_f))
        mark(~ms_ok | ~np.isfinite(susp) | (susp != np.floor(susp)), "wrong_type")
        ms = np.where(ms_ok, ms_f, -1).astype(np.int64)
        c["ms"] = ms
        if kind == "quote":
            bid, bsz, ask, asz = c["bid"], c["bid_size"], c["ask"], c["ask_size"]
            finite = np.isfinite(bid) & np.isfinite(bsz) & np.isfinite(ask) & np.isfinite(asz)
            mark(~finite, "nan_or_inf")
            nonpos = (bid < 0) | (ask < 0) | (bsz < 0) | (asz < 0)
            nonpos |= ((bid > 0) & (bsz <= 0)) | ((ask > 0) & (asz <= 0))
            mark(nonpos, "non_positive")
            off = ((bid > 0) & ((bid < lo_px) | (bid > hi_px))) | (bsz > rules.max_size)
            off |= ((ask > 0) & ((ask < lo_px) | (ask > hi_px))) | (asz > rules.max_size)
            mark(off, "out_of_range")
            mark((bid <= 0) & (ask <= 0), "empty_event")
        else:
            price, size = c["price"], c["size"]
            mark(~(np.isfinite(price) & np.isfinite(size)), "nan_or_inf")
            mark((price <= 0) | (size <= 0), "non_positive")
            off = (price < lo_px) | (price > hi_px) | (size > rules.max_size)
            mark(off, "out_of_range")
    mark(susp != 0, "vendor_suspicious")
    bad = np.flatnonzero(reason)
    if len(bad):
        bad_lines = parsed.lines[bad]
        raws = _line_texts(data, bad_lines)
        for code_i in np.unique(reason[bad]):
            sel = reason[bad] == code_i
            parsed.rejects.add(
                bad_lines[sel],
                codes[int(code_i)],
                ms[bad[sel]],
                [r for r, s in zip(raws, sel, strict=True) if s],
            )
    return reason == 0


# --------------------------------------------------------------------------------------------
# time
# --------------------------------------------------------------------------------------------


def _ms_to_utc_ns(ms: np.ndarray, day: dt.date) -> np.ndarray:
    """Milliseconds since New York midnight (wall clock) -> UTC epoch nanoseconds."""
    ms = np.asarray(ms, dtype=np.int64)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=NEW_YORK)
    end = start + dt.timedelta(hours=23, minutes=59, seconds=59)
    if start.utcoffset() == end.utcoffset():  # no DST change that day: one offset
        midnight_ns = int(start.timestamp()) * 1_000_000_000
        return midnight_ns + ms * 1_000_000
    # DST change day: localize each wall-clock time (the repeated hour is read as the first,
    # daylight one; a time in the skipped hour moves forward). Markets are closed then anyway.
    naive = pd.Timestamp(day).to_datetime64() + ms.astype("timedelta64[ms]")
    local = pd.DatetimeIndex(naive).tz_localize(
        NEW_YORK, ambiguous=np.ones(len(ms), dtype=bool), nonexistent="shift_forward"
    )
    utc = local.tz_convert("UTC").tz_localize(None)
    return np.asarray(utc.to_numpy(dtype="datetime64[ns]")).view(np.int64)


# --------------------------------------------------------------------------------------------
# the core: CSV bytes -> canonical ticks
# --------------------------------------------------------------------------------------------


def _take(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """values[idx] with NaN where idx < 0."""
    if len(values) == 0:
        return np.full(len(idx), np.nan)
    out = values[np.maximum(idx, 0)]
    out[idx < 0] = np.nan
    return out


def _rejects_frame(rejects: _Rejects, source: str, symbol: str, day: dt.date) -> pd.DataFrame:
    if not rejects.lines:
        return empty_quarantine()
    ms = np.concatenate(rejects.ms)
    has_ts = ms >= 0
    ts_ns = np.zeros(len(ms), dtype=np.int64)
    if has_ts.any():
        ts_ns[has_ts] = _ms_to_utc_ns(ms[has_ts], day)
    ts = ts_ns.view("datetime64[ns]").copy()
    ts[~has_ts] = np.datetime64("NaT")
    return make_quarantine(
        source,
        np.concatenate(rejects.lines),
        np.concatenate(rejects.reasons),
        raws=[r for chunk in rejects.raws for r in chunk],
        symbols=symbol,
        ts=ts,
    )


def _normalize(data: bytes | None) -> bytes:
    if data is None:
        return b""
    data = bytes(data)
    if b"\n" not in data and b"\r" in data:  # classic-Mac line ends: CR alone
        data = data.replace(b"\r", b"\n")
    return data


def parse_equity_files(
    quote_bytes: bytes | None,
    trade_bytes: bytes | None,
    symbol: str,
    day: dt.date,
    source: str,
    out_of_order_tolerance: pd.Timedelta | str = "0s",
    rules: ValidationConfig | None = None,
) -> EquityReadResult:
    """One symbol-day from the raw CSV bytes of its quote and trade files (either may be None).

    Quarantine records name their file as ``f"{source}_quote"`` / ``f"{source}_trade"`` and
    the 1-based CSV line; an event rejected by :func:`validate_ticks` points at the last quote
    line of its millisecond (quote events) or at its trade line. Never raises on bad bytes.
    """
    symbol = symbol.upper()
    q_src, t_src = f"{source}_quote", f"{source}_trade"
    q_data = _normalize(quote_bytes)
    t_data = _normalize(trade_bytes)

    q = _parse_csv(q_data, QUOTE_FIELDS)
    t = _parse_csv(t_data, TRADE_FIELDS)
    rules = rules or DEFAULT_RULES
    q_keep = _row_checks(q, "quote", q_data, rules)
    t_keep = _row_checks(t, "trade", t_data, rules)
    row_quarantine = [
        _rejects_frame(q.rejects, q_src, symbol, day),
        _rejects_frame(t.rejects, t_src, symbol, day),
    ]

    # ---- quote rows -> one event per run of rows sharing a millisecond -------------------
    qc = q.cols
    qms = qc["ms"][q_keep]
    qline = q.lines[q_keep]
    n_q = len(qms)
    bid_px = qc["bid"][q_keep] / PRICE_SCALE
    ask_px = qc["ask"][q_keep] / PRICE_SCALE
    bid_sz = qc["bid_size"][q_keep]
    ask_sz = qc["ask_size"][q_keep]
    rows = np.arange(n_q, dtype=np.int64)
    last_bid = np.maximum.accumulate(np.where(bid_px > 0, rows, -1)) if n_q else rows
    last_ask = np.maximum.accumulate(np.where(ask_px > 0, rows, -1)) if n_q else rows
    ev_rows = np.flatnonzero(np.r_[qms[1:] != qms[:-1], True]) if n_q else rows
    ev_ms = qms[ev_rows]
    ev_line = qline[ev_rows]
    ev_bid = _take(bid_px, last_bid[ev_rows])
    ev_ask = _take(ask_px, last_ask[ev_rows])
    ev_bsz = _take(bid_sz, last_bid[ev_rows])
    ev_asz = _take(ask_sz, last_ask[ev_rows])
    n_ev = len(ev_rows)
    merged = n_q - n_ev

    # ---- trades ---------------------------------------------------------------------------
    tc = t.cols
    tms = tc["ms"][t_keep]
    tline = t.lines[t_keep]
    t_px = tc["price"][t_keep] / PRICE_SCALE
    t_sz = tc["size"][t_keep].astype(np.float64)
    n_t = len(tms)

    # ---- merge: sort keys are running maxima of each stream (so a row out of order in its
    # file stays where the file put it and validate_ticks can judge it); within a ms trades
    # first, then the quote event
    key_q = np.maximum.accumulate(ev_ms) if n_ev else ev_ms
    key_t = np.maximum.accumulate(tms) if n_t else tms
    n_before_t = np.searchsorted(key_q, key_t, side="left")  # quote events before each trade
    pos_t = np.arange(n_t) + n_before_t
    pos_q = np.arange(n_ev) + np.searchsorted(key_t, key_q, side="right")
    n = n_ev + n_t

    # a trade's book: the last quote event before it; a crossed one is not attached (see top)
    book_idx = n_before_t - 1
    t_bid, t_ask = _take(ev_bid, book_idx), _take(ev_ask, book_idx)
    t_bsz, t_asz = _take(ev_bsz, book_idx), _take(ev_asz, book_idx)
    with np.errstate(invalid="ignore"):
        crossed = t_bid > t_ask
    for arr in (t_bid, t_ask, t_bsz, t_asz):
        arr[crossed] = np.nan

    def merge(q_vals: np.ndarray | float, t_vals: np.ndarray | float, dtype: type) -> np.ndarray:
        out: np.ndarray = np.empty(n, dtype=dtype)
        out[pos_q] = q_vals
        out[pos_t] = t_vals
        return out

    ms_all = merge(ev_ms, tms, np.int64)
    is_trade = merge(False, True, np.bool_)
    line_all = merge(ev_line, tline, np.int64)
    ts_ns = _ms_to_utc_ns(ms_all, day)
    seq, overflow = _seq(ts_ns)
    frame = pd.DataFrame(
        {
            "symbol": np.full(n, symbol, dtype=object),
            "ts": pd.DatetimeIndex(ts_ns.view("datetime64[ns]")).tz_localize("UTC"),
            "seq": seq,
            "bid": merge(ev_bid, t_bid, np.float64),
            "ask": merge(ev_ask, t_ask, np.float64),
            "bid_size": merge(ev_bsz, t_bsz, np.float64),
            "ask_size": merge(ev_asz, t_asz, np.float64),
            "price": merge(np.nan, t_px, np.float64),
            "size": merge(0.0, t_sz, np.float64),
        },
        columns=list(TICK_COLUMNS),
    )
    if overflow.any():
        frame = frame[~overflow]
    result = validate_ticks(
        frame,
        q_src,
        positions=np.flatnonzero(~overflow),
        out_of_order_tolerance=out_of_order_tolerance,
        rules=rules,
    )
    vq = result.quarantine
    if overflow.any():
        # seq = ts_ms * 1000 + k cannot number a 1001st event of one millisecond; only a
        # repeated block of rows produces that many, so the excess is quarantined as such
        vq = _concat_quarantine(
            [
                vq,
                make_quarantine(
                    q_src,
                    np.flatnonzero(overflow),
                    "duplicate",
                    raws=["more than 1000 events in this millisecond"] * int(overflow.sum()),
                    symbols=symbol,
                    ts=ts_ns[overflow].view("datetime64[ns]"),
                ),
            ]
        )
    if len(vq):
        idx = vq["position"].to_numpy()
        vq = vq.assign(
            source=np.where(is_trade[idx], t_src, q_src).astype(object),
            position=line_all[idx],
        )
    quarantine = _concat_quarantine([*row_quarantine, vq])
    return EquityReadResult(
        ticks=result.ticks,
        quarantine=quarantine,
        counts=reason_counts(quarantine),
        rows_in={symbol: q.n_rows + t.n_rows},
        merged={symbol: int(merged)},
    )


def _seq(ts_ns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """derive_seq, plus a mask of the events past the 1000th of one millisecond (left 0)."""
    try:
        return derive_seq(ts_ns), np.zeros(len(ts_ns), dtype=bool)
    except ValueError:
        ms = ts_ns // 1_000_000
        k = pd.Series(ms).groupby(ms, sort=False).cumcount().to_numpy()
        overflow = k >= 1000
        seq = np.zeros(len(ts_ns), dtype=np.int64)
        seq[~overflow] = derive_seq(ts_ns[~overflow])
        return seq, overflow


def _concat_quarantine(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return empty_quarantine()
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["source", "position"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# zip files
# --------------------------------------------------------------------------------------------


def _split_partial_tail(data: bytes) -> tuple[bytes, bytes, int]:
    """Cut an incomplete last line off salvaged bytes: (complete part, tail, tail line no)."""
    if not data or data.endswith(b"\n"):
        return data, b"", 0
    cut = data.rfind(b"\n") + 1
    return data[:cut], data[cut:], data.count(b"\n", 0, cut) + 1


# --------------------------------------------------------------------------------------------
# directory API
# --------------------------------------------------------------------------------------------


def _scan(root: Path) -> dict[str, set[dt.date]]:
    found: dict[str, set[dt.date]] = {}
    root = Path(root)
    if not root.is_dir():
        return found
    for sym_dir in root.iterdir():
        if not sym_dir.is_dir():
            continue
        for f in sym_dir.iterdir():
            m = _FILE_RE.match(f.name)
            if not m:
                continue
            try:
                d = dt.datetime.strptime(m.group(1), "%Y%m%d").date()
            except ValueError:
                continue
            found.setdefault(sym_dir.name.upper(), set()).add(d)
    return found


def list_equity_days(root: Path) -> list[dt.date]:
    """All days with at least one trade or quote file, ascending."""
    days: set[dt.date] = set()
    for found in _scan(root).values():
        days |= found
    return sorted(days)


def list_equity_symbols(root: Path) -> list[str]:
    """All symbols (upper case) with at least one trade or quote file, sorted."""
    return sorted(_scan(root))


def _symbol_dirs(root: Path) -> dict[str, Path]:
    return (
        {p.name.upper(): p for p in Path(root).iterdir() if p.is_dir()}
        if Path(root).is_dir()
        else {}
    )


def _find_file(sym_dir: Path, day: dt.date, kind: str) -> Path | None:
    name = f"{day:%Y%m%d}_{kind}.zip"
    p = sym_dir / name
    if p.is_file():
        return p
    for f in sym_dir.glob(f"{day:%Y%m%d}_*"):
        if f.name.lower() == name:
            return f
    return None


def _read_kind(
    path: Path, src: str, symbol: str
) -> tuple[bytes, list[pd.DataFrame], int, list[tuple[str, int]]]:
    """One quote or trade zip: the CSV bytes of every member joined, the file-level records,
    the number of cut-off tail lines, and each member's (name, line count)."""
    chunks: list[bytes] = []
    records: list[pd.DataFrame] = []
    members: list[tuple[str, int]] = []
    tail_rows = 0
    parts = read_zip_members(path)
    for part in parts:
        where = f"{src}:{part.name}" if len(parts) > 1 else src
        if part.error is not None:
            log.warning("%s: %s", path, part.error)
            records.append(make_quarantine(where, [0], "unparseable", [part.error], symbol))
        if part.data is None:
            continue
        data = _normalize(part.data)
        if part.maybe_cut:
            data, tail, tail_line = _split_partial_tail(data)
            if tail.strip(b"\r"):
                tail_rows += 1
                records.append(
                    make_quarantine(where, [tail_line], "unparseable", [_decode(tail)], symbol)
                )
        if data and not data.endswith(b"\n"):
            data += b"\n"
        chunks.append(data)
        members.append((part.name, data.count(b"\n")))
    if len(chunks) > 1:
        log.warning("%s: %d CSV members, reading all", path, len(chunks))
    return b"".join(chunks), records, tail_rows, [m for m in members if m[1]]


def _by_member(
    q: pd.DataFrame, src: str, members: list[tuple[str, int]]
) -> pd.DataFrame:
    """Records of ``src`` numbered over several joined members -> per member and line."""
    mine = (q["source"] == src).to_numpy() & (q["position"] > 0).to_numpy()
    if len(members) < 2 or not mine.any():
        return q
    ends = np.cumsum([n for _, n in members])
    pos = q["position"].to_numpy()[mine]
    k = np.searchsorted(ends, pos, side="left")
    k = np.minimum(k, len(members) - 1)
    starts = np.r_[0, ends[:-1]]
    q = q.copy()
    names = np.array([f"{src}:{name}" for name, _ in members], dtype=object)
    q.loc[mine, "source"] = names[k]
    q.loc[mine, "position"] = pos - starts[k]
    return q


def _read_symbol_day(
    sym_dir: Path,
    symbol: str,
    day: dt.date,
    out_of_order_tolerance: pd.Timedelta | str,
    rules: ValidationConfig | None = None,
) -> EquityReadResult:
    source = f"{sym_dir.name}/{day:%Y%m%d}"
    payload: dict[str, bytes | None] = {}
    members: dict[str, list[tuple[str, int]]] = {}
    file_records: list[pd.DataFrame] = []
    tail_rows = 0
    for kind in ("quote", "trade"):
        path = _find_file(sym_dir, day, kind)
        if path is None:
            payload[kind] = None
            continue
        data, records, tails, members[kind] = _read_kind(path, f"{source}_{kind}", symbol)
        payload[kind] = data
        file_records += records
        tail_rows += tails
    res = parse_equity_files(
        payload["quote"], payload["trade"], symbol, day, source, out_of_order_tolerance, rules
    )
    quarantine = res.quarantine
    for kind, parts in members.items():
        quarantine = _by_member(quarantine, f"{source}_{kind}", parts)
    if not file_records and quarantine is res.quarantine:
        return res
    quarantine = _concat_quarantine([*file_records, quarantine])
    return EquityReadResult(
        ticks=res.ticks,
        quarantine=quarantine,
        counts=reason_counts(quarantine),
        rows_in={symbol: res.rows_in.get(symbol, 0) + tail_rows},
        merged=res.merged,
    )


def _concat_results(results: Sequence[EquityReadResult]) -> EquityReadResult:
    if not results:
        return EquityReadResult(empty_ticks(), empty_quarantine(), {}, {}, {})
    ticks = [r.ticks for r in results if len(r.ticks)]
    quarantine = _concat_quarantine(r.quarantine for r in results)
    rows_in: dict[str, int] = {}
    merged: dict[str, int] = {}
    for r in results:
        for k, v in r.rows_in.items():
            rows_in[k] = rows_in.get(k, 0) + v
        for k, v in r.merged.items():
            merged[k] = merged.get(k, 0) + v
    return EquityReadResult(
        ticks=pd.concat(ticks, ignore_index=True) if ticks else empty_ticks(),
        quarantine=quarantine,
        counts=reason_counts(quarantine),
        rows_in=rows_in,
        merged=merged,
    )


def read_equity_day(
    root: Path,
    day: dt.date,
    symbols: Sequence[str] | None = None,
    out_of_order_tolerance: pd.Timedelta | str = "0s",
    rules: ValidationConfig | None = None,
) -> EquityReadResult:
    """Canonical ticks of every (or the given) symbol on ``day``, sorted by symbol, ts, seq.

    ``rules``: plausibility bounds (default :data:`tickml.validation.DEFAULT_RULES`)."""
    dirs = _symbol_dirs(Path(root))
    wanted = sorted({s.upper() for s in symbols}) if symbols is not None else sorted(dirs)
    results = []
    for sym in wanted:
        if sym not in dirs:
            log.warning("%s: no directory for symbol %s", root, sym)
            continue
        results.append(_read_symbol_day(dirs[sym], sym, day, out_of_order_tolerance, rules))
    out = _concat_results(results)
    if len(out.quarantine):
        # keep the records in symbol order like the ticks
        out.quarantine = out.quarantine.sort_values(
            ["symbol", "source", "position"], kind="stable"
        ).reset_index(drop=True)
    return out


def read_equity(
    root: Path,
    days: Iterable[dt.date] | None = None,
    symbols: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    out_of_order_tolerance: pd.Timedelta | str = "0s",
    rules: ValidationConfig | None = None,
) -> EquityReadResult:
    """:func:`read_equity_day` over ``days`` (default: all), concatenated in day order.

    ``progress(done, total)`` is called after each day.
    """
    day_list = sorted(days) if days is not None else list_equity_days(Path(root))
    results = []
    for i, day in enumerate(day_list):
        results.append(read_equity_day(root, day, symbols, out_of_order_tolerance, rules))
        if progress is not None:
            progress(i + 1, len(day_list))
    return _concat_results(results)
