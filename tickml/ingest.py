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
from typing import Any, Literal

import pandas as pd

from tickml.lake import TickLake
from tickml.schema import ValidationResult, empty_quarantine, empty_ticks, reason_counts

log = logging.getLogger(__name__)

SourceKind = Literal["simulator", "equity-ticks", "binance", "canonical"]
SOURCE_KINDS: tuple[str, ...] = ("simulator", "equity-ticks", "binance", "canonical")

#: the exchange time zone each source's "day" is cut in
SESSION_TZ: dict[str, str] = {
    "simulator": "America/New_York",
    "equity-ticks": "America/New_York",
    "binance": "UTC",
    "canonical": "UTC",
}


#: out-of-order tolerance per source when none is given: Binance's bookTicker and trade streams
#: interleave up to ~30 ms out of exchange-time order; files and the simulator are sorted.
DEFAULT_TOLERANCE: dict[str, str] = {
    "simulator": "0s", "equity-ticks": "0s", "binance": "1s", "canonical": "0s",
}


@dataclass(frozen=True)
class SourceSpec:
    """Where ticks come from. ``path`` is required for every kind but ``simulator``."""

    kind: str = "simulator"
    path: Path | None = None
    symbols: tuple[str, ...] | None = None
    out_of_order_tolerance: str | None = None  # None: the source's default (DEFAULT_TOLERANCE)
    sim: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"unknown source {self.kind!r}; choose one of {SOURCE_KINDS}")
        if self.kind != "simulator":
            if self.path is None:
                raise ValueError(f"source {self.kind!r} needs a path (--ticks PATH)")
            if not Path(self.path).exists():
                raise FileNotFoundError(f"source {self.kind!r}: {self.path} does not exist")

    @property
    def tolerance(self) -> str:
        return self.out_of_order_tolerance or DEFAULT_TOLERANCE[self.kind]


def available_days(spec: SourceSpec) -> list[dt.date]:
    """Days the source has data for (the simulator: none listed, it makes any day)."""
    if spec.kind == "equity-ticks":
        from tickml.readers.equity import list_equity_days

        return list_equity_days(Path(str(spec.path)))
    if spec.kind == "binance":
        return sorted({d for _, d in _binance_files(Path(str(spec.path)))})
    if spec.kind == "canonical":
        ticks = _read_canonical_all(spec).ticks
        if ticks.empty:
            return []
        local = ticks["ts"].dt.tz_convert(SESSION_TZ["canonical"]).dt.date
        return sorted(set(local))
    return []


def simulated_days(start: dt.date, n_days: int) -> list[dt.date]:
    """``n_days`` weekdays from ``start`` on (the simulator trades Monday to Friday)."""
    out: list[dt.date] = []
    d = start
    while len(out) < n_days:
        if d.weekday() < 5:
            out.append(d)
        d += dt.timedelta(days=1)
    return out


def _binance_files(root: Path) -> list[tuple[Path, dt.date]]:
    files = [root] if root.is_file() else sorted(root.glob("*.gz"))
    out = []
    for f in files:
        m = re.search(r"(\d{8})", f.name)
        if m:
            out.append((f, dt.datetime.strptime(m.group(1), "%Y%m%d").date()))
    return out


_CANONICAL_CACHE: dict[tuple[str, str], ValidationResult] = {}


def _read_canonical_all(spec: SourceSpec) -> ValidationResult:
    from tickml.readers.canonical import read_canonical

    key = (str(spec.path), spec.tolerance)
    if key not in _CANONICAL_CACHE:
        _CANONICAL_CACHE.clear()
        _CANONICAL_CACHE[key] = read_canonical(
            Path(str(spec.path)), out_of_order_tolerance=spec.tolerance
        )
    return _CANONICAL_CACHE[key]


def load_day(spec: SourceSpec, day: dt.date) -> ValidationResult:
    """Read (or simulate) one day of the source as validated canonical ticks."""
    symbols = list(spec.symbols) if spec.symbols else None
    if spec.kind == "equity-ticks":
        from tickml.readers.equity import read_equity_day

        return read_equity_day(
            Path(str(spec.path)), day, symbols, out_of_order_tolerance=spec.tolerance
        )
    if spec.kind == "binance":
        from tickml.readers.binance import read_binance_capture

        parts = [
            read_binance_capture(f, out_of_order_tolerance=spec.tolerance)
            for f, d in _binance_files(Path(str(spec.path)))
            if d == day
        ]
        return _select(_concat(parts), symbols, day, "UTC")
    if spec.kind == "canonical":
        return _select(_read_canonical_all(spec), symbols, day, SESSION_TZ["canonical"])
    from tickml.simulator import SimConfig, simulate_day

    sim = simulate_day(SimConfig(**spec.sim), day)
    ticks = sim.ticks
    if symbols:
        ticks = ticks[ticks["symbol"].isin(symbols)].reset_index(drop=True)
    return ValidationResult(ticks, empty_quarantine(), {})


def _concat(parts: Sequence[ValidationResult]) -> ValidationResult:
    if not parts:
        return ValidationResult(empty_ticks(), empty_quarantine(), {})
    ticks = pd.concat([p.ticks for p in parts], ignore_index=True)
    ticks = ticks.sort_values(["symbol", "ts", "seq"], kind="stable").reset_index(drop=True)
    q = pd.concat([p.quarantine for p in parts], ignore_index=True)
    return ValidationResult(ticks, q, reason_counts(q))


def _select(
    res: ValidationResult, symbols: list[str] | None, day: dt.date, tz: str
) -> ValidationResult:
    t = res.ticks
    keep = t["ts"].dt.tz_convert(tz).dt.date == day if not t.empty else pd.Series([], dtype=bool)
    if symbols:
        keep &= t["symbol"].isin(symbols)
    q = res.quarantine
    if not q.empty:
        qday = q["ts"].dt.tz_convert(tz).dt.date
        q = q[(qday == day) | q["ts"].isna()]
    return ValidationResult(t[keep].reset_index(drop=True), q, reason_counts(q))


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

    Idempotent: re-ingesting a day replaces that day's lake partition and tick-store rows.
    """
    t0 = time.perf_counter()
    res = load_day(spec, day)
    ticks = res.ticks
    lake.write_day(ticks, day)
    lake.write_quarantine(res.quarantine, day)
    if store is not None:
        store.ensure_schema()
        store.write_day(ticks, day, symbols=spec.symbols, tz=SESSION_TZ[spec.kind])
        if not res.quarantine.empty:
            store.write_quarantine(
                res.quarantine, replace_sources=sorted(set(res.quarantine["source"]))
            )
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
