"""Binance websocket captures -> canonical ticks.

Capture format (as recorded by hftbacktest's collector, see /work/shared/data/README.md): a gzip
text file, one line per websocket frame::

    <local receive time, ns since epoch> <raw websocket JSON frame>

Frames are combined-stream envelopes ``{"stream": "<sym>@<kind>", "data": {...}}``:

* ``<sym>@bookTicker``: best bid/ask ``b``/``B``/``a``/``A`` with update id ``u``; the USD-M
  futures files also carry ``E`` (event time) and ``T`` (transaction time) in ms, the spot-style
  file (``btcusdt_20240809``) carries neither -> one canonical quote tick (price null, size 0).
* ``<sym>@trade``: trade id ``t``, price ``p``, quantity ``q``, ``T`` trade time, ``E`` event time,
  ``m`` buyer-is-maker -> one canonical trade tick that carries the latest book (the book of the
  latest *valid* bookTicker of the symbol before it in the stream; null before the first one).
  The aggressor flag ``m`` has no canonical column and is dropped (features infer the side from
  the trade price against the carried mid).
* ``<sym>@depth...`` diffs, REST depth snapshots (``{"lastUpdateId": ...}``), subscription
  replies and other streams are a different data type: counted in
  :attr:`BinanceCaptureResult.frames`, never quarantined. Depth frames are recognized by their
  header and not fully decoded (they are ~40x larger than a bookTicker and unused).
  Un-enveloped frames (a ``/ws/<stream>`` connection) are understood too.

Time (``clock="exchange"``, the default): ``ts`` is the exchange event time ``E`` (``T`` when a
frame has no ``E``). ``E`` rather than ``T`` because it is when the exchange published the event
(the earliest a live consumer could know it) and, merged over the bookTicker and trade streams in
arrival order, it goes backwards less often and by less (BTCUSDT futures: 648 steps back, at most
30 ms, against 785 and 110 ms for ``T``). A frame without exchange time (the spot-style
bookTicker) gets its local receive time shifted onto the exchange clock:
``local + max(E - local)`` over all earlier frames of the connection that carried ``E`` (trades,
depth). The running max is the offset seen with the lowest latency, so the shifted time is never
earlier than the true exchange time when the clock offset is constant (no look-ahead), and it
keeps the file on one clock: the raw local clock runs ~1.27 s behind ``E`` in these captures, and
mixing raw local bookTicker times with exchange trade times would put every quote 1.27 s before
the trades around it (and make them out of order). Before the first frame with ``E`` the raw
local time is used. ``clock="local"`` uses the local receive time for every frame instead
(one clock including network latency; useful to study latency).

Sequence numbers (``seq``, per symbol, strictly increasing in arrival order, unique): the two id
spaces (bookTicker ``u``, trade ``t``) cannot be interleaved by themselves, so::

    bookTicker: seq = max(previous seq + 1, u * 2**16)
    trade:      seq = previous seq + 1          (previous seq = 0 before the first tick)

A bookTicker's seq is its update id shifted left 16 bits (so the same update gets the same seq in
any capture that contains it) and the trades after it count up from there; up to 65,535 trades
fit between two bookTickers (the most seen here: 813) and beyond that the ``max`` keeps seq
increasing anyway. Update ids must be below 2**47 (about 1.4e14; futures ids were 5.1e12 in
August 2024). Duplicates are detected on the *source* ids before seq is assigned: a bookTicker
whose ``u`` (or a trade whose ``t``) was already seen for the symbol is quarantined as
``duplicate``. Re-ingesting a capture yields the same seq (idempotent tick store), and the live
adapter (:class:`BinanceBookState`) assigns the same seq as :func:`read_binance_capture`. We
did not use :func:`~tickml.schema.derive_seq` (ts_ms * 1000 + k): it orders by exchange time,
not arrival, so in a live stream seq would step back whenever the trade and bookTicker streams
interleave out of time order, and a market sweep can put hundreds of trades in one millisecond
(238 here; derive_seq raises at 1000).

Bad lines never stop the reader: invalid UTF-8, broken JSON, a missing separator or required
field -> ``unparseable``; a receive time, id, timestamp or value that is not a number ->
``wrong_type``; repeated ids -> ``duplicate``; the rest (NaN/inf, non-positive, crossed, out of
order beyond the tolerance, empty or disallowed symbol, plausibility bounds, price jumps) is
decided by :func:`~tickml.schema.validate_ticks`. A trade carries only a book that passes the
plausibility bounds too.
Positions in the quarantine are 1-based line numbers. A truncated gzip stream keeps every line
decompressed before the damage and adds one ``unparseable`` record after the last line.

Speed: a file is decoded column-wise with pyarrow (RE2 patterns that match only the exact
layouts Binance sends, so a matching line decodes to what ``json`` would give; tested on every
line of a real capture); any other line goes through ``json`` one by one.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tickml.schema import (
    TICK_COLUMNS,
    ValidationResult,
    empty_quarantine,
    make_quarantine,
    reason_counts,
    validate_ticks,
)
from tickml.validation import DEFAULT_RULES, ValidationConfig

log = logging.getLogger(__name__)

Clock = Literal["exchange", "local"]

# frame kinds (codes in the scanned arrays); -1 = no frame (blank or rejected line)
BOOK_TICKER, TRADE, DEPTH, SNAPSHOT, OTHER = 0, 1, 2, 3, 4
KIND_NAMES: tuple[str, ...] = ("bookTicker", "trade", "depth", "snapshot", "other")

SEQ_SHIFT = 16
MAX_UPDATE_ID = 1 << (63 - SEQ_SHIFT)  # u << 16 must stay below 2**63
MAX_ID = (1 << 63) - 1
MAX_NS = (1 << 63) - 1
MAX_MS = MAX_NS // 1_000_000
_NAN = float("nan")
_I64_MIN = np.iinfo(np.int64).min

#: one decoded frame: kind, local receive ns, exchange ms (-1 if none), symbol, source id,
#: and four values (bookTicker: b, B, a, A; trade: p, q, nan, nan; others: -1 / nan)
Record = tuple[int, int, int, str, int, float, float, float, float]

# Strict layouts of the common frames (RE2 syntax, applied column-wise by pyarrow): a line that
# matches is valid JSON whose fields decode exactly as the json path decodes them.
_N = r"\d{1,20}(?:\.\d{1,20})?"
_BOOK_STRICT = (
    r'^\d{1,19} \{"stream":"[a-z0-9]+@bookTicker","data":\{(?:"e":"bookTicker",)?'
    r'"u":\d{1,15},"s":"[A-Z0-9]+",'
    rf'"b":"{_N}","B":"{_N}","a":"{_N}","A":"{_N}"'
    r'(?:,"T":\d{1,13},"E":\d{1,13})?\}\}$'
)
_BOOK_EXTRACT = (
    r'^(?P<local>\d+) \{"stream":"[a-z0-9]+@bookTicker","data":\{(?:"e":"bookTicker",)?'
    r'"u":(?P<u>\d+),"s":"(?P<s>[A-Z0-9]+)",'
    r'"b":"(?P<b>[0-9.]+)","B":"(?P<B>[0-9.]+)","a":"(?P<a>[0-9.]+)","A":"(?P<A>[0-9.]+)"'
    r'(?:,"T":(?P<T>\d+),"E":(?P<E>\d+))?\}\}$'
)
_TRADE_STRICT = (
    r'^\d{1,19} \{"stream":"[a-z0-9]+@trade","data":\{"e":"trade","E":\d{1,13},'
    r'(?:"T":\d{1,13},)?"s":"[A-Z0-9]+","t":\d{1,18},'
    rf'"p":"{_N}","q":"{_N}"'
    r'(?:,"T":\d{1,13})?(?:,"X":"[A-Z_]*")?,"m":(?:true|false)(?:,"M":(?:true|false))?\}\}$'
)
_TRADE_EXTRACT = (
    r'^(?P<local>\d+) \{"stream":"[a-z0-9]+@trade","data":\{"e":"trade","E":(?P<E>\d+),'
    r'(?:"T":\d+,)?"s":"(?P<s>[A-Z0-9]+)","t":(?P<t>\d+),'
    r'"p":"(?P<p>[0-9.]+)","q":"(?P<q>[0-9.]+)"'
)
# depth diffs are recognized by their header and ending, never decoded (large and unused)
_DEPTH_HEAD = (
    r'^(?P<local>\d{1,19}) \{"stream":"[a-z0-9]+@depth[^"]{0,16}","data":\{"e":"depthUpdate",'
    r'"E":(?P<E>\d{1,13}),'
)
_DEPTH_END = "]}}"
_DEPTH_HEAD_RE = re.compile(_DEPTH_HEAD)


class FrameError(ValueError):
    """A frame that cannot become ticks; ``reason`` is a code from REJECT_REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class BinanceCaptureResult(ValidationResult):
    """:class:`ValidationResult` plus what else the capture held.

    ``frames``: lines per frame kind (``bookTicker``, ``trade``, ``depth``, ``snapshot``,
    ``other``), ``blank`` lines and ``rejected`` lines (unparseable / wrong_type; duplicates are
    counted with their kind). ``clock``: statistics of ``E - local receive time`` in ms over the
    frames with an exchange time (``n``, ``min``, ``p1``, ``median``, ``p99``, ``max``).
    """

    frames: dict[str, int] = field(default_factory=dict)
    clock: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------- decoding one line


def _int_field(data: dict[str, Any], key: str, limit: int) -> int:
    if key not in data:
        raise FrameError("unparseable", f"field {key!r} missing")
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < limit:
        raise FrameError("wrong_type", f"field {key!r} is not an integer id in range: {v!r}")
    return v


def _num_field(data: dict[str, Any], key: str) -> float:
    if key not in data:
        raise FrameError("unparseable", f"field {key!r} missing")
    v = data[key]
    if v is None:
        return _NAN  # null -> NaN -> nan_or_inf in validation
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise FrameError("wrong_type", f"field {key!r} is not a number: {v[:40]!r}") from None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        try:
            return float(v)
        except OverflowError:
            return math.inf if v > 0 else -math.inf
    raise FrameError("wrong_type", f"field {key!r} is not a number: {str(v)[:40]!r}")


def _symbol(data: dict[str, Any]) -> str:
    s = data.get("s")
    if s is None:
        return ""  # -> empty_symbol in validation
    if not isinstance(s, str):
        raise FrameError("wrong_type", f"symbol is not a string: {str(s)[:40]!r}")
    return s.strip().upper()


def _exchange_ms(data: dict[str, Any], strict: bool) -> int:
    for key in ("E", "T"):
        if key in data:
            v = data[key]
            if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_MS:
                return v
            if strict:
                raise FrameError("wrong_type", f"field {key!r} is not a time in ms: {v!r}")
            return -1
    return -1


def _split_line(line: str, recv_ns: int | None, allow_raw: bool) -> tuple[int, str]:
    if allow_raw and line.startswith("{"):
        return (time.time_ns() if recv_ns is None else int(recv_ns)), line
    head, sep, body = line.partition(" ")
    if not sep:
        raise FrameError("unparseable", "no '<receive ns> <frame>' separator")
    if not (head.isascii() and head.isdigit()) or int(head) > MAX_NS:
        raise FrameError("wrong_type", f"receive time is not an integer ns: {head[:40]!r}")
    return int(head), body


def _decode_json(line: str, recv_ns: int | None, allow_raw: bool) -> Record:
    local, body = _split_line(line, recv_ns, allow_raw)
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FrameError("unparseable", f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise FrameError("unparseable", "frame is not a JSON object")
    kind: int
    if "stream" in obj:
        stream, data = obj["stream"], obj.get("data")
        if not isinstance(stream, str) or not isinstance(data, dict):
            raise FrameError("unparseable", "envelope without a stream name and a data object")
        name = stream.partition("@")[2].partition("@")[0]
        if name.startswith("depth"):
            kind = DEPTH
        else:
            kind = {"bookTicker": BOOK_TICKER, "trade": TRADE}.get(name, OTHER)
    elif "lastUpdateId" in obj:  # REST depth snapshot
        kind, data = SNAPSHOT, obj
    elif "e" in obj:  # un-enveloped event (/ws/<stream> connection)
        e = obj["e"] if isinstance(obj["e"], str) else ""
        kind = {"bookTicker": BOOK_TICKER, "trade": TRADE, "depthUpdate": DEPTH}.get(e, OTHER)
        data = obj
    elif all(k in obj for k in ("u", "b", "B", "a", "A")):  # un-enveloped spot bookTicker
        kind, data = BOOK_TICKER, obj
    elif "result" in obj or "id" in obj:  # subscription reply
        kind, data = OTHER, obj
    else:
        raise FrameError("unparseable", "not a Binance frame (no stream, event type or book)")
    if kind == BOOK_TICKER:
        return (
            kind,
            local,
            _exchange_ms(data, strict=True),
            _symbol(data),
            _int_field(data, "u", MAX_UPDATE_ID),
            _num_field(data, "b"),
            _num_field(data, "B"),
            _num_field(data, "a"),
            _num_field(data, "A"),
        )
    if kind == TRADE:
        return (
            kind,
            local,
            _exchange_ms(data, strict=True),
            _symbol(data),
            _int_field(data, "t", MAX_ID),
            _num_field(data, "p"),
            _num_field(data, "q"),
            _NAN,
            _NAN,
        )
    return (kind, local, _exchange_ms(data, strict=False), "", -1, _NAN, _NAN, _NAN, _NAN)


def scan_frame(line: str | bytes, recv_ns: int | None = None, allow_raw: bool = True) -> Record:
    """Decode one capture line (or one raw websocket frame) into a :data:`Record`.

    Raises :class:`FrameError` (a ``ValueError``) with reason ``unparseable`` or ``wrong_type``.
    A raw frame (starting with ``{``) takes ``recv_ns`` (default: now) as its receive time;
    with ``allow_raw=False`` (capture files) it is ``unparseable``. Depth frames are recognized
    by their header and ending without being decoded, as the file reader does.
    """
    if isinstance(line, (bytes, bytearray, memoryview)):
        try:
            line = bytes(line).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FrameError("unparseable", f"invalid UTF-8: {exc}") from None
    line = line.rstrip("\r\n")
    if line.endswith(_DEPTH_END):
        m = _DEPTH_HEAD_RE.match(line)
        if m is not None:
            local, exch = int(m["local"]), int(m["E"])
            if local <= MAX_NS and exch <= MAX_MS:
                return (DEPTH, local, exch, "", -1, _NAN, _NAN, _NAN, _NAN)
    return _decode_json(line, recv_ns, allow_raw)


# ---------------------------------------------------------------- streaming (live) path


def _book_ok(
    b: float, bs: float, a: float, as_: float, rules: ValidationConfig = DEFAULT_RULES
) -> bool:
    """A book a trade may carry: finite, positive, not crossed, inside the plausibility bounds."""
    if not (all(math.isfinite(v) and v > 0 for v in (b, bs, a, as_)) and b <= a):
        return False
    return rules.min_price <= b and a <= rules.max_price and max(bs, as_) <= rules.max_size


class _SymbolState:
    __slots__ = ("last_seq", "book", "seen")

    def __init__(self) -> None:
        self.last_seq = 0
        self.book: tuple[float, float, float, float] | None = None
        # recent source ids per stream (bookTicker, trade): a set and its insertion order
        self.seen: tuple[tuple[set[int], deque[int]], ...] = ((set(), deque()), (set(), deque()))


class BinanceBookState:
    """What one connection carries from frame to frame: books, seq, seen ids, clock offset.

    Feed frames in arrival order to :meth:`process` (or :func:`parse_binance_frame` with
    ``state=``): it gives the same ticks (ts, seq, carried book) as :func:`read_binance_capture`
    gives for the same lines before validation. Duplicates are looked up among the last
    ``dedupe_window`` ids per symbol and stream (the file reader checks the whole file).
    """

    def __init__(
        self,
        clock: Clock = "exchange",
        dedupe_window: int = 100_000,
        rules: ValidationConfig = DEFAULT_RULES,
    ) -> None:
        if clock not in ("exchange", "local"):
            raise ValueError(f"clock must be 'exchange' or 'local', not {clock!r}")
        self.clock: Clock = clock
        self.rules = rules
        self.dedupe_window = int(dedupe_window)
        self.max_offset_ns: int | None = None  # max(E - local) seen so far
        self.frames: dict[str, int] = dict.fromkeys(KIND_NAMES, 0)
        self.symbols: dict[str, _SymbolState] = {}

    def book(self, symbol: str) -> tuple[float, float, float, float] | None:
        """The current (bid, bid_size, ask, ask_size) of ``symbol``, or None."""
        st = self.symbols.get(symbol)
        return None if st is None else st.book

    def process(self, line: str | bytes, recv_ns: int | None = None) -> list[dict[str, Any]]:
        """Canonical tick dicts for one frame ([] for depth and other skipped frames).

        Raises :class:`FrameError` (a ``ValueError`` with ``.reason``) for an unparseable,
        wrongly typed or duplicate frame; the state is then unchanged (except that a duplicate's
        valid exchange time still feeds the clock offset, as in the file reader).
        """
        kind, local, exch, sym, uid, v1, v2, v3, v4 = scan_frame(line, recv_ns)
        self.frames[KIND_NAMES[kind]] += 1
        if self.clock == "local":
            ts_ns = local
        elif exch >= 0:
            ts_ns = exch * 1_000_000
        else:
            ts_ns = local if self.max_offset_ns is None else local + self.max_offset_ns
        if exch >= 0:
            off = exch * 1_000_000 - local
            if self.max_offset_ns is None or off > self.max_offset_ns:
                self.max_offset_ns = off
        if kind != BOOK_TICKER and kind != TRADE:
            return []
        st = self.symbols.get(sym)
        if st is None:
            st = self.symbols[sym] = _SymbolState()
        ids, order = st.seen[kind]
        if uid in ids:
            name = "update" if kind == BOOK_TICKER else "trade"
            raise FrameError("duplicate", f"{name} id {uid} of {sym!r} seen before")
        ids.add(uid)
        order.append(uid)
        if len(order) > self.dedupe_window:
            ids.discard(order.popleft())
        ts = pd.Timestamp(min(max(ts_ns, 0), MAX_NS), tz="UTC")
        if kind == BOOK_TICKER:
            st.last_seq = max(st.last_seq + 1, uid << SEQ_SHIFT)
            if _book_ok(v1, v2, v3, v4, self.rules):
                st.book = (v1, v2, v3, v4)
            return [_tick(sym, ts, st.last_seq, (v1, v2, v3, v4), _NAN, 0.0)]
        st.last_seq += 1
        return [_tick(sym, ts, st.last_seq, st.book, v1, v2)]


def _tick(
    sym: str,
    ts: pd.Timestamp,
    seq: int,
    book: tuple[float, float, float, float] | None,
    price: float,
    size: float,
) -> dict[str, Any]:
    b = book if book is not None else (_NAN, _NAN, _NAN, _NAN)
    return {
        "symbol": sym,
        "ts": ts,
        "seq": seq,
        "bid": b[0],
        "ask": b[2],
        "bid_size": b[1],
        "ask_size": b[3],
        "price": price,
        "size": size,
    }


def parse_binance_frame(
    line: str | bytes,
    state: BinanceBookState | None = None,
    recv_ns: int | None = None,
) -> list[dict[str, Any]]:
    """Canonical tick dicts (keys = TICK_COLUMNS) for one capture line or raw websocket frame.

    ``line`` is ``"<receive ns> <frame JSON>"`` or the frame JSON alone (then ``recv_ns``, or
    now, is its receive time). Pass the connection's :class:`BinanceBookState` so that trades
    carry the book, seq continues and duplicates are caught; without one the frame is decoded
    in isolation (a trade carries no book and gets seq 1). ``ts`` is a UTC ``pd.Timestamp``;
    a missing price or book value is NaN (size 0 on a quote). Returns [] for depth, snapshot
    and other frames; raises :class:`FrameError` (a ``ValueError`` whose ``.reason`` is a code of
    REJECT_REASONS) on bad input.
    """
    return (state if state is not None else BinanceBookState()).process(line, recv_ns)


# ---------------------------------------------------------------- file (batch) path


@dataclass
class _Scan:
    """Decoded frames of a file, column-wise; one entry per line (kind -1: none)."""

    kind: np.ndarray
    local: np.ndarray
    exch: np.ndarray
    sym: np.ndarray
    uid: np.ndarray
    vals: list[np.ndarray]
    bad_pos: list[int]
    bad_reason: list[str]
    bad_raw: list[str]
    blank: int

    @classmethod
    def empty(cls, n: int) -> _Scan:
        return cls(
            kind=np.full(n, -1, dtype=np.int8),
            local=np.zeros(n, dtype=np.int64),
            exch=np.full(n, -1, dtype=np.int64),
            sym=np.full(n, "", dtype=object),
            uid=np.full(n, -1, dtype=np.int64),
            vals=[np.full(n, np.nan) for _ in range(4)],
            bad_pos=[],
            bad_reason=[],
            bad_raw=[],
            blank=0,
        )

    def put(self, i: int, rec: Record) -> None:
        self.kind[i], self.local[i], self.exch[i], self.sym[i], self.uid[i] = rec[:5]
        for j in range(4):
            self.vals[j][i] = rec[5 + j]


def _read_bytes(path: Path) -> tuple[bytes, str | None]:
    """The decompressed bytes of a (possibly gzip) file, and an error if it was cut short."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw, None
    out: list[bytes] = []
    data = raw
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out.append(d.decompress(data))
            out.append(d.flush())
        except zlib.error as exc:
            return b"".join(out), f"corrupt gzip stream: {exc}"
        if not d.eof:
            return b"".join(out), "truncated gzip stream"
        data = d.unused_data
        if data and data[:2] != b"\x1f\x8b":
            return b"".join(out), "trailing bytes after the gzip stream"
    return b"".join(out), None


def _line_array(raw: bytes) -> tuple[pa.Array, dict[int, bytes]]:
    """All lines as an Arrow string array (trailing CR dropped) and the lines not UTF-8."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if not raw:
        return pa.array([], pa.large_string()), {}
    try:
        big = pa.array([raw], pa.large_binary()).cast(pa.large_string())
        lines = pc.split_pattern(big, "\n").values
        bad: dict[int, bytes] = {}
    except (pa.ArrowInvalid, UnicodeDecodeError):
        parts = raw.split(b"\n")
        texts: list[str] = []
        bad = {}
        for i, b in enumerate(parts):
            try:
                texts.append(b.decode("utf-8"))
            except UnicodeDecodeError:
                texts.append("")
                bad[i] = b
        lines = pa.array(texts, pa.large_string())
    return pc.utf8_rtrim(lines, characters="\r"), bad


def _ints(arr: pa.Array, dtype: Any = pa.int64()) -> np.ndarray:
    return np.asarray(pc.cast(arr, dtype).to_numpy(zero_copy_only=False))


def _scan_lines(lines: pa.Array, bad_utf8: dict[int, bytes]) -> _Scan:
    """Decode every line: the strict layouts column-wise, the rest through :func:`scan_frame`."""
    n = len(lines)
    sc = _Scan.empty(n)
    blank = np.asarray(
        pc.equal(pc.utf8_trim_whitespace(lines), "").to_numpy(zero_copy_only=False), dtype=bool
    )
    for i in bad_utf8:
        blank[i] = False
    done = blank.copy()
    sc.blank = int(blank.sum())

    def matching(pattern: str) -> np.ndarray:
        todo = np.flatnonzero(~done)
        if not len(todo):
            return todo
        sub = lines.take(pa.array(todo))
        m = np.asarray(
            pc.match_substring_regex(sub, pattern).to_numpy(zero_copy_only=False), dtype=bool
        )
        return todo[m]

    # bookTicker
    rows = matching(_BOOK_STRICT)
    if len(rows):
        ex = pc.extract_regex(lines.take(pa.array(rows)), _BOOK_EXTRACT)
        local = _ints(ex.field("local"), pa.uint64())
        u = _ints(ex.field("u"))
        e_str = ex.field("E")
        exch = _ints(pc.if_else(pc.equal(e_str, ""), "-1", e_str))
        ok = (local <= MAX_NS) & (u < MAX_UPDATE_ID) & (exch <= MAX_MS)
        rows, sel = rows[ok], np.flatnonzero(ok)
        sc.kind[rows] = BOOK_TICKER
        sc.local[rows] = local[ok].astype(np.int64)
        sc.exch[rows] = exch[ok]
        sc.uid[rows] = u[ok]
        sc.sym[rows] = ex.field("s").to_numpy(zero_copy_only=False)[sel]
        for j, name in enumerate(("b", "B", "a", "A")):
            sc.vals[j][rows] = _ints(ex.field(name), pa.float64())[sel]
        done[rows] = True
    # trade
    rows = matching(_TRADE_STRICT)
    if len(rows):
        ex = pc.extract_regex(lines.take(pa.array(rows)), _TRADE_EXTRACT)
        local = _ints(ex.field("local"), pa.uint64())
        exch = _ints(ex.field("E"))
        ok = (local <= MAX_NS) & (exch <= MAX_MS)
        rows, sel = rows[ok], np.flatnonzero(ok)
        sc.kind[rows] = TRADE
        sc.local[rows] = local[ok].astype(np.int64)
        sc.exch[rows] = exch[ok]
        sc.uid[rows] = _ints(ex.field("t"))[sel]
        sc.sym[rows] = ex.field("s").to_numpy(zero_copy_only=False)[sel]
        sc.vals[0][rows] = _ints(ex.field("p"), pa.float64())[sel]
        sc.vals[1][rows] = _ints(ex.field("q"), pa.float64())[sel]
        done[rows] = True
    # depth: header + ending
    todo = np.flatnonzero(~done)
    if len(todo):
        sub = lines.take(pa.array(todo))
        ends = np.asarray(pc.ends_with(sub, _DEPTH_END).to_numpy(zero_copy_only=False), dtype=bool)
        todo = todo[ends]
    if len(todo):
        ex = pc.extract_regex(lines.take(pa.array(todo)), _DEPTH_HEAD)
        valid = np.asarray(ex.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        rows, sub_ex = todo[valid], ex.filter(pa.array(valid))
        if len(rows):
            local = _ints(sub_ex.field("local"), pa.uint64())
            exch = _ints(sub_ex.field("E"))
            ok = (local <= MAX_NS) & (exch <= MAX_MS)
            rows = rows[ok]
            sc.kind[rows] = DEPTH
            sc.local[rows] = local[ok].astype(np.int64)
            sc.exch[rows] = exch[ok]
            done[rows] = True
    # everything else: one by one
    for i in np.flatnonzero(~done).tolist():
        line: str | bytes = bad_utf8[i] if i in bad_utf8 else lines[i].as_py()
        try:
            sc.put(i, scan_frame(line, allow_raw=False))
        except FrameError as exc:
            raw = line if isinstance(line, str) else line.decode("utf-8", "replace")
            sc.bad_pos.append(i + 1)
            sc.bad_reason.append(exc.reason)
            sc.bad_raw.append(raw[:1000])
    return sc


def _group_cummax(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    return np.asarray(pd.Series(values).groupby(codes, sort=False).cummax().to_numpy())


def _build_ticks(
    sc: _Scan, clock: Clock, rules: ValidationConfig = DEFAULT_RULES
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Vectorized equivalent of feeding the lines through :meth:`BinanceBookState.process`.

    Returns the tick frame (arrival order), the line index of each tick and the line indices
    of duplicate frames.
    """
    kind, local, exch = sc.kind, sc.local, sc.exch
    framed = kind >= 0
    has_e = framed & (exch >= 0)
    if clock == "local":
        ts = local
    else:
        # exchange time, else local + running max of (E - local) over earlier frames
        off = np.where(has_e, exch * 1_000_000 - local, _I64_MIN)
        run = np.maximum.accumulate(off) if len(off) else off
        seen_e = np.maximum.accumulate(has_e) if len(has_e) else has_e
        shifted = np.where(run > MAX_NS - local, MAX_NS, local + run)  # no int64 wrap
        ts = np.where(has_e, exch * 1_000_000, np.where(seen_e, shifted, local))
    rows = np.flatnonzero((kind == BOOK_TICKER) | (kind == TRADE))
    sym, uid, k = sc.sym[rows], sc.uid[rows], kind[rows]
    codes = pd.factorize(sym)[0]
    dup = pd.DataFrame({"c": codes, "k": k, "u": uid}).duplicated(keep="first").to_numpy()
    dup_rows = rows[dup]
    keep = ~dup
    rows, sym, uid, k, codes = rows[keep], sym[keep], uid[keep], k[keep], codes[keep]
    b, bs, a, as_ = (v[rows] for v in sc.vals)
    m = len(rows)
    is_bt = k == BOOK_TICKER
    # seq_j = max(seq_{j-1} + 1, c_j), seq_{-1} = 0, c = u << 16 for bookTickers, -inf for
    # trades; closed form per symbol: j + max(1, cummax(c_i - i for i <= j))
    j = pd.Series(np.ones(m, dtype=np.int64)).groupby(codes, sort=False).cumsum().to_numpy() - 1
    c = np.where(is_bt, np.where(is_bt, uid, 0) << SEQ_SHIFT, _I64_MIN // 2)
    seq = j + np.maximum(1, _group_cummax(c - j, codes))
    # book carry: a trade takes the latest valid bookTicker of its symbol before it
    with np.errstate(invalid="ignore"):
        good = is_bt & np.isfinite(b) & np.isfinite(bs) & np.isfinite(a) & np.isfinite(as_)
        good &= (b > 0) & (bs > 0) & (a > 0) & (as_ > 0) & (b <= a)
        good &= (b >= rules.min_price) & (a <= rules.max_price)
        good &= (bs <= rules.max_size) & (as_ <= rules.max_size)
    src = _group_cummax(np.where(good, np.arange(m), -1), codes)  # per symbol: -1 or its row
    has_book = src >= 0
    srcc = np.where(has_book, src, 0)

    def book(x: np.ndarray) -> np.ndarray:
        carried = np.where(has_book, x[srcc], np.nan) if m else x
        return np.where(is_bt, x, carried)

    frame = pd.DataFrame(
        {
            "symbol": sym,
            "ts": pd.to_datetime(np.clip(ts[rows], 0, None), unit="ns", utc=True),
            "seq": seq,
            "bid": book(b),
            "ask": book(a),
            "bid_size": book(bs),
            "ask_size": book(as_),
            "price": np.where(is_bt, np.nan, b),
            "size": np.where(is_bt, 0.0, bs),
        },
        columns=list(TICK_COLUMNS),
    )
    return frame, rows, dup_rows


def _clock_stats(sc: _Scan) -> dict[str, float]:
    has_e = (sc.kind >= 0) & (sc.exch >= 0)
    off = (sc.exch[has_e] * 1_000_000 - sc.local[has_e]) / 1e6
    if not len(off):
        return {"n": 0}
    q = np.percentile(off, [0, 1, 50, 99, 100])
    keys = ("min", "p1", "median", "p99", "max")
    return {"n": int(len(off)), **{key: float(v) for key, v in zip(keys, q, strict=True)}}


def _scan_result(
    sc: _Scan,
    source: str,
    out_of_order_tolerance: pd.Timedelta | str,
    clock: Clock,
    rules: ValidationConfig | None = None,
) -> BinanceCaptureResult:
    rules = rules or DEFAULT_RULES
    frame, rows, dup_rows = _build_ticks(sc, clock, rules)
    parts = [make_quarantine(source, sc.bad_pos, sc.bad_reason, raws=sc.bad_raw)]
    if len(dup_rows):
        names = np.array(KIND_NAMES, dtype=object)[sc.kind[dup_rows]]
        parts.append(
            make_quarantine(
                source,
                dup_rows + 1,
                "duplicate",
                raws=[f"{n} id {u}" for n, u in zip(names, sc.uid[dup_rows], strict=True)],
                symbols=sc.sym[dup_rows],
                ts=pd.to_datetime(np.clip(sc.exch[dup_rows], 0, None), unit="ms", utc=True),
            )
        )
    nonempty = [q for q in parts if not q.empty]
    prior = pd.concat(nonempty, ignore_index=True) if nonempty else empty_quarantine()
    res = validate_ticks(
        frame,
        source,
        positions=rows + 1,
        out_of_order_tolerance=out_of_order_tolerance,
        prior_quarantine=prior,
        rules=rules,
    )
    q = res.quarantine.sort_values("position", kind="stable").reset_index(drop=True)
    frames = {name: int((sc.kind == i).sum()) for i, name in enumerate(KIND_NAMES)}
    frames["blank"] = sc.blank
    frames["rejected"] = len(sc.bad_pos)
    return BinanceCaptureResult(
        res.ticks, q, reason_counts(q), frames=frames, clock=_clock_stats(sc)
    )


def read_binance_capture(
    path: Path | str,
    out_of_order_tolerance: pd.Timedelta | str = "1s",
    clock: Clock = "exchange",
    rules: ValidationConfig | None = None,
) -> BinanceCaptureResult:
    """Read one capture file (gzip or plain text) into validated canonical ticks.

    Never raises on bad content (only on a missing/unreadable file): bad lines are quarantined
    with their 1-based line number. ``result.frames`` counts the frames per kind and
    ``result.clock`` summarises ``E - local receive time`` in ms. The whole file is held in
    memory (these captures are minutes long; a full day of BTCUSDT futures would be GBs).
    """
    if clock not in ("exchange", "local"):
        raise ValueError(f"clock must be 'exchange' or 'local', not {clock!r}")
    path = Path(path)
    t0 = time.perf_counter()
    raw, err = _read_bytes(path)
    lines, bad_utf8 = _line_array(raw)
    res = _scan_result(
        _scan_lines(lines, bad_utf8), str(path), out_of_order_tolerance, clock, rules
    )
    if err is not None:
        extra = make_quarantine(str(path), [len(lines) + 1], "unparseable", raws=[err])
        res.quarantine = pd.concat([res.quarantine, extra], ignore_index=True)
        res.counts = reason_counts(res.quarantine)
        log.warning("%s: %s after line %d", path, err, len(lines))
    dt = time.perf_counter() - t0
    log.info(
        "%s: %d ticks, %d quarantined %s, frames %s in %.2f s (%.0f ticks/s); "
        "E - local receive (ms): %s",
        path.name,
        res.n_valid,
        res.n_rejected,
        res.counts,
        res.frames,
        dt,
        res.n_valid / dt if dt > 0 else 0.0,
        res.clock,
    )
    return res


def read_binance_lines(
    lines: list[str] | list[bytes] | list[str | bytes],
    source: str = "binance",
    out_of_order_tolerance: pd.Timedelta | str = "1s",
    clock: Clock = "exchange",
    rules: ValidationConfig | None = None,
) -> BinanceCaptureResult:
    """:func:`read_binance_capture` over capture lines already in memory (numbered from 1)."""
    raw = b"\n".join(
        x if isinstance(x, bytes) else x.encode("utf-8", "surrogatepass") for x in lines
    )
    arr, bad = _line_array(raw + b"\n" if lines else b"")
    if len(arr) != len(lines):  # a line held a newline itself: fall back to one by one
        sc = _Scan.empty(len(lines))
        for i, line in enumerate(lines):
            if not (line.strip() if isinstance(line, str) else bytes(line).strip()):
                sc.blank += 1
                continue
            try:
                sc.put(i, scan_frame(line, allow_raw=False))
            except FrameError as exc:
                sc.bad_pos.append(i + 1)
                sc.bad_reason.append(exc.reason)
                text = line if isinstance(line, str) else bytes(line).decode("utf-8", "replace")
                sc.bad_raw.append(text[:1000])
        return _scan_result(sc, source, out_of_order_tolerance, clock, rules)
    return _scan_result(_scan_lines(arr, bad), source, out_of_order_tolerance, clock, rules)
