"""The `tickml` command line: the app, its global options, and its commands by family.

It lives in ``orchestration`` rather than ``tickml`` because some commands drive Dagster, and the
``tickml`` library stays free of Dagster and Feast imports. Heavy imports happen inside commands so
``tickml --help`` is instant.

The families: ``cli_ingest`` (`ingest`), ``cli_pipeline`` (`run`, `demo`), ``cli_tools``
(`config`, `simulate`, `quarantine`, `bench`, `fracdiff-d`), ``cli_live`` (`live ...`); what
they share is in ``cli_base`` (consoles, progress, a command's settings) and ``cli_support``
(one-line errors, exit codes, argument checks).
"""

from __future__ import annotations

import logging
import warnings

import typer

from orchestration.cli_ingest import ingest
from orchestration.cli_live import live_app
from orchestration.cli_pipeline import demo, run
from orchestration.cli_support import SafeTyper
from orchestration.cli_tools import bench, fracdiff_d, quarantine, show_config, simulate

app = SafeTyper(
    help="tickml: learn short-horizon price direction from market ticks and serve it live. "
    "Errors are one line (exit 2: usage, 1: failure); --debug shows tracebacks.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
# the order of `tickml --help`
app.command()(ingest)
app.command()(demo)
app.command()(run)
app.command("config")(show_config)
app.command()(simulate)
app.command()(quarantine)
app.command()(bench)
app.command("fracdiff-d")(fracdiff_d)
app.add_typer(live_app, name="live")


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
