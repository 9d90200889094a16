"""``python -m live <role>``: one live worker process (``tickml live`` wraps the same roles).

Roles: feed, materializer, scorer, ledger (the shadow ledger), writer, run (the supervisor: all
of them), exporter (the offline monitoring reports as Prometheus metrics, ``live.exporter``).
Connection URLs come from the environment through the settings (TICKML_REDIS_URL,
TICKML_PG_URL: :mod:`tickml.settings`); see ``live.config.LiveConfig``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import pydantic

from live import logs, metrics
from live.config import LiveConfig
from live.replay import ReplaySpec, check_spec
from tickml.errors import OneLineArgumentParser, UsageError, debug_enabled, exit_code, one_line
from tickml.redact import redact
from tickml.settings import Settings

log = logging.getLogger("live")


def _stop_on_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


def _run_config(path: str | None, source: str = "simulator"):  # noqa: ANN202
    """The run configuration on the tick source's market (as the pipeline that trained the
    champion reads it: ``RunConfig.for_source``; without a market section Binance is 24/7
    UTC, not the equity session)."""
    from tickml.config import RunConfig
    from tickml.sources import SOURCE_KINDS

    kind = "binance" if source in ("binance", "binance-replay") else source
    cfg = RunConfig.load(path) if path else RunConfig()
    return cfg.for_source(kind) if kind in SOURCE_KINDS else cfg


def _feature_config(path: str | None, source: str = "simulator"):  # noqa: ANN202
    return _run_config(path, source).features


def _decision_config(path: str | None, source: str = "simulator"):  # noqa: ANN202
    return _run_config(path, source).experiment.decision


def _execution_config(path: str | None, source: str = "simulator"):  # noqa: ANN202
    """The book the shadow ledger runs: the run config's sized book (the experiment's)."""
    return _run_config(path, source).experiment.execution_config()


def _rules(args: argparse.Namespace):  # noqa: ANN202
    from tickml.config import RunConfig

    return RunConfig.load(args.config).validation if args.config else RunConfig().validation


def feed_events(  # noqa: ANN201
    args: argparse.Namespace, feature_config, stop: threading.Event | None = None  # noqa: ANN001
):
    """The feed a command line asks for (replay of stored/simulated ticks, or Binance; the
    websocket feed ends when ``stop`` is set, even while no frame comes)."""
    if args.source == "binance":
        from live.binance_ws import BinanceWebsocketFeed

        feed = BinanceWebsocketFeed(
            url=args.url, symbols=tuple(args.symbols or ["btcusdt"]), feature_config=feature_config
        )
        return feed.iter_sync(stop)
    from live.feeds import ReplayFeed
    from tickml.ingest import SourceSpec, load_day
    from tickml.market import Market

    spec = SourceSpec(
        kind="binance" if args.source == "binance-replay" else args.source,  # capture files
        path=Path(args.ticks) if args.ticks else None,
        symbols=tuple(args.symbols) if args.symbols else None,
        sim={
            "n_symbols": args.sim_symbols,
            "signal_strength": args.signal_strength,
            "seed": args.seed,
            **(
                {"session_close": (dt.datetime(2000, 1, 1, 9, 30) + dt.timedelta(
                    minutes=args.sim_minutes)).time()}
                if args.sim_minutes else {}
            ),
        },
        market=Market.of_run_config(args.config),  # None: the source's own (tickml.sources)
    )
    day = dt.date.fromisoformat(args.day) if args.day else dt.date(2013, 10, 8)
    ticks = load_day(spec, day).ticks
    if ticks.empty:
        raise UsageError(f"no ticks for {day} in source {args.source} {args.ticks or ''}")
    return ReplayFeed(
        ticks,
        feature_config,
        speed=args.speed,
        max_seconds=args.max_seconds,
        close_real_s=args.close_real_s or 0.0,
    )


def _parser() -> argparse.ArgumentParser:
    p = OneLineArgumentParser(prog="python -m live", description=__doc__.split("\n")[0])
    p.add_argument(
        "role",
        choices=["feed", "materializer", "scorer", "ledger", "writer", "run", "exporter"],
    )
    p.add_argument("--shards", type=int, default=None, help="bus shards (default LiveConfig)")
    p.add_argument("--own", type=int, nargs="*", default=None, help="materializer: its shards")
    p.add_argument("--materializers", type=int, default=None, help="run: processes")
    p.add_argument("--scorers", type=int, default=None, help="scorer processes (default 1)")
    p.add_argument("--index", type=int, default=0, help="scorer: which one (0..scorers-1)")
    p.add_argument(
        "--config", default=None, help="RunConfig YAML (features, decision gates, execution; "
        "default: TICKML_CONFIG)"
    )
    p.add_argument("--workdir", default=None, help="working directory (default: TICKML_WORKDIR)")
    p.add_argument("--registry", default=None, help="model registry folder (<workdir>/models)")
    p.add_argument(
        "--source",
        default="simulator",
        choices=["simulator", "equity-ticks", "binance-replay", "canonical", "binance"],
    )
    p.add_argument("--ticks", default=None, help="replay: folder/file of the source")
    p.add_argument("--day", default=None, help="replay: the day (YYYY-MM-DD)")
    p.add_argument("--symbols", nargs="*", default=None)
    p.add_argument("--speed", type=float, default=None, help="replay: x real time (none: max)")
    p.add_argument("--max-seconds", type=float, default=None, help="replay: stop after")
    p.add_argument(
        "--close-real-s",
        type=float,
        default=None,
        help="paced replay: the market seconds on each side of every close at 1x",
    )
    p.add_argument("--lockstep", action="store_true", help="feed waits for each boundary")
    p.add_argument("--sim-symbols", type=int, default=8, help="simulator: symbols")
    p.add_argument(
        "--sim-minutes", type=int, default=None, help="simulator: session minutes from 09:30"
    )
    p.add_argument("--signal-strength", type=float, default=0.0, help="simulator: signal")
    p.add_argument("--seed", type=int, default=7, help="simulator: base seed")
    p.add_argument("--url", default="wss://fstream.binance.com/stream", help="binance ws url")
    p.add_argument("--consumer", default=None)
    p.add_argument("--metrics-port", type=int, default=None)
    p.add_argument(
        "--reports",
        default=None,
        help="exporter: reports folder (default <workdir>/reports)",
    )
    return p


def _spec(args: argparse.Namespace, settings: Settings) -> ReplaySpec:
    return ReplaySpec(
        source=args.source,
        ticks=args.ticks,
        day=args.day,
        symbols=tuple(args.symbols) if args.symbols else None,
        speed=args.speed,
        max_seconds=args.max_seconds,
        close_real_s=args.close_real_s,
        lockstep=args.lockstep,
        config=args.config,
        registry=args.registry,
        materializers=args.materializers,
        url=args.url,
        sim_symbols=args.sim_symbols,
        signal_strength=args.signal_strength,
        seed=args.seed,
        workdir=str(settings.workdir),
    )


def _check(args: argparse.Namespace, settings: Settings) -> LiveConfig:
    """Every argument, before the worker starts (a usage error names the first problem)."""
    try:
        cfg = LiveConfig.from_settings(
            settings,
            **({"shards": args.shards} if args.shards is not None else {}),
            **({"scorers": args.scorers} if args.scorers is not None else {}),
            metrics_port=args.metrics_port,
        )
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise UsageError(f"--{'-'.join(map(str, first['loc']))}: {first['msg']}") from None
    if args.metrics_port is not None and not 0 < args.metrics_port < 65536:
        raise UsageError(f"--metrics-port {args.metrics_port}: not a TCP port (1-65535)")
    if args.role == "exporter" and args.metrics_port is None:
        raise UsageError("the exporter needs --metrics-port")
    if not 0 <= args.index < cfg.scorers:
        raise UsageError(f"--index {args.index}: scorers are 0..{cfg.scorers - 1}")
    bad = [s for s in args.own or [] if not 0 <= s < cfg.shards]
    if bad:
        raise UsageError(f"--own {bad}: shards are 0..{cfg.shards - 1} (--shards {cfg.shards})")
    if args.role in ("feed", "run"):
        check_spec(_spec(args, settings))
    elif args.config:
        from tickml.config import load_run_config

        load_run_config(args.config)
    if args.role == "writer" and not cfg.pg_url:
        raise UsageError("the writer needs a PostgreSQL URL: set TICKML_PG_URL")
    return cfg


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    prog = f"python -m live {args.role}"
    try:
        settings = Settings.from_env().with_workdir(args.workdir)
        args.config = args.config or settings.run_config_path()
        args.registry = args.registry or str(settings.layout.models)
        cfg = _check(args, settings)
        fc0 = _feature_config(args.config, args.source)
        stop = threading.Event()
        feed = feed_events(args, fc0, stop) if args.role == "feed" else None
        if args.role != "run":  # the supervisor's children serve theirs (see _run_all)
            metrics.serve(cfg.metrics_port)
    except Exception as exc:  # noqa: BLE001 - start-up problems are one line, not a traceback
        if debug_enabled():
            traceback.print_exception(exc)
        sys.stderr.write(f"{prog}: error: {one_line(exc)}\n")
        return exit_code(exc)
    logs.setup(args.role, settings.log_level or "INFO")
    log.info(
        "starting", extra={"role": args.role, "redis": redact(cfg.redis_url), "shards": cfg.shards}
    )
    try:
        return _run_role(args, cfg, settings, feed, stop)
    except Exception as exc:  # noqa: BLE001 - a crash is one structured log line
        log.error("worker failed: %s", one_line(exc), exc_info=exc)
        return exit_code(exc)


def _run_role(
    args: argparse.Namespace, cfg: LiveConfig, settings: Settings, feed: Any, stop: threading.Event
) -> int:
    fc = _feature_config(args.config, args.source)
    if args.role == "run":
        return _run_all(args, cfg, settings)
    _stop_on_signals(stop)
    if args.role == "exporter":
        from live.exporter import run_exporter

        run_exporter(args.reports or settings.layout.reports, stop)
        return 0
    if args.role == "feed":
        from live.feedrunner import run_feed

        stats = run_feed(
            cfg,
            feed,
            stop,
            src=args.source,
            leader=fc.leader,
            lockstep=args.lockstep,
            wait_workers=args.speed is not None and args.source != "binance",
        )
        log.info(
            "feed stats",
            extra={
                "ticks": stats.ticks,
                "clocks": stats.clocks,
                "seconds": round(stats.seconds, 3),
            },
        )
    elif args.role == "materializer":
        from live.materializer import run_materializer

        own = args.own if args.own is not None else list(range(cfg.shards))
        run_materializer(
            cfg, own, stop, fc, consumer_name=args.consumer, rules=_rules(args),
            registry=args.registry,
        )
    elif args.role == "scorer":
        from live.scorer import run_scorer

        run_scorer(
            cfg, args.registry, stop, _decision_config(args.config, args.source), fc,
            index=args.index,
        )
    elif args.role == "ledger":
        from live.ledger import run_ledger

        run_ledger(cfg, stop, _execution_config(args.config, args.source), fc)
    elif args.role == "writer":
        from live.writer import TickWriter

        TickWriter(cfg, consumer=args.consumer or "writer-0", rules=_rules(args)).run(stop)
    return 0


def _run_all(args: argparse.Namespace, cfg: LiveConfig, settings: Settings) -> int:
    import redis

    from live import state
    from live.replay import children
    from live.supervisor import Supervisor

    client = redis.Redis.from_url(cfg.redis_url, socket_connect_timeout=5)
    state.mark(cfg, client, "run")  # a replay will not wipe this database by accident
    client.close()
    spec = ReplaySpec(
        source=args.source,
        ticks=args.ticks,
        day=args.day,
        symbols=tuple(args.symbols) if args.symbols else None,
        speed=args.speed,
        max_seconds=args.max_seconds,
        close_real_s=args.close_real_s,
        lockstep=args.lockstep,
        config=args.config,
        registry=args.registry,
        materializers=args.materializers,
        url=args.url,
        sim_symbols=args.sim_symbols,
        signal_strength=args.signal_strength,
        seed=args.seed,
        workdir=str(settings.workdir),
        metrics_port_base=cfg.metrics_port,
    )
    sup = Supervisor(children(cfg, spec, env={}))
    sup.install_signals()
    ports = {
        c.name: c.argv[c.argv.index("--metrics-port") + 1]
        for c in sup.children
        if "--metrics-port" in c.argv
    }
    log.info(
        "supervisor",
        extra={
            "children": json.dumps([c.name for c in sup.children]),
            "metrics_ports": json.dumps(ports),
        },
    )
    return sup.run()


if __name__ == "__main__":
    sys.exit(main())
