"""What the `tickml` command families share: the two consoles, the progress bar, a command's
settings and the help texts several commands repeat."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tickml.settings import Settings

#: progress, status and notes (stderr)
console = Console(stderr=True)
#: results (stdout); piped output (CI logs, `| tee`) gets a readable width instead of rich's 80
#: columns
out = Console(width=None if sys.stdout.isatty() else 140)

SOURCE_HELP = "simulator | equity-ticks | binance | canonical"
WORKDIR_HELP = "Working directory (default: TICKML_WORKDIR, else ./work)."


def command_settings(workdir: Path | None = None, **overrides: Any) -> Settings:
    """This command's settings: the environment, read once, with the command's options."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings.from_env().with_workdir(workdir).model_copy(update=given)


def progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
