"""`tickml ingest`: days of ticks into the lake (and Postgres) through Dagster's ``raw_ticks``,
with the source checks, day resolution and per-day accounting `tickml run` reuses."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from orchestration.cli_base import (
    SOURCE_HELP,
    WORKDIR_HELP,
    command_settings,
    console,
    out,
    progress,
)
from orchestration.cli_support import (
    config_value,
    date_option,
    date_value,
    debug_enabled,
    finite,
    partition_days,
    pg_url_value,
    symbols_value,
    tolerance_option,
)
from tickml.errors import RunFailed, UsageError
from tickml.settings import Settings


def ingest(
    ticks: Path | None = typer.Option(None, "--ticks", help="Source files (not for simulator)."),
    source: str | None = typer.Option(None, help=f"{SOURCE_HELP} (guessed from --ticks)."),
    start: str | None = typer.Option(
        None, callback=date_option, help="First day, YYYY-MM-DD (default: all)."
    ),
    end: str | None = typer.Option(
        None, callback=date_option, help="Last day, YYYY-MM-DD (default: all)."
    ),
    days: int = typer.Option(3, min=1, help="Simulator only: how many weekdays to make."),
    symbols: str | None = typer.Option(None, help="Comma-separated symbols (default: all)."),
    workdir: Path | None = typer.Option(None, help=WORKDIR_HELP),
    pg_url: str | None = typer.Option(
        None, help="Also write the Postgres tick store (default: TICKML_PG_URL; the "
        "environment is safer than the flag).",
    ),
    sim_symbols: int = typer.Option(8, min=1, help="Simulator only: number of symbols."),
    signal_strength: float = typer.Option(0.0, help="Simulator only: planted signal strength."),
    out_of_order_tolerance: str | None = typer.Option(
        None, callback=tolerance_option,
        help="Out-of-order tolerance >= 0, e.g. 100ms (default per source: binance 1s, else 0).",
    ),
    config: Path | None = typer.Option(
        None, help="Run config YAML: its `validation` section sets the plausibility bounds."
    ),
) -> None:
    """Ingest days of ticks into the lake (and Postgres) through Dagster's [bold]raw_ticks[/]."""
    if config is not None:
        config_value(config)
    summaries = ingest_days(
        ticks, source, start, end, days, symbols, command_settings(workdir, pg_url=pg_url),
        sim_symbols, signal_strength, out_of_order_tolerance,
        config_path=str(config.resolve()) if config else None,
    )
    print_summary(summaries)


def ingest_days(
    ticks: Path | None, source: str | None, start: str | None, end: str | None, n_days: int,
    symbols: str | None, settings: Settings, sim_symbols: int,
    signal_strength: float, tolerance: str | None, assets: tuple[str, ...] = ("raw_ticks",),
    config_path: str | None = None,
) -> list[dict[str, Any]]:
    """Check every argument, then materialize ``assets`` for each day of the source; the
    per-day rows (checked to add up to the reader's counts when the whole source is read)."""
    from assets.resources import TickSourceResource

    finite(signal_strength, "--signal-strength", 0.0)
    spec, settings = _run_source(ticks, source, symbols, tolerance, settings, config_path)
    day_list = _days_to_ingest(spec, settings, start, end, n_days, ticks)
    res = TickSourceResource(
        kind=spec.kind,
        path=str(spec.path) if spec.path else None,
        symbols=list(spec.symbols) if spec.symbols else None,
        out_of_order_tolerance=tolerance,
        sim_n_symbols=sim_symbols,
        sim_signal_strength=signal_strength,
    )
    console.print(
        f"ingesting {len(day_list)} day(s) from [bold]{spec.kind}[/] "
        f"{ticks or ''} -> {settings.layout.lake}" + (" + Postgres" if settings.pg_url else "")
    )
    rows = _materialize(day_list, settings, res, assets, config_path)
    _check_totals(spec, rows, whole=start is None and end is None and not symbols)
    return rows


def _run_source(
    ticks: Path | None, source: str | None, symbols: str | None, tolerance: str | None,
    settings: Settings, config_path: str | None,
) -> tuple[Any, Settings]:
    """The source on the run's market (its configuration's market section, else the source's
    own), and the settings of the run: the days listed, the partitions checked and the days
    raw_ticks writes are then the same days."""
    spec = source_spec(ticks, source, symbols, tolerance)
    config = Path(config_path) if config_path else settings.config
    spec = dataclasses.replace(spec, market=config_value(config).for_source(spec.kind).market)
    settings = settings.model_copy(update={"source": spec.kind, "config": config})
    pg_url_value(settings.pg_url)
    workdir = settings.layout.root
    if workdir.exists() and not workdir.is_dir():
        raise UsageError(f"--workdir {workdir} is a file, not a folder")
    return spec, settings


def _days_to_ingest(
    spec: Any, settings: Settings, start: str | None, end: str | None, n_days: int,
    ticks: Path | None,
) -> list[dt.date]:
    """The source's days between --start and --end, each a daily partition."""
    from tickml.ingest import available_days, simulated_days

    lo, hi = date_value(start, "--start"), date_value(end, "--end")
    if lo is not None and hi is not None and lo > hi:
        raise UsageError(f"--start {lo} is after --end {hi}")
    if spec.kind == "simulator":
        day_list = [d for d in simulated_days(lo or dt.date(2024, 1, 2), n_days)
                    if hi is None or d <= hi]
    else:
        days = available_days(spec)
        if not days:
            raise RunFailed(_nothing_read(spec))
        day_list = [d for d in days if (lo is None or d >= lo) and (hi is None or d <= hi)]
    if not day_list:
        raise UsageError(f"no days of {spec.kind} {ticks or ''} between --start and --end")
    partition_days(day_list, settings)
    return day_list


def _materialize(
    day_list: list[dt.date], settings: Settings, res: Any, assets: tuple[str, ...],
    config_path: str | None,
) -> list[dict[str, Any]]:
    """One Dagster run per day, with a progress bar."""
    from orchestration.runner import materialize_days

    label = " + ".join(assets)
    with progress() as bar:
        task = bar.add_task(label, total=len(day_list))

        def step(day: dt.date, row: dict[str, Any]) -> None:
            bar.update(task, advance=1, description=f"{label} {day}")

        return materialize_days(
            day_list, settings, res, on_day=step, assets=assets, config_path=config_path,
            log_level="DEBUG" if debug_enabled() else "CRITICAL",
        )


def _nothing_read(spec: Any) -> str:
    """Why a source has no day: what its reader rejected (counts and the first record)."""
    from tickml.ingest import WHOLE_SOURCE_KINDS, source_split

    what = f"no days to ingest from {spec.kind} {spec.path}"
    if spec.kind not in WHOLE_SOURCE_KINDS:
        return f"{what}: no file of the expected layout (see README, Sources)"
    q = source_split(spec).result.quarantine
    if q.empty:
        return f"{what}: the source holds no rows"
    first = q.iloc[0]
    counts = ", ".join(f"{k} {v:,}" for k, v in q["reason"].value_counts().items())
    return (
        f"{what}: all {len(q):,} rows were rejected ({counts}) and none has a usable time to "
        f"file it under; first: {first['source']}:{first['position']} {first['reason']}"
    )


def source_spec(
    ticks: Path | None, source: str | None, symbols: str | None = None,
    tolerance: str | None = None,
) -> Any:
    """The checked source of a command's --ticks/--source/--symbols/--out-of-order-tolerance."""
    from tickml.ingest import SourceSpec
    from tickml.sources import SOURCE_KINDS

    kind = guess_source(ticks, source)
    if kind not in SOURCE_KINDS:
        raise UsageError(f"--source {kind!r}: choose one of {', '.join(SOURCE_KINDS)}")
    if kind != "simulator" and ticks is None:
        raise UsageError(f"--source {kind} needs --ticks PATH")
    if ticks is not None and not ticks.exists():
        raise UsageError(f"--ticks {ticks}: no such file or folder")
    if kind == "simulator" and ticks is not None:
        raise UsageError("--ticks is not used by the simulator: give --source too")
    sym = symbols_value(symbols)
    return SourceSpec(
        kind=kind, path=ticks.resolve() if ticks else None,
        symbols=tuple(sym) if sym else None, out_of_order_tolerance=tolerance,
    )


def guess_source(ticks: Path | None, source: str | None) -> str:
    """--source, else what the files under --ticks look like (no --ticks: the simulator)."""
    if source:
        return source
    if ticks is None:
        return "simulator"
    if ticks.is_dir() and any(ticks.glob("*/*_trade.zip")):
        return "equity-ticks"
    if ticks.suffix == ".gz" or (ticks.is_dir() and any(ticks.glob("*.gz"))):
        return "binance"
    return "canonical"


def _check_totals(spec: Any, rows: list[dict[str, Any]], whole: bool) -> None:
    """Per-day counts must add up to what the reader returned for the source."""
    from tickml.ingest import source_totals

    totals = source_totals(spec) if whole and spec.kind != "simulator" else None
    if totals is None:
        return
    got = (sum(int(r.get("n_ticks", 0)) for r in rows),
           sum(int(r.get("n_quarantined", 0)) for r in rows))
    if got == totals:
        console.print(f"every row accounted for: {got[0]:,} ticks + {got[1]:,} quarantined "
                      f"over {len(rows)} day(s) = the reader's {totals[0]:,} + {totals[1]:,}",
                      soft_wrap=True)
    else:
        raise RunFailed(f"per-day counts {got} do not add up to the reader's {totals} "
                        "(please report this)")


def print_summary(rows: list[dict[str, Any]]) -> None:
    """The per-day table of an ingest (ticks, symbols, rejects by reason, checks)."""
    table = Table(title="raw_ticks per day")
    for col in ("day", "ticks", "symbols", "rejected", "reasons", "ticks/s", "checks"):
        table.add_column(col, justify="left" if col in ("reasons", "checks") else "right")
    total_t = total_q = 0
    for r in rows:
        total_t += int(r.get("n_ticks", 0))
        total_q += int(r.get("n_quarantined", 0))
        ok = sum(bool(v) for v in r["checks"].values())
        failed = [k for k, v in r["checks"].items() if not v]
        checks = f"{ok}/{len(r['checks'])} passed" + (f" ({', '.join(failed)})" if failed else "")
        counts = r.get("quarantine_counts") or {}
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "-"
        table.add_row(
            str(r["day"]), f"{int(r.get('n_ticks', 0)):,}", str(r.get("n_symbols", 0)),
            f"{int(r.get('n_quarantined', 0)):,}", reasons,
            f"{float(r.get('ticks_per_second', 0)):,.0f}", checks,
        )
    out.print(table)
    out.print(f"total: {total_t:,} ticks, {total_q:,} rejected (see `tickml quarantine`)")
