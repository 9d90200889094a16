"""The `tickml` command line.

It lives in ``orchestration`` rather than ``tickml`` because some commands drive Dagster, and the
``tickml`` library stays free of Dagster and Feast imports. Heavy imports happen inside commands so
``tickml --help`` is instant.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib
import inspect
import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestration.cli_support import (
    SafeTyper,
    config_value,
    date_option,
    date_value,
    debug_enabled,
    duration_value,
    finite,
    horizons_value,
    partition_days,
    pg_url_value,
    symbols_value,
    tolerance_option,
)
from tickml.errors import RunFailed, UsageError
from tickml.settings import Settings

app = SafeTyper(
    help="tickml: learn short-horizon price direction from market ticks and serve it live. "
    "Errors are one line (exit 2: usage, 1: failure); --debug shows tracebacks.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
# piped output (CI logs, `| tee`) gets a readable width instead of rich's 80 columns
out = Console(width=None if sys.stdout.isatty() else 140)

SOURCE_HELP = "simulator | equity-ticks | binance | canonical"
WORKDIR_HELP = "Working directory (default: TICKML_WORKDIR, else ./work)."
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


def _settings(workdir: Path | None = None, **overrides: Any) -> Settings:
    """This command's settings: the environment, read once, with the command's options."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings.from_env().with_workdir(workdir).model_copy(update=given)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _resolve_days(spec: Any, start: str | None, end: str | None, n_days: int) -> list[dt.date]:
    from tickml.ingest import available_days, simulated_days

    lo, hi = date_value(start, "--start"), date_value(end, "--end")
    if lo is not None and hi is not None and lo > hi:
        raise UsageError(f"--start {lo} is after --end {hi}")
    if spec.kind == "simulator":
        days = simulated_days(lo or dt.date(2024, 1, 2), n_days)
        return [d for d in days if hi is None or d <= hi]
    days = available_days(spec)
    if not days:
        raise RunFailed(_nothing_read(spec))
    return [d for d in days if (lo is None or d >= lo) and (hi is None or d <= hi)]


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


def _source_spec(
    ticks: Path | None, source: str | None, symbols: str | None = None,
    tolerance: str | None = None,
) -> Any:
    from tickml.ingest import SourceSpec
    from tickml.sources import SOURCE_KINDS

    kind = _guess_source(ticks, source)
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


def _guess_source(ticks: Path | None, source: str | None) -> str:
    if source:
        return source
    if ticks is None:
        return "simulator"
    if ticks.is_dir() and any(ticks.glob("*/*_trade.zip")):
        return "equity-ticks"
    if ticks.suffix == ".gz" or (ticks.is_dir() and any(ticks.glob("*.gz"))):
        return "binance"
    return "canonical"


@app.command()
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
    summaries = _ingest(
        ticks, source, start, end, days, symbols, _settings(workdir, pg_url=pg_url), sim_symbols,
        signal_strength, out_of_order_tolerance,
        config_path=str(config.resolve()) if config else None,
    )
    _print_summary(summaries)


def _ingest(
    ticks: Path | None, source: str | None, start: str | None, end: str | None, n_days: int,
    symbols: str | None, settings: Settings, sim_symbols: int,
    signal_strength: float, tolerance: str | None, assets: tuple[str, ...] = ("raw_ticks",),
    config_path: str | None = None,
) -> list[dict[str, Any]]:
    from assets.resources import TickSourceResource
    from orchestration.runner import materialize_days

    finite(signal_strength, "--signal-strength", 0.0)
    spec = _source_spec(ticks, source, symbols, tolerance)
    # the run's market (its configuration's market section, else the source's own): the days
    # listed here, the partitions checked and the days raw_ticks writes are the same days
    config = Path(config_path) if config_path else settings.config
    spec = dataclasses.replace(spec, market=config_value(config).for_source(spec.kind).market)
    settings = settings.model_copy(update={"source": spec.kind, "config": config})
    pg_url_value(settings.pg_url)
    workdir = settings.layout.root
    if workdir.exists() and not workdir.is_dir():
        raise UsageError(f"--workdir {workdir} is a file, not a folder")
    day_list = _resolve_days(spec, start, end, n_days)
    if not day_list:
        raise UsageError(f"no days of {spec.kind} {ticks or ''} between --start and --end")
    partition_days(day_list, settings)
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
    label = " + ".join(assets)
    with _progress() as bar:
        task = bar.add_task(label, total=len(day_list))

        def step(day: dt.date, row: dict[str, Any]) -> None:
            bar.update(task, advance=1, description=f"{label} {day}")

        rows = materialize_days(
            day_list, settings, res, on_day=step, assets=assets, config_path=config_path,
            log_level="DEBUG" if debug_enabled() else "CRITICAL",
        )
    _check_totals(spec, rows, whole=start is None and end is None and not symbols)
    return rows


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


def _print_summary(rows: list[dict[str, Any]]) -> None:
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


@app.command()
def demo(
    ticks: Path | None = typer.Option(
        None, "--ticks", help="Real data instead of the simulator, e.g. "
        "../shared/data/equity-ticks-2013."
    ),
    source: str | None = typer.Option(None, help=f"{SOURCE_HELP} (guessed from --ticks)."),
    days: int = typer.Option(
        7, min=3,
        help="Simulator only: number of weekdays (5 out-of-sample days after 2 training).",
    ),
    sim_symbols: int = typer.Option(6, min=1, help="Simulator only: number of symbols."),
    signal_strength: float = typer.Option(
        0.5, help="Simulator only: planted signal strength, so there is an edge to find."
    ),
    workdir: Path | None = typer.Option(
        None, help="Where the demo writes everything (default: <TICKML_WORKDIR or ./work>/demo, "
        "a sandbox, so simulated days never mix with your data)."
    ),
) -> None:
    """The end-to-end demo on embedded defaults: `tickml run` on the simulator (with a planted
    signal of known strength) unless --ticks is given."""
    base = Settings.from_env()
    settings = base.with_workdir(workdir or base.workdir / "demo")
    if ticks is None:
        console.print(
            f"demo: {days} simulated days x {sim_symbols} symbols with a planted signal of "
            f"strength {signal_strength} (the model should find it; real data: --ticks PATH)"
        )
    _run_pipeline(ticks, source, None, None, None, settings, None, None, days, None,
                  sim_symbols, signal_strength if ticks is None else 0.0)
    _demo_live(ticks, source, days, sim_symbols, signal_strength, settings)
    out.print(f"everything is in {settings.workdir}: explore it with --workdir {settings.workdir}")


def _demo_live(ticks: Path | None, source: str | None, days: int, sim_symbols: int,
               signal_strength: float, settings: Settings) -> None:
    """The demo's last step: a day through the live path (a new simulated day after the
    training days; with --ticks the last day of the data, which training saw: plumbing only)."""
    import redis

    from live.config import LiveConfig
    from tickml.ingest import available_days, simulated_days
    from tickml.redact import redact

    cfg = LiveConfig.from_settings(settings)
    try:
        redis.Redis.from_url(cfg.redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError:
        out.print(f"[yellow]live replay skipped:[/] no Redis at {redact(cfg.redis_url)} "
                  "(run `bash scripts/services.sh`, or set TICKML_REDIS_URL)")
        return
    kind = _guess_source(ticks, source)
    if kind == "simulator":
        day = simulated_days(dt.date(2024, 1, 2), days + 1)[-1]
    else:
        from tickml.config import RunConfig
        from tickml.ingest import SourceSpec

        market = RunConfig.load(settings.layout.config_file).market  # the demo run's market
        day = available_days(SourceSpec(kind=kind, path=ticks, market=market))[-1]
    out.print(f"live path: replaying {day} through feed -> Redis Streams -> materializers -> "
              "Feast Redis online store -> scorer (lockstep, full speed)...")
    from live.state import ForeignState

    try:
        _print_live(_live_replay(
            "binance-replay" if kind == "binance" else kind, ticks, day.isoformat(), None,
            settings, settings.layout.config_file, 2, None, sim_symbols, signal_strength))
    except ForeignState as exc:
        out.print(f"[yellow]live replay skipped:[/] {exc}")


@app.command()
def run(
    ticks: Path | None = typer.Option(None, "--ticks", help="Source files (default: simulator)."),
    source: str | None = typer.Option(None, help=f"{SOURCE_HELP} (guessed from --ticks)."),
    config: Path | None = typer.Option(None, help="Run config YAML (see `tickml config`)."),
    horizons: str | None = typer.Option(None, help="SHORT,LONG label horizons, e.g. 5m,15m."),
    interval: str | None = typer.Option(None, help="Sampling interval of feature rows, e.g. 1m."),
    workdir: Path | None = typer.Option(None, help=WORKDIR_HELP),
    start: str | None = typer.Option(
        None, callback=date_option, help="First day, YYYY-MM-DD (default: all)."
    ),
    end: str | None = typer.Option(
        None, callback=date_option, help="Last day, YYYY-MM-DD (default: all)."
    ),
    days: int = typer.Option(5, min=3, help="Simulator only: number of weekdays."),
    symbols: str | None = typer.Option(None, help="Comma-separated symbols (default: all)."),
    sim_symbols: int = typer.Option(8, min=1, help="Simulator only: number of symbols."),
    signal_strength: float = typer.Option(
        0.0, help="Simulator only: planted signal strength (0 = no edge to find)."
    ),
) -> None:
    """The whole offline graph through Dagster: ingest -> features -> labels -> Feast training
    set -> SHAP selection -> dual LightGBM -> walk-forward evaluation + backtest -> registry.
    Writes WORKDIR/reports/evaluation.json and evaluation.html."""
    _run_pipeline(ticks, source, config, horizons, interval, _settings(workdir), start, end, days,
                  symbols, sim_symbols, signal_strength)


def _run_pipeline(
    ticks: Path | None, source: str | None, config: Path | None, horizons: str | None,
    interval: str | None, settings: Settings, start: str | None, end: str | None, days: int,
    symbols: str | None, sim_symbols: int, signal_strength: float,
) -> None:
    import time

    from tickml.config import documented_yaml

    t0 = time.perf_counter()
    layout = settings.layout
    kind = _source_spec(ticks, source, symbols).kind
    base = config_value(config or settings.config).for_source(kind)
    try:
        cfg = base.with_overrides(
            horizons_value(horizons) if horizons else None,
            duration_value(interval, "--interval") if interval else None,
        )
    except ValueError as exc:  # pydantic: the combination is not valid
        raise UsageError(f"--horizons/--interval: {' '.join(str(exc).split())[:300]}") from None
    if layout.root.exists() and not layout.root.is_dir():
        raise UsageError(f"--workdir {layout.root} is a file, not a folder")
    layout.root.mkdir(parents=True, exist_ok=True)
    cfg_path = layout.config_file
    cfg_path.write_text(documented_yaml(cfg) + "\n")
    from orchestration.jobs import RUN_DAILY_ASSETS, RUN_GLOBAL_ASSETS

    rows = _ingest(
        ticks, source, start, end, days, symbols, settings, sim_symbols, signal_strength, None,
        assets=RUN_DAILY_ASSETS, config_path=str(cfg_path),
    )
    _print_summary(rows)
    from orchestration.runner import materialize_once

    console.print("training set (Feast), SHAP selection, dual LightGBM, walk-forward, backtest...")
    with console.status("training and evaluating"):
        res = materialize_once(
            RUN_GLOBAL_ASSETS, settings, config_path=str(cfg_path),
            log_level="CRITICAL",  # failures are summarized below, with the check's reasons
        )
    _print_evaluation(layout.reports / "evaluation.json", res["checks"])
    for step, msg in res.get("failures", {}).items():
        blocked = "blocking asset check" in msg
        out.print(("[yellow]not promoted:[/] " if blocked else "[red]failed:[/] ")
                  + f"{step}: {msg.splitlines()[0][:200]}")
    out.print(f"reports: {layout.reports / 'evaluation.html'}  "
              f"({time.perf_counter() - t0:,.0f} s in all)")


def _print_evaluation(path: Path, checks: dict[str, bool]) -> None:
    if not path.exists():
        out.print(f"[red]no evaluation written at {path}[/]")
        return
    ev = json.loads(path.read_text())
    table = Table(title="out-of-sample evaluation (purged walk-forward)")
    for col in ("model", "horizon", "n", "log loss", "bal. acc", "dir. acc", "IC", "IC 95%"):
        table.add_column(col, justify="left" if col == "model" else "right")

    def f(v: Any) -> str:
        return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))

    for kind in ("models", "baselines"):
        for m in ev.get(kind, []):
            o = m.get("oos", {})
            ci = o.get("ic_ci95") or [None, None]
            table.add_row(
                ("" if kind == "models" else "baseline: ") + str(m.get("name")),
                str(m.get("horizon", "")), f(o.get("n")), f(o.get("log_loss")),
                f(o.get("balanced_accuracy")), f(o.get("directional_accuracy")),
                f(o.get("ic")), f"[{f(ci[0])}, {f(ci[1])}]",
            )
    out.print(table)
    bt_table = Table(title="backtest (the live decision function and position book)")
    cols = ("net_pnl", "sharpe", "max_drawdown", "n_trades", "hit_rate", "turnover")
    for col in ("book", *cols):
        bt_table.add_column(col, justify="left" if col == "book" else "right")
    for name, key in (("unit size", "backtest"), ("sized", "backtest_sized")):
        bt = ev.get(key) or {}
        if bt:
            bt_table.add_row(name, *(f(bt.get(k)) for k in cols))
    out.print(bt_table)
    failed = [k for k, v in checks.items() if not v]
    out.print("checks: " + (f"[yellow]not passed: {failed}[/]" if failed else "all passed"))


@app.command("config")
def show_config(
    config: Path | None = typer.Option(None, help="Show this file's effective values."),
) -> None:
    """Print the run configuration as YAML, every knob with its description."""
    from tickml.config import documented_yaml

    sys.stdout.write(documented_yaml(config_value(config)) + "\n")


@app.command()
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
    with _progress() as bar:
        for day in bar.track(day_list, description="simulating"):
            frames.append(simulate_day(cfg, day).ticks)
    ticks = pd.concat(frames, ignore_index=True)
    write_canonical(ticks, out_path)
    out.print(f"wrote {len(ticks):,} ticks for {symbols} symbols x {days} day(s) to {out_path}")


@app.command()
def quarantine(
    workdir: Path | None = typer.Option(None, help=WORKDIR_HELP),
    day: str | None = typer.Option(
        None, callback=date_option, help="One day, YYYY-MM-DD (default: all)."
    ),
    limit: int = typer.Option(20, min=0, help="Rows to show."),
) -> None:
    """Show quarantined (rejected) rows with their reasons and source positions."""
    import pandas as pd

    lake = _settings(workdir).layout.tick_lake()
    one = date_value(day)
    day_list = [one] if one else lake.days()
    frames = [lake.read_quarantine(d) for d in day_list]
    q = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if q.empty:
        out.print("no quarantined rows")
        return
    out.print(q["reason"].value_counts().rename("rows").to_frame().to_string())
    out.print(q.head(limit).to_string(max_colwidth=60))


@app.command()
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


live_app = typer.Typer(help="The live path: feed, materializer, scorer, ledger, writer, supervisor",
                       no_args_is_help=True)
app.add_typer(live_app, name="live")
_PASS = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _live_role(role: str, ctx: typer.Context) -> None:
    from live.__main__ import main as live_main

    raise typer.Exit(live_main([role, *ctx.args]))


@live_app.command("feed", context_settings=_PASS)
def live_feed(ctx: typer.Context) -> None:
    """Publish a feed to the tick bus: --source simulator|equity-ticks|canonical|binance-replay
    (replays, --ticks PATH --day D --speed K --lockstep) or binance (websocket, --url)."""
    _live_role("feed", ctx)


@live_app.command("materializer", context_settings=_PASS)
def live_materializer(ctx: typer.Context) -> None:
    """Bus -> streaming features -> Feast Redis online store (--own SHARD ...)."""
    _live_role("materializer", ctx)


@live_app.command("scorer", context_settings=_PASS)
def live_scorer(ctx: typer.Context) -> None:
    """Online vectors -> champion models -> risk gate -> signals (--registry DIR)."""
    _live_role("scorer", ctx)


@live_app.command("ledger", context_settings=_PASS)
def live_ledger(ctx: typer.Context) -> None:
    """The shadow ledger: every scorer's decisions -> the position book -> PostgreSQL
    (--config: the run config whose experiment.sized book it runs)."""
    _live_role("ledger", ctx)


@live_app.command("writer", context_settings=_PASS)
def live_writer(ctx: typer.Context) -> None:
    """Bus -> PostgreSQL tick store (TICKML_PG_URL)."""
    _live_role("writer", ctx)


@live_app.command("run", context_settings=_PASS)
def live_run(ctx: typer.Context) -> None:
    """Everything under one supervisor (restarts crashed workers; SIGTERM stops all).
    `python -m live run --help` lists every option."""
    _live_role("run", ctx)


@live_app.command("replay")
def live_replay(
    source: str = typer.Option("simulator", help=SOURCE_HELP),
    ticks: Path | None = typer.Option(None, "--ticks", help="Source files (replays)."),
    day: str | None = typer.Option(
        None, callback=date_option, help="Day to replay, YYYY-MM-DD."
    ),
    symbols: str | None = typer.Option(None, help="Comma-separated symbols (default: all)."),
    registry: Path | None = typer.Option(
        None, help="Model registry folder (default: <workdir>/models)."
    ),
    workdir: Path | None = typer.Option(None, help=WORKDIR_HELP),
    config: Path | None = typer.Option(None, help="Run config YAML (features, gates)."),
    shards: int = typer.Option(
        2, min=1, max=1024, help="Bus shards (one materializer process each)."
    ),
    max_seconds: float | None = typer.Option(
        None, min=0.001, help="Replay only the first N market s."
    ),
    sim_symbols: int = typer.Option(8, min=1, help="Simulator only: symbols."),
    signal_strength: float = typer.Option(0.0, help="Simulator only: planted signal."),
    wipe_existing: bool = typer.Option(
        False, "--wipe-existing",
        help="Delete live state another deployment left in this Redis database (refused "
        "otherwise: the replay starts by clearing every tickml:* key).",
    ),
    scorers: int = typer.Option(1, help="Scorer processes (each owns shards s % scorers)."),
) -> None:
    """Replay a day through the whole live path at full speed (lockstep) and print close ->
    signal latency percentiles and signal counts (TICKML_REDIS_URL; TICKML_PG_URL optional).
    Every argument is checked before anything is deleted."""
    settings = _settings(workdir)
    _print_live(_live_replay(source, ticks, day, symbols, settings, config, shards, max_seconds,
                             sim_symbols, signal_strength, registry, wipe_existing, scorers))


def _live_replay(source: str, ticks: Path | None, day: str | None, symbols: str | None,
                 settings: Settings, config: Path | None, shards: int, max_seconds: float | None,
                 sim_symbols: int, signal_strength: float,
                 registry: Path | None = None, wipe_existing: bool = False,
                 scorers: int = 1) -> dict[str, Any]:
    from live.config import LiveConfig
    from live.replay import ReplaySpec, check_spec, replay

    finite(signal_strength, "--signal-strength", 0.0)
    cfg = LiveConfig.from_settings(settings, shards=shards, scorers=scorers)
    registry = registry or settings.layout.models
    config = config or settings.config
    if source == "binance":
        source = "binance-replay"
    spec = ReplaySpec(
        source=source, ticks=str(ticks) if ticks else None, day=day,
        symbols=tuple(symbols_value(symbols) or ()) or None, max_seconds=max_seconds,
        registry=str(registry), config=str(config) if config else None,
        sim_symbols=sim_symbols, signal_strength=signal_strength,
        workdir=str(settings.workdir), log_level=settings.log_level or "WARNING",
    )
    check_spec(spec)
    with console.status("replaying through feed -> bus -> materializers -> scorer"):
        return replay(cfg, spec, wipe_existing=wipe_existing)


def _print_live(res: dict[str, Any]) -> None:
    lat = res["close_to_signal_ms"]
    out.print(
        f"live replay: {res['boundaries']} boundaries, {res['rows_scored']:,} rows scored, "
        f"{res['signals']} signals in {res['wall_s']} s; interval close -> signal "
        f"p50 {lat['p50']} ms, p90 {lat['p90']} ms, p99 {lat['p99']} ms, max {lat['max']} ms"
        + (f"; restarts {res['restarts']}" if res.get("restarts") else "")
    )


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    debug: bool = typer.Option(
        False, "--debug", help="Show full tracebacks on errors (or set TICKML_DEBUG=1)."
    ),
) -> None:
    # backfill_policy is marked beta in Dagster 1.13; the warning is noise for CLI users
    warnings.filterwarnings("ignore", message=".*currently in beta.*")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


if __name__ == "__main__":
    app()
