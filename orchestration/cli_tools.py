"""The tool commands: `tickml config` (the run configuration), `simulate` (a file of simulated
ticks), `quarantine` (rejected rows), `bench` (one benchmark) and `fracdiff-d` (the fracdiff
orders of the feature configuration)."""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import typer

from orchestration.cli_base import (
    SOURCE_HELP,
    WORKDIR_HELP,
    command_settings,
    console,
    out,
    progress,
)
from orchestration.cli_support import config_value, date_option, date_value, finite
from tickml.errors import UsageError

BENCHMARKS = {
    "parse": "vendor equity files -> canonical ticks (ticks/s)",
    "store": "canonical ticks -> Postgres tick store with COPY (ticks/s)",
    "features-batch": "batch feature engine, all features (ticks/s per core)",
    "features-stream": "streaming feature engine, per-tick updates (ticks/s per core)",
    "cross-section": "the scorer's step at 1k-20k symbols (sized read, compiled models, "
    "decision, publish) vs the old path and Feast (ms); inference runtimes",
    "tick-to-signal": "paced replay at 20/500/5,000 symbols: close -> signal ms with parts; "
    "materializer ticks/s with 1 and 2 processes",
    "consistency": "online/offline consistency: a day of live rows vs batch rows (rows/s)",
    "execution": "position book step + state, recent volatility per boundary at universe size (ms)",
}


def show_config(
    config: Path | None = typer.Option(None, help="Show this file's effective values."),
) -> None:
    """Print the run configuration as YAML, every knob with its description."""
    from tickml.config import documented_yaml

    sys.stdout.write(documented_yaml(config_value(config)) + "\n")


def simulate(
    out_path: Path = typer.Option(
        ..., "--out", help="File to write: *.parquet, *.csv or *.csv.gz."
    ),
    start: str = typer.Option("2024-01-02", callback=date_option, help="First day."),
    days: int = typer.Option(1, min=1, max=3660, help="Number of weekdays."),
    symbols: int = typer.Option(8, min=1, max=20_000, help="Number of symbols."),
    seed: int = typer.Option(7, help="Random seed."),
    signal_strength: float = typer.Option(0.0, help="Planted signal strength (0 = none)."),
) -> None:
    """Write simulated canonical ticks to a Parquet file (bring-your-own-data format)."""
    import pandas as pd

    from tickml.ingest import simulated_days
    from tickml.readers.canonical import write_canonical
    from tickml.simulator import SimConfig, simulate_day

    finite(signal_strength, "--signal-strength", 0.0)
    if not out_path.name.lower().endswith((".parquet", ".csv", ".csv.gz")):
        raise UsageError(f"--out {out_path}: the name must end in .parquet, .csv or .csv.gz")
    if out_path.is_dir():
        raise UsageError(f"--out {out_path} is a folder: give a file name")
    cfg = SimConfig(n_symbols=symbols, seed=seed, signal_strength=signal_strength)
    frames = []
    day_list = simulated_days(date_value(start) or dt.date(2024, 1, 2), days)
    with progress() as bar:
        for day in bar.track(day_list, description="simulating"):
            frames.append(simulate_day(cfg, day).ticks)
    ticks = pd.concat(frames, ignore_index=True)
    write_canonical(ticks, out_path)
    out.print(f"wrote {len(ticks):,} ticks for {symbols} symbols x {days} day(s) to {out_path}")


def quarantine(
    workdir: Path | None = typer.Option(None, help=WORKDIR_HELP),
    day: str | None = typer.Option(
        None, callback=date_option, help="One day, YYYY-MM-DD (default: all)."
    ),
    limit: int = typer.Option(20, min=0, help="Rows to show."),
) -> None:
    """Show quarantined (rejected) rows with their reasons and source positions."""
    import pandas as pd

    lake = command_settings(workdir).layout.tick_lake()
    one = date_value(day)
    day_list = [one] if one else lake.days()
    frames = [lake.read_quarantine(d) for d in day_list]
    q = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if q.empty:
        out.print("no quarantined rows")
        return
    out.print(q["reason"].value_counts().rename("rows").to_frame().to_string())
    out.print(q.head(limit).to_string(max_colwidth=60))


def bench(
    name: str = typer.Argument(..., help="One of: " + ", ".join(BENCHMARKS)),
    option: list[str] = typer.Option(
        [], "--set", help="Benchmark keyword argument, KEY=VALUE (repeatable)."
    ),
    symbols: str | None = typer.Option(
        None, help="Universe size(s), comma-separated (cross-section default 1000,5000,10000,"
        "20000; tick-to-signal 20,500,5000)."
    ),
) -> None:
    """Run one benchmark; prints one JSON object per line (name, value, unit, ...)."""
    if name not in BENCHMARKS:
        raise UsageError(f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}")
    if symbols is not None and not all(
        p.strip().isdigit() and int(p) > 0 for p in symbols.split(",")
    ):
        raise UsageError(f"--symbols {symbols!r}: positive integers, comma-separated")
    kwargs: dict[str, Any] = {} if symbols is None else {"symbols": symbols}
    for item in option:
        key, eq, raw = item.partition("=")
        if not eq or not key.isidentifier():
            raise UsageError(f"--set {item!r}: expected KEY=VALUE, e.g. --set repeats=5")
        try:
            kwargs[key] = json.loads(raw)
        except json.JSONDecodeError:
            kwargs[key] = raw
    module = importlib.import_module(f"benchmarks.{name.replace('-', '_')}")
    params = inspect.signature(module.run).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise UsageError(
            f"benchmark {name} has no setting {', '.join(unknown)}; it takes: {', '.join(params)}"
        )
    console.print(f"running benchmark {name}: {BENCHMARKS[name]} ...")
    for row in module.run(**kwargs):
        sys.stdout.write(json.dumps(row, default=str) + "\n")
        sys.stdout.flush()


def fracdiff_d(
    ticks: Path = typer.Option(..., "--ticks", help="Source files (training days only)."),
    source: str | None = typer.Option(None, help=f"{SOURCE_HELP} (guessed from --ticks)."),
    config: Path | None = typer.Option(
        None, help="Run config YAML: its features section (bars, widths, market) is used."
    ),
    start: str | None = typer.Option(None, callback=date_option, help="First day, YYYY-MM-DD."),
    end: str | None = typer.Option(
        None,
        callback=date_option,
        help="Last day, YYYY-MM-DD (required): the last training day, before the test days.",
    ),
    symbols: str | None = typer.Option(None, help="Comma-separated symbols (default: all)."),
    min_share: float = typer.Option(
        1.0, min=0.01, max=1.0, help="Share of symbol-days that must pass ADF (1: every one)."
    ),
) -> None:
    """Choose the fracdiff orders (bar closes and ticks) on per-day series built exactly as
    the feature engine builds them (same bars, daily reset, fixed widths): per variant, the
    smallest d on 0, 0.05, ..., 1 whose fracdiff passes ADF at 5% on the symbol-days. Run it
    on training days only (``--end`` is required: the last training day); put the result in
    the run config (features.fracdiff_d, features.fracdiff_tick_d)."""
    if end is None:
        raise UsageError(
            "--end is required: the orders must be chosen on training days only (give the last "
            "training day, before any day you test on)"
        )
    from orchestration.cli_ingest import source_spec
    from tickml.features.fracdiff_choice import choose_fracdiff_orders, engine_series
    from tickml.ingest import available_days, load_day

    spec = source_spec(ticks, source, symbols)
    cfg = config_value(config).for_source(spec.kind).features
    first, last = date_value(start), date_value(end)
    days = [d for d in available_days(spec) if (first is None or d >= first)]
    days = [d for d in days if last is None or d <= last]
    if not days:
        raise UsageError("no days of the source in the --start/--end range")
    series = []
    with progress() as bar:
        task = bar.add_task("reading days", total=len(days))
        for day in days:
            series += engine_series(load_day(spec, day).ticks, cfg)
            bar.advance(task)
    choice = choose_fracdiff_orders(series, min_share=min_share)
    tab = choice.table.pivot(index="d", columns="variant", values="n_pass")
    n = choice.table.groupby("variant")["n_series"].max()
    tab.columns = [f"{c} pass (of {n[c]})" for c in tab.columns]
    out.print(tab.to_string())
    out.print(
        f"fracdiff_d: {choice.d_bar:g}  (bar closes, {cfg.fracdiff_width}-bar window; "
        f"configured {cfg.fracdiff_d:g})\n"
        f"fracdiff_tick_d: {choice.d_tick:g}  ({cfg.fracdiff_tick_width}-tick window; "
        f"configured {cfg.fracdiff_tick_d:g})\n"
        f"on {len(days)} days {days[0]}..{days[-1]}, {len(series)} symbol-days"
    )
