"""`tickml live ...`: the live workers (each passes its arguments to ``python -m live``) and
`tickml live replay` (a day through the whole live path, with latency percentiles)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from orchestration.cli_base import SOURCE_HELP, WORKDIR_HELP, command_settings, console, out
from orchestration.cli_support import date_option, finite, symbols_value
from tickml.settings import Settings

live_app = typer.Typer(help="The live path: feed, materializer, scorer, ledger, writer, supervisor",
                       no_args_is_help=True)
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
    settings = command_settings(workdir)
    print_live(run_live_replay(source, ticks, day, symbols, settings, config, shards,
                               max_seconds, sim_symbols, signal_strength, registry,
                               wipe_existing, scorers))


def run_live_replay(
    source: str, ticks: Path | None, day: str | None, symbols: str | None, settings: Settings,
    config: Path | None, shards: int, max_seconds: float | None, sim_symbols: int,
    signal_strength: float, registry: Path | None = None, wipe_existing: bool = False,
    scorers: int = 1,
) -> dict[str, Any]:
    """Check every argument, then replay the day through the live path (live.replay)."""
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


def print_live(res: dict[str, Any]) -> None:
    """One line: boundaries, rows scored, signals, close -> signal latency percentiles."""
    lat = res["close_to_signal_ms"]
    out.print(
        f"live replay: {res['boundaries']} boundaries, {res['rows_scored']:,} rows scored, "
        f"{res['signals']} signals in {res['wall_s']} s; interval close -> signal "
        f"p50 {lat['p50']} ms, p90 {lat['p90']} ms, p99 {lat['p99']} ms, max {lat['max']} ms"
        + (f"; restarts {res['restarts']}" if res.get("restarts") else "")
    )
