"""`tickml run` (the whole offline graph through Dagster) and `tickml demo` (the same on the
simulator, then a day through the live path)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from orchestration.cli_base import SOURCE_HELP, WORKDIR_HELP, command_settings, console, out
from orchestration.cli_ingest import guess_source, ingest_days, print_summary, source_spec
from orchestration.cli_live import print_live, run_live_replay
from orchestration.cli_support import config_value, date_option, duration_value, horizons_value
from tickml.errors import UsageError
from tickml.settings import Settings


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
    run_pipeline(ticks, source, None, None, None, settings, None, None, days, None,
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
    kind = guess_source(ticks, source)
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
        print_live(run_live_replay(
            "binance-replay" if kind == "binance" else kind, ticks, day.isoformat(), None,
            settings, settings.layout.config_file, 2, None, sim_symbols, signal_strength))
    except ForeignState as exc:
        out.print(f"[yellow]live replay skipped:[/] {exc}")


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
    run_pipeline(ticks, source, config, horizons, interval, command_settings(workdir), start, end,
                 days, symbols, sim_symbols, signal_strength)


def run_pipeline(
    ticks: Path | None, source: str | None, config: Path | None, horizons: str | None,
    interval: str | None, settings: Settings, start: str | None, end: str | None, days: int,
    symbols: str | None, sim_symbols: int, signal_strength: float,
) -> None:
    """Write the run's configuration into the workdir, ingest the daily assets of every day,
    then train, evaluate and register; print what came out."""
    from orchestration.jobs import RUN_DAILY_ASSETS

    t0 = time.perf_counter()
    cfg_path = _write_run_config(ticks, source, symbols, config, horizons, interval, settings)
    rows = ingest_days(
        ticks, source, start, end, days, symbols, settings, sim_symbols, signal_strength, None,
        assets=RUN_DAILY_ASSETS, config_path=str(cfg_path),
    )
    print_summary(rows)
    _train_and_report(settings, cfg_path, t0)


def _write_run_config(
    ticks: Path | None, source: str | None, symbols: str | None, config: Path | None,
    horizons: str | None, interval: str | None, settings: Settings,
) -> Path:
    """The run configuration with the command's overrides, on the run's market (the file's
    market section, else the source's own), written to the workdir: every asset reads it."""
    from tickml.config import documented_yaml

    layout = settings.layout
    kind = source_spec(ticks, source, symbols).kind
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
    return cfg_path


def _train_and_report(settings: Settings, cfg_path: Path, t0: float) -> None:
    """The unpartitioned assets (training set .. registry) in one run, then the summary."""
    from orchestration.jobs import RUN_GLOBAL_ASSETS
    from orchestration.runner import materialize_once

    layout = settings.layout
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
    cols = ("model", "horizon", "n", "log loss", "bal. acc", "dir. acc", "IC", "IC 95%", "IC rows",
            "days")
    for col in cols:
        table.add_column(col, justify="left" if col == "model" else "right")

    def f(v: Any) -> str:
        return "-" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v))

    decision = ev.get("decision_model")
    for kind in ("models", "baselines"):
        for m in ev.get(kind, []):
            o = m.get("oos", {})
            ci = o.get("ic_ci95") or [None, None]
            name = str(m.get("name"))
            table.add_row(
                ("" if kind == "models" else "baseline: ") + name
                + (" (decision score)" if name == decision else ""),
                str(m.get("horizon", "")), f(o.get("n")), f(o.get("log_loss")),
                f(o.get("balanced_accuracy")), f(o.get("directional_accuracy")),
                f(o.get("ic")), f"[{f(ci[0])}, {f(ci[1])}]", f(o.get("n_ic")), f(o.get("n_days")),
            )
    out.print(table)
    bt_table = Table(title="backtest (the live decision function and position book)")
    bt_cols = ("net_pnl", "sharpe", "max_drawdown", "n_trades", "hit_rate", "turnover")
    for col in ("book", *bt_cols):
        bt_table.add_column(col, justify="left" if col == "book" else "right")
    for name, key in (("unit size", "backtest"), ("sized", "backtest_sized")):
        bt = ev.get(key) or {}
        if bt:
            bt_table.add_row(name, *(f(bt.get(k)) for k in bt_cols))
    out.print(bt_table)
    failed = [k for k, v in checks.items() if not v]
    out.print("checks: " + (f"[yellow]not passed: {failed}[/]" if failed else "all passed"))
