"""The canonical tick: the one shape every reader produces and everything downstream reads.

One row per market event (a quote change, a trade, or both at once):

=========  ======================  ==================================================
column     type                    meaning
=========  ======================  ==================================================
symbol     string                  instrument id, upper case (``AIG``, ``BTCUSDT``)
ts         timestamp[ns, UTC]      when the event happened (exchange/vendor time)
seq        int64                   per-symbol sequence number, strictly increasing in
                                   source order; unique per (symbol, seq). Used for
                                   de-duplication on the bus and in the tick store.
bid, ask   float64                 top of book *after* the event; null when the
                                   source has no book yet (trades-only symbols, the
                                   first trades of a day)
bid_size,  float64                 sizes at the top of book (null with the price)
ask_size
price      float64                 the trade price; null on a quote-only event
size       float64                 the trade size; 0 on a quote-only event
=========  ======================  ==================================================

``seq`` is the one addition to the contract in ARCHITECTURE.md: sources with their own ids
(Binance update / trade ids) keep them; sources without (vendor files, CSV) derive it from the
timestamp and the row's position (``ts_ms * 1000 + k``), so re-reading the same file yields the
same ``seq`` and re-ingesting a day is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from tickml.validation import (
    DEFAULT_RULES,
    ROW_CHECKS,
    ValidationConfig,
    price_jump_mask,
    reference_price,
    row_codes,
)

TICK_COLUMNS: tuple[str, ...] = (
    "symbol",
    "ts",
    "seq",
    "bid",
    "ask",
    "bid_size",
    "ask_size",
    "price",
    "size",
)
FLOAT_COLUMNS: tuple[str, ...] = ("bid", "ask", "bid_size", "ask_size", "price", "size")

TICK_SCHEMA = pa.schema(
    [
        pa.field("symbol", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("bid", pa.float64()),
        pa.field("ask", pa.float64()),
        pa.field("bid_size", pa.float64()),
        pa.field("ask_size", pa.float64()),
        pa.field("price", pa.float64()),
        pa.field("size", pa.float64()),
    ]
)

QUARANTINE_COLUMNS: tuple[str, ...] = ("source", "position", "reason", "symbol", "ts", "raw")

#: Every reason a tick can be rejected for, with what it means. Readers and the validator use
#: only these codes, so reports and the quarantine table stay comparable across sources.
REJECT_REASONS: dict[str, str] = {
    "unparseable": "the row could not be split into the expected fields (wrong column count, "
    "bad encoding, broken JSON)",
    "wrong_type": "a field that must be numeric or a timestamp does not parse as one",
    "empty_symbol": "symbol is missing or blank",
    "bad_symbol": "symbol outside the allowed characters (A-Z 0-9 . _ - + = ^ : #, first a "
    "letter, digit or ^, no '..') or longer than 32 characters (tickml.validation)",
    "nan_or_inf": "a required value is NaN or infinite (a trade without a price, a book side "
    "with a price but no size, or any infinity)",
    "non_positive": "a price or size that must be > 0 is zero or negative",
    "out_of_range": "a price, size or timestamp outside the plausibility bounds "
    "(tickml.validation.ValidationConfig)",
    "crossed_book": "bid > ask (a locked book, bid == ask, is kept)",
    "price_jump": "price more than jump_factor times above or below the median of the "
    "symbol's neighbouring ticks (tickml.validation)",
    "out_of_order": "timestamp earlier than the symbol's latest by more than the tolerance",
    "duplicate": "same (symbol, seq) as an earlier tick, or an exact repeat of a row",
    "empty_event": "neither a trade nor any book side: nothing happened",
    "vendor_suspicious": "flagged as likely erroneous by the data vendor",
}


@dataclass
class ValidationResult:
    """Valid ticks (canonical, sorted by symbol then ts then seq) and the quarantined rest."""

    ticks: pd.DataFrame
    quarantine: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def n_valid(self) -> int:
        return len(self.ticks)

    @property
    def n_rejected(self) -> int:
        return len(self.quarantine)


def empty_ticks() -> pd.DataFrame:
    return TICK_SCHEMA.empty_table().to_pandas()


def empty_quarantine() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source": pd.Series([], dtype=object),
            "position": pd.Series([], dtype="int64"),
            "reason": pd.Series([], dtype=object),
            "symbol": pd.Series([], dtype=object),
            "ts": pd.Series([], dtype="datetime64[ns, UTC]"),
            "raw": pd.Series([], dtype=object),
        }
    )


def make_quarantine(
    source: str,
    positions: np.ndarray | list[int],
    reasons: np.ndarray | list[str] | str,
    raws: np.ndarray | list[str] | None = None,
    symbols: np.ndarray | list[str] | str | None = None,
    ts: pd.Series | np.ndarray | None = None,
) -> pd.DataFrame:
    """Build quarantine records: where the row was, why it was rejected, and what it held."""
    n = len(positions)
    if n == 0:
        return empty_quarantine()
    if isinstance(reasons, str):
        reasons = [reasons] * n
    if symbols is None or isinstance(symbols, str):
        symbols = np.full(n, symbols, dtype=object)
    unknown = set(pd.unique(np.asarray(reasons, dtype=object))) - set(REJECT_REASONS)
    if unknown:
        raise ValueError(f"unknown reject reasons {sorted(unknown)}")
    if ts is None:
        ts_values = pd.DatetimeIndex([pd.NaT] * n, tz="UTC")
    else:
        ts_values = pd.DatetimeIndex(pd.to_datetime(pd.Series(np.asarray(ts)), utc=True))
    out = pd.DataFrame(
        {
            "source": [source] * n,
            "position": np.asarray(positions, dtype="int64"),
            "reason": np.asarray(reasons, dtype=object),
            "symbol": np.asarray(symbols, dtype=object),
            "raw": np.asarray(raws if raws is not None else [""] * n, dtype=object),
        }
    )
    out.insert(4, "ts", ts_values.astype("datetime64[ns, UTC]"))
    return out


def reason_counts(quarantine: pd.DataFrame) -> dict[str, int]:
    if quarantine.empty:
        return {}
    return {str(k): int(v) for k, v in quarantine["reason"].value_counts().sort_index().items()}


def raw_repr(frame: pd.DataFrame, idx: np.ndarray) -> list[str]:
    """The rows at positions ``idx`` as the quarantine's ``raw`` text (tick columns, CSV)."""
    sub = frame.iloc[idx]
    cols = [c for c in TICK_COLUMNS if c in sub.columns]
    return [
        ",".join("" if pd.isna(v) else str(v) for v in row)
        for row in sub[cols].itertuples(index=False, name=None)
    ]


def validate_ticks(
    frame: pd.DataFrame,
    source: str,
    positions: np.ndarray | None = None,
    out_of_order_tolerance: pd.Timedelta | str = "0s",
    prior_quarantine: pd.DataFrame | None = None,
    rules: ValidationConfig | None = None,
) -> ValidationResult:
    """Check canonical ticks row by row and split them into valid ticks and quarantine records.

    ``frame`` must already have the canonical columns with canonical dtypes (readers coerce
    and quarantine ``wrong_type`` / ``unparseable`` rows themselves). ``positions`` are the rows'
    positions in the source (line numbers, frame numbers), kept in the quarantine. Row checks
    (:func:`tickml.validation.row_reasons`: symbol, NaN/inf, sign, plausibility ranges of
    ``rules``, crossed book, empty event, missing time) come first, then ``price_jump`` among
    the rows that passed, then ``out_of_order`` and ``duplicate``.

    Out-of-order: see :func:`out_of_order_mask`; ticks out of order by no more than
    ``out_of_order_tolerance`` (>= 0) are kept and re-sorted into time order.
    """
    n = len(frame)
    rules = rules or DEFAULT_RULES
    if positions is None:
        positions = np.arange(n, dtype=np.int64)
    positions = np.asarray(positions, dtype=np.int64)
    missing = [c for c in TICK_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: canonical columns missing: {missing}")
    tol = check_tolerance(out_of_order_tolerance)
    frame = frame.reset_index(drop=True)
    sym = frame["symbol"]
    vals = {c: frame[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in FLOAT_COLUMNS}
    ts = frame["ts"]
    ts_ns = ts.to_numpy(dtype="datetime64[ns]").view(np.int64) if n else np.zeros(0, np.int64)
    sym_codes, uniques = pd.factorize(sym, use_na_sentinel=True)
    code = row_codes(sym.to_numpy(dtype=object), ts_ns, vals, rules,
                     factorized=(sym_codes, list(uniques)))
    names = (*ROW_CHECKS, "price_jump", "out_of_order", "duplicate")

    def mark(mask: np.ndarray, name: str) -> None:
        code[mask & (code == 0)] = names.index(name)

    if n:
        mark(price_jump_mask(sym_codes, reference_price(vals), code == 0, rules), "price_jump")
        keys = np.where(sym_codes < 0, len(uniques), sym_codes)  # null symbols: one group
        mark(out_of_order_mask(ts_ns, sym.to_numpy(), code == 0, tol, keys=keys),
             "out_of_order")
        ok = code == 0
        seq = frame["seq"].to_numpy()
        dup = np.zeros(n, dtype=bool)
        dup[ok] = pd.DataFrame({"s": sym_codes[ok], "q": seq[ok]}).duplicated().to_numpy()
        mark(dup, "duplicate")
    reason = np.array(names, dtype=object)[code]

    bad = np.flatnonzero(reason != "")
    quarantine = make_quarantine(
        source,
        positions[bad],
        reason[bad],
        raws=raw_repr(frame, bad),
        symbols=sym.iloc[bad].astype(object).to_numpy(),
        ts=ts.iloc[bad].to_numpy() if len(bad) else None,
    )
    if prior_quarantine is not None and not prior_quarantine.empty:
        quarantine = pd.concat([prior_quarantine, quarantine], ignore_index=True)
    good = frame.loc[reason == "", list(TICK_COLUMNS)]
    good = good.sort_values(["symbol", "ts", "seq"], kind="stable").reset_index(drop=True)
    good = coerce_ticks(good)
    return ValidationResult(good, quarantine, reason_counts(quarantine))


def check_tolerance(tolerance: pd.Timedelta | str) -> int:
    """An out-of-order tolerance in ns; ``ValueError`` unless it is a duration >= 0."""
    try:
        tol = pd.Timedelta(tolerance)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"out-of-order tolerance {tolerance!r} is not a duration (e.g. 0s, 100ms, 1s)"
        ) from exc
    if pd.isna(tol) or tol < pd.Timedelta(0):
        raise ValueError(f"out-of-order tolerance {tolerance!r} must be a duration >= 0")
    return int(tol.value)


def out_of_order_mask(
    ts_ns: np.ndarray,
    symbols: np.ndarray,
    eligible: np.ndarray,
    tol: int,
    max_rounds: int = 4,
    keys: np.ndarray | None = None,
) -> np.ndarray:
    """Which ticks to reject so that each symbol's timestamps (in source order) never go back
    by more than ``tol`` ns.

    Two kinds of fault look alike: a *late* tick (back-dated: earlier than ticks before it) and
    a *future* tick (a typo like 2031: later than every tick after it). Rejecting everything
    below the running maximum handles the first but turns one future typo into the loss of the
    rest of the day. So per symbol and round, both candidate sets are computed, ticks below the
    running maximum of the ticks before them (late) and ticks above the running minimum of the
    ticks after them (future), and the smaller set is rejected; a final running-maximum pass
    guarantees the result is in order.
    """
    n = len(ts_ns)
    rejected = np.zeros(n, dtype=bool)
    if n == 0:
        return rejected
    if keys is None:  # symbol codes (``pd.factorize``) when not given
        keys, _ = pd.factorize(pd.Series(symbols, dtype=object).fillna(""))
    idx = np.flatnonzero(eligible)
    k, t = keys[idx], ts_ns[idx]
    same = k[1:] == k[:-1]
    n_keys = int(np.count_nonzero(np.bincount(k))) if len(k) else 0
    if (len(idx) - 1 - int(same.sum())) == max(n_keys - 1, 0) and not np.any(
        (t[1:] < t[:-1]) & same
    ):
        return rejected  # fast path: symbols in contiguous blocks, each already sorted
    lo, hi = np.iinfo(np.int64).min, np.iinfo(np.int64).max

    def late_future(active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        run_max = pd.Series(np.where(active, ts_ns, lo)).groupby(keys).cummax().to_numpy()
        prev_max = pd.Series(run_max).groupby(keys).shift(1, fill_value=lo).to_numpy()
        rev = pd.Series(np.where(active, ts_ns, hi)[::-1])
        run_min = rev.groupby(keys[::-1]).cummin().to_numpy()[::-1]
        next_min = pd.Series(run_min).groupby(keys).shift(-1, fill_value=hi).to_numpy()
        with np.errstate(over="ignore"):
            late = active & (ts_ns < prev_max - tol) & (prev_max != lo)
            future = active & (ts_ns > next_min + tol) & (next_min != hi)
        return late, future

    for _ in range(max_rounds):
        active = eligible & ~rejected
        late, future = late_future(active)
        if not late.any():
            break
        n_late = pd.Series(late).groupby(keys).transform("sum").to_numpy()
        n_future = pd.Series(future).groupby(keys).transform("sum").to_numpy()
        rejected |= np.where(n_future < n_late, future, late)
    late, _ = late_future(eligible & ~rejected)
    return rejected | late


def coerce_ticks(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the canonical columns and dtypes (no validation)."""
    out = pd.DataFrame(
        {
            "symbol": frame["symbol"].astype(object),
            "ts": pd.to_datetime(frame["ts"], utc=True).astype("datetime64[ns, UTC]"),
            "seq": frame["seq"].astype("int64"),
        }
    )
    for c in FLOAT_COLUMNS:
        out[c] = frame[c].astype("float64")
    out["size"] = out["size"].fillna(0.0)  # quote-only events carry size 0
    return out.reset_index(drop=True)


def ticks_to_arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(coerce_ticks(frame), schema=TICK_SCHEMA, preserve_index=False)


def derive_seq(ts_ns: np.ndarray, symbols: np.ndarray | None = None) -> np.ndarray:
    """Sequence numbers for sources without ids: ``ts_ms * 1000 + k`` (k-th tick in that ms).

    Deterministic for a given file, strictly increasing in time order per symbol, unique per
    symbol as long as fewer than 1000 events share one millisecond (checked).
    """
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    ms = ts_ns // 1_000_000
    key = pd.DataFrame({"s": symbols if symbols is not None else 0, "ms": ms})
    k = key.groupby(["s", "ms"], sort=False).cumcount().to_numpy()
    if len(k) and k.max() >= 1000:
        raise ValueError("more than 1000 events in one millisecond for one symbol: give a seq")
    return ms * 1000 + k
