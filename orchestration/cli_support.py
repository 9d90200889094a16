"""What makes the `tickml` command line safe to use: one-line errors, exit codes, argument checks.

Every error ends in ONE line on stderr, ``tickml <command>: error: <what is wrong, what to do>``,
and exit status 2 for usage errors (bad arguments, configuration, a refused target: see
:class:`tickml.errors.UsageError`) or 1 for failures (a run that failed, a server that refused);
130 on Ctrl-C. ``--debug`` (or ``TICKML_DEBUG=1``) prints the full traceback first. The
validators here turn a bad value into a usage error before any work starts.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

try:  # typer >= 0.2x vendors click; its exceptions are not the click package's
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - a typer that uses click itself
    from click import exceptions as cx  # type: ignore[no-redef]

from tickml.errors import (
    RunFailed,
    UsageError,
    break_cycles,
    debug_enabled,
    exit_code,
    one_line,
)


def _err(prog: str, message: str) -> None:
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.stderr.flush()


def run_command(command: Any, argv: Sequence[str] | None = None, prog: str = "tickml") -> int:
    """Run a click/typer command; every error becomes one line on stderr. The exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = debug_enabled(args)
    try:
        rv = command.main(args=args, prog_name=prog, standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except cx.NoArgsIsHelpError as exc:
        sys.stdout.write(exc.ctx.get_help() + "\n")
        return 2
    except cx.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx is not None else prog
        _err(path, f"{' '.join(exc.format_message().split())} (see `{path} --help`)")
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _err(prog, "interrupted")
        return 130
    except cx.ClickException as exc:
        _err(prog, " ".join(exc.format_message().split()))
        return int(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the command line's last line of defence
        break_cycles(exc)
        if debug:
            traceback.print_exception(exc)
        _err(f"{prog} {_command_name(command, args)}".strip(), one_line(exc))
        return exit_code(exc)


def _command_name(command: Any, args: Sequence[str]) -> str:
    """The subcommand path named in ``args`` (``live replay``), for the error prefix."""
    names = []
    group = command
    for w in (a for a in args if not a.startswith("-")):
        sub = getattr(group, "commands", {}).get(w)
        if sub is None:
            break
        names.append(w)
        group = sub
    return " ".join(names)


class SafeTyper(typer.Typer):
    """A :class:`typer.Typer` whose errors are one line (see the module documentation)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        argv = kwargs.get("args", args[0] if args else None)
        sys.exit(run_command(typer.main.get_command(self), argv, kwargs.get("prog_name", "tickml")))


# ------------------------------------------------------------------------------- validators


def date_value(value: str | None, what: str = "date") -> dt.date | None:
    """``YYYY-MM-DD`` -> date (None stays None); a usage error otherwise."""
    from tickml.days import parse_day

    return parse_day(value, what)


def date_option(value: str | None) -> str | None:
    """typer callback: a YYYY-MM-DD option."""
    try:
        date_value(value)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def duration_value(text: str, what: str = "duration", positive: bool = True) -> str:
    """'15m' / '1m' / '90s' / '1h' / '15min' -> a pandas offset string ('15min')."""
    import pandas as pd

    t = text.strip().lower()
    if t.endswith("m") and t[:-1].isdigit():
        t = t + "in"
    try:
        td = pd.Timedelta(t)
    except (ValueError, TypeError):
        raise UsageError(f"{what} {text!r} is not a duration (e.g. 1m, 15m, 90s, 1h)") from None
    if pd.isna(td) or (td <= pd.Timedelta(0) if positive else td < pd.Timedelta(0)):
        raise UsageError(f"{what} {text!r} must be {'> 0' if positive else '>= 0'}")
    return t


def tolerance_option(value: str | None) -> str | None:
    """typer callback: an out-of-order tolerance (a duration >= 0)."""
    if value is None:
        return None
    try:
        duration_value(value, "out-of-order tolerance", positive=False)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def horizons_value(text: str) -> tuple[str, str]:
    """'SHORT,LONG' label horizons: exactly two durations, the short one shorter."""
    import pandas as pd

    parts = [p for p in (x.strip() for x in text.split(",")) if p]
    if len(parts) != 2:
        raise UsageError(
            f"--horizons {text!r}: give exactly two horizons, SHORT,LONG (e.g. 15m,30m)"
        )
    short, long = (duration_value(p, "horizon") for p in parts)
    if pd.Timedelta(short) >= pd.Timedelta(long):
        raise UsageError(f"--horizons {text!r}: the short horizon must be shorter than the long")
    return short, long


def symbols_value(text: str | None) -> list[str] | None:
    """'A,B' -> ['A', 'B'] (upper case, each an allowed symbol)."""
    if not text:
        return None
    from tickml.validation import symbol_error

    out = [s.strip().upper() for s in text.split(",") if s.strip()]
    for s in out:
        why = symbol_error(s)
        if why is not None:
            raise UsageError(f"--symbols: {s[:40]!r} is not a valid symbol ({why})")
    if not out:
        raise UsageError("--symbols is empty: give comma-separated symbols, e.g. AIG,IBM")
    return out


def finite(value: float | None, what: str, minimum: float | None = None) -> None:
    if value is None:
        return
    if not math.isfinite(value) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise UsageError(f"{what} must be a finite number{bound}, not {value}")


def pg_url_value(url: str | None, connect: bool = True) -> str | None:
    """A PostgreSQL URL that parses and (``connect``) accepts a connection within seconds."""
    if not url:
        return None
    from tickml.redact import redact
    from tickml.store.postgres import normalize_url

    try:
        conninfo = normalize_url(url)
    except ValueError as exc:
        raise UsageError(
            f"PostgreSQL URL {redact(url)!r}: {exc} (set --pg-url or TICKML_PG_URL)"
        ) from None
    if connect:
        import psycopg

        try:
            psycopg.connect(conninfo, connect_timeout=5).close()
        except psycopg.Error as exc:
            msg = " ".join(str(exc).split())
            raise RunFailed(
                f"cannot connect to PostgreSQL at {redact(url)}: {msg} "
                "(check --pg-url / TICKML_PG_URL and that the server runs)"
            ) from None
    return url


def config_value(path: Path | None) -> Any:
    """The run configuration of ``path`` (defaults for None); a usage error otherwise."""
    from tickml.config import load_run_config

    return load_run_config(path)


def partition_days(days: Sequence[dt.date], settings: Any) -> None:
    """Every day must be a daily partition of the Dagster definitions (TICKML_PARTITION_START
    up to the last day that has ended in the market's time zone)."""
    from assets.partitions import daily_partitions

    first = settings.partition_start
    last_key = daily_partitions(settings).get_last_partition_key()
    last = dt.date.fromisoformat(last_key) if last_key else first - dt.timedelta(days=1)
    early = [d for d in days if d < first]
    late = [d for d in days if d > last]
    if early:
        raise UsageError(
            f"{len(early)} day(s) before the first daily partition {first} (from {early[0]}): "
            f"set TICKML_PARTITION_START={early[0]} or pick later days with --start"
        )
    if late:
        raise UsageError(
            f"{len(late)} day(s) after the last daily partition {last} (from {late[0]}): a "
            "day becomes a partition once it has ended; pick earlier days with --end"
        )
