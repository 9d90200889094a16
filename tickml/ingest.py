"""Ingest one day from a tick source into the lake (and the Postgres tick store when configured).

A *source* is one of:

- ``simulator``: the seeded market simulator (no files needed; the demo's default);
- ``equity-ticks``: the US equity vendor files (``{symbol}/{YYYYMMDD}_{trade|quote}.zip``);
- ``binance``: raw Binance websocket captures (``<sym>_<YYYYMMDD>.gz``);
- ``canonical``: your own Parquet/CSV files in the canonical tick schema.

Every source yields a :class:`~tickml.schema.ValidationResult` per day: valid canonical ticks
plus quarantine records with reasons. This module is pure (no Dagster): the ``raw_ticks`` asset
and the ``tickml ingest`` command both call :func:`ingest_day`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tickml.days import DaySplit, split_days
from tickml.errors import UsageError
from tickml.lake import TickLake
from tickml.market import Market, utc_ns
from tickml.schema import (
    ValidationResult,
    check_tolerance,
    empty_quarantine,
    empty_ticks,
    reason_counts,
)
from tickml.sources import (
    DEFAULT_TOLERANCE,
    WHOLE_SOURCE_KINDS,
    check_kind,
    source_market,
)
from tickml.validation import DEFAULT_RULES, ValidationConfig, check_symbol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceSpec:
    """Where ticks come from. ``path`` is required for every kind but ``simulator``.

    ``validation``: the plausibility bounds readers apply (:mod:`tickml.validation`);
    ``market``: the run configuration's market section (None: the configuration has none,
    the source's own market applies: :func:`tickml.sources.source_market`)."""

    kind: str = "simulator"
    path: Path | None = None
    symbols: tuple[str, ...] | None = None
    out_of_order_tolerance: str | None = None  # None: the source's default (DEFAULT_TOLERANCE)
    sim: dict[str, Any] = field(default_factory=dict)
    validation: ValidationConfig = DEFAULT_RULES
    market: Market | None = None

    def __post_init__(self) -> None:
        check_kind(self.kind)
        if self.kind != "simulator":
            if self.path is None:
                raise ValueError(f"source {self.kind!r} needs a path (--ticks PATH)")
            if not Path(self.path).exists():
                raise FileNotFoundError(f"source {self.kind!r}: {self.path} does not exist")
        check_tolerance(self.tolerance)
        for s in self.symbols or ():
            check_symbol(s)

    @property
    def tolerance(self) -> str:
        return self.out_of_order_tolerance or DEFAULT_TOLERANCE[self.kind]

    @property
    def day_market(self) -> Market:
        """The market whose trading days the source's ticks are stored under."""
        return source_market(self.kind, self.market)


def available_days(spec: SourceSpec) -> list[dt.date]:
    """Days the source has rows for (the simulator: none listed, it makes any day).

    Binance and canonical sources are read whole once (cached in the process): a day is a day
    some tick or quarantine record belongs to (:mod:`tickml.days`)."""
    if spec.kind == "equity-ticks":
        from tickml.readers.equity import list_equity_days

        return list_equity_days(Path(str(spec.path)))
    if spec.kind in WHOLE_SOURCE_KINDS:
        return source_split(spec).days
    return []


def source_totals(spec: SourceSpec) -> tuple[int, int] | None:
    """(valid ticks, quarantine records) the reader returns for the whole source, for the
    sources read whole (None for the others, which are read one day at a time)."""
    if spec.kind not in WHOLE_SOURCE_KINDS:
        return None
    res = source_split(spec).result
    return res.n_valid, res.n_rejected


def simulated_days(start: dt.date, n_days: int) -> list[dt.date]:
    """``n_days`` weekdays from ``start`` on (the simulator trades Monday to Friday)."""
    out: list[dt.date] = []
    d = start
    while len(out) < n_days:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


def _binance_files(root: Path) -> list[tuple[Path, dt.date | None]]:
    """Every capture (a file, or ``*.gz`` in a folder) and the day its name carries."""
    files = [root] if root.is_file() else sorted(root.glob("*.gz"))
    out: list[tuple[Path, dt.date | None]] = []
    for f in files:
        m = re.search(r"(\d{8})", f.name)
        day = None
        if m:
            try:
                day = dt.datetime.strptime(m.group(1), "%Y%m%d").date()
            except ValueError:
                day = None
        out.append((f, day))
    return out


_SPLIT_CACHE: dict[tuple[Any, ...], DaySplit] = {}


def _fingerprint(files: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    stats = [(f, f.stat()) for f in files]
    return tuple((str(f), st.st_size, st.st_mtime_ns) for f, st in stats)


def source_split(spec: SourceSpec) -> DaySplit:
    """The whole source read once and split by day (cached while its files are unchanged)."""
    root = Path(str(spec.path))
    if spec.kind == "binance":
        named = _binance_files(root)
        files = [f for f, _ in named]
    else:
        from tickml.readers.canonical import source_files

        named, files = [], source_files(root)
    market = spec.day_market
    key = (spec.kind, str(root), spec.tolerance, spec.validation, market, _fingerprint(files))
    if key not in _SPLIT_CACHE:
        _SPLIT_CACHE.clear()  # one source at a time: a whole capture set can be large
        if spec.kind == "binance":
            res = _read_binance_all(files, spec)
        else:
            from tickml.readers.canonical import read_canonical

            res = read_canonical(
                files, out_of_order_tolerance=spec.tolerance, rules=spec.validation
            )
        file_days = {str(f): d for f, d in named if d is not None}
        _SPLIT_CACHE[key] = split_days(res, market, file_days, spec.validation)
    return _SPLIT_CACHE[key]


def _read_binance_all(files: Sequence[Path], spec: SourceSpec) -> ValidationResult:
    from tickml.readers.binance import read_binance_capture

    parts = [
        read_binance_capture(f, out_of_order_tolerance=spec.tolerance, rules=spec.validation)
        for f in files
    ]
    if not parts:
        return ValidationResult(empty_ticks(), empty_quarantine(), {})
    ticks = pd.concat([p.ticks for p in parts], ignore_index=True)
    ticks = ticks.sort_values(["symbol", "ts", "seq"], kind="stable").reset_index(drop=True)
    q = pd.concat([p.quarantine for p in parts], ignore_index=True)
    return ValidationResult(ticks, q, reason_counts(q))


def load_day(spec: SourceSpec, day: dt.date) -> ValidationResult:
    """Read (or simulate) one trading day of the source as validated canonical ticks.

    The sources read whole are split by the market's days; the equity files and the simulator
    deliver a day per call, which must be the market's day: a tick outside it is a market
    that conflicts with the source (:class:`~tickml.errors.UsageError`, one line)."""
    symbols = list(spec.symbols) if spec.symbols else None
    if spec.kind in WHOLE_SOURCE_KINDS:
        return source_split(spec).day(day, symbols)
    res: ValidationResult
    if spec.kind == "equity-ticks":
        from tickml.readers.equity import read_equity_day

        res = read_equity_day(
            Path(str(spec.path)), day, symbols, out_of_order_tolerance=spec.tolerance,
            rules=spec.validation,
        )
    else:
        from tickml.simulator import SimConfig, simulate_day

        ticks = simulate_day(SimConfig(**spec.sim, market=spec.day_market), day).ticks
        if symbols:
            ticks = ticks[ticks["symbol"].isin(symbols)].reset_index(drop=True)
        res = ValidationResult(ticks, empty_quarantine(), {})
    _check_in_day(spec, day, res.ticks)
    return res


def _check_in_day(spec: SourceSpec, day: dt.date, ticks: pd.DataFrame) -> None:
    market = spec.day_market
    try:
        market.check_in_day(utc_ns(ticks["ts"]), day)
    except ValueError as exc:
        raise UsageError(
            f"{spec.kind} {day}: {exc}: the market conflicts with the source, whose days are "
            "New York trading days; set market.tz to a time zone where they fall on the same "
            "date (America/New_York)"
        ) from None


@dataclass
class IngestSummary:
    day: dt.date
    source: str
    n_ticks: int
    n_symbols: int
    n_quarantined: int
    reasons: dict[str, int]
    per_symbol: dict[str, int]
    seconds: float
    stored_in_postgres: bool
    non_monotone_symbols: list[str]

    @property
    def quarantine_share(self) -> float:
        total = self.n_ticks + self.n_quarantined
        return self.n_quarantined / total if total else 0.0


def ingest_day(
    spec: SourceSpec, day: dt.date, lake: TickLake, store: Any | None = None
) -> IngestSummary:
    """Load one day, write ticks + quarantine to the lake and, if given, the Postgres store.

    The day is a trading day of ``spec.day_market`` in the lake, the store and the quarantine
    alike (:mod:`tickml.market`: (local midnight, next local midnight]).
    Idempotent: re-ingesting a day replaces exactly that day's lake partition and tick-store
    rows (only ``spec.symbols`` when given). All or nothing: the lake day is written aside first,
    then the store (one transaction), and only then swapped in; any failure leaves the lake
    and the store as they were.
    """
    t0 = time.perf_counter()
    res = load_day(spec, day)
    ticks = res.ticks
    market = spec.day_market
    staged = lake.stage_day(ticks, day, res.quarantine, symbols=spec.symbols, market=market)
    try:
        if store is not None:
            store.ensure_schema()
            with store.conn.transaction():  # ticks and quarantine: one transaction
                store.write_day(
                    ticks, day, symbols=spec.symbols, tz=market.tz,
                    whole_day=spec.symbols is None,  # as the lake: the day becomes `ticks`
                )
                if not res.quarantine.empty:
                    store.write_quarantine(
                        res.quarantine, replace_sources=sorted(set(res.quarantine["source"])),
                        day=day,
                    )
    except BaseException:
        staged.discard()
        if store is not None:
            store.forget_cached_state()
        raise
    staged.commit()
    per_symbol = {str(k): int(v) for k, v in ticks.groupby("symbol").size().items()}
    summary = IngestSummary(
        day=day,
        source=spec.kind,
        n_ticks=len(ticks),
        n_symbols=len(per_symbol),
        n_quarantined=len(res.quarantine),
        reasons=reason_counts(res.quarantine),
        per_symbol=per_symbol,
        seconds=time.perf_counter() - t0,
        stored_in_postgres=store is not None,
        non_monotone_symbols=non_monotone_symbols(ticks),
    )
    if store is not None:
        store.log_ingest(
            day=day, source=spec.kind, n_ticks=summary.n_ticks,
            n_quarantined=summary.n_quarantined, counts=summary.reasons,
        )
    log.info(
        "ingested %s %s: %d ticks, %d symbols, %d quarantined %s in %.1fs",
        spec.kind, day, summary.n_ticks, summary.n_symbols, summary.n_quarantined,
        summary.reasons, summary.seconds,
    )
    return summary


def non_monotone_symbols(ticks: pd.DataFrame) -> list[str]:
    """Symbols whose timestamps decrease anywhere (must be none in the lake)."""
    if ticks.empty:
        return []
    diff = ticks.groupby("symbol", sort=False)["ts"].diff()
    bad = ticks.loc[diff < pd.Timedelta(0), "symbol"]
    return sorted(set(bad.astype(str)))
