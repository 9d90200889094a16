"""Every command with bad arguments: one error line, exit status 2 (usage) or 1 (failure), in
seconds, no traceback (``tickml ...`` and ``python -m live ...``)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import typer
from _cli import LIVE, TICKML, error_line, run

import live.__main__ as live_main
from orchestration.cli import app
from orchestration.cli_support import run_command

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "malformed.yaml").write_text("labels: [short_horizon: 5m\n  - ]]\n")
    (tmp_path / "unknown.yaml").write_text("labels:\n  no_such_knob: 1\n")
    (tmp_path / "garbage.csv").write_text("symbol,ts,bid,ask,bid_size,ask_size,price,size\n"
                                          "AAA,not-a-time,1,2,1,1,,0\n,,,,,,,\n")
    return {
        "missing": str(tmp_path / "missing.yaml"),
        "malformed": str(tmp_path / "malformed.yaml"),
        "unknown": str(tmp_path / "unknown.yaml"),
        "garbage": str(tmp_path / "garbage.csv"),
        "work": str(tmp_path / "work"),
    }


# (arguments, exit status, a fragment of the error line); {name} = a path from `files`
TICKML_CASES = [
    ("nocommand", 2, "No such command"),
    ("ingest --out-of-order-tolerance abc", 2, "not a duration"),
    ("ingest --out-of-order-tolerance=-1s", 2, "must be >= 0"),
    ("ingest --pg-url notaurl --workdir {work}", 2, "PostgreSQL URL"),
    ("ingest --start 2024-13-01", 2, "--start"),
    ("ingest --start 2024-01-05 --end 2024-01-01 --workdir {work}", 2, "after --end"),
    ("ingest --ticks /nonexistent/ticks", 2, "no such file"),
    ("ingest --source nope --workdir {work}", 2, "--source"),
    ("ingest --symbols A/B --workdir {work}", 2, "not a valid symbol"),
    ("ingest --days 0", 2, "--days"),
    ("ingest --config {missing}", 2, "does not exist"),
    ("ingest --ticks {garbage} --source canonical --workdir {work}", 1, "were rejected"),
    ("run --horizons 5m --workdir {work}", 2, "exactly two horizons"),
    ("run --horizons 30m,5m --workdir {work}", 2, "shorter than the long"),
    ("run --horizons 5m,15m,30m --workdir {work}", 2, "exactly two horizons"),
    ("run --interval 0m --workdir {work}", 2, "must be > 0"),
    ("run --config {malformed} --workdir {work}", 2, "not valid YAML"),
    ("run --config {unknown} --workdir {work}", 2, "no_such_knob"),
    ("config --config {missing}", 2, "does not exist"),
    ("config --config {malformed}", 2, "not valid YAML"),
    ("simulate --days 0 --out x.parquet", 2, "--days"),
    ("simulate --out x.txt", 2, ".parquet"),
    ("simulate", 2, "--out"),
    ("quarantine --day notadate", 2, "not a date"),
    ("bench nope", 2, "unknown benchmark"),
    ("bench parse --set foo", 2, "KEY=VALUE"),
    ("bench parse --set nosuch=1", 2, "no setting nosuch"),
    ("demo --days 0", 2, "--days"),
    ("live replay --day bad", 2, "not a date"),
    ("live replay --shards 0", 2, "--shards"),
    ("live replay --source equity-ticks --day 2013-10-08", 2, "needs --ticks"),
    ("live nope", 2, "No such command"),
    ("live feed --shards 0", 2, "--shards"),
    ("--debug quarantine --day x", 2, "not a date"),
]

LIVE_CASES = [
    ("", 2, "required: role"),
    ("nope", 2, "invalid choice"),
    ("feed --day bad", 2, "not a date"),
    ("feed --speed -1", 2, "--speed"),
    ("feed --source equity-ticks --ticks /nonexistent --day 2013-10-08", 2, "no such file"),
    ("materializer --own 9", 2, "--own"),
    ("materializer --shards 0", 2, "--shards"),
    ("scorer --config {missing}", 2, "does not exist"),
    ("writer", 2, "TICKML_PG_URL"),
    ("run --max-seconds 0", 2, "--max-seconds"),
    ("feed --metrics-port 70000", 2, "--metrics-port"),
    ("feed --shards x", 2, "invalid int value"),
]


def _argv(text: str, files: dict[str, str]) -> list[str]:
    return text.format(**files).split()


@pytest.mark.parametrize(("args", "code", "fragment"), TICKML_CASES)
def test_tickml_bad_arguments(args, code, fragment, files, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TICKML_PG_URL", raising=False)
    rc = run_command(typer.main.get_command(app), _argv(args, files))
    _judge(rc, capsys.readouterr(), code, fragment)


@pytest.mark.parametrize(("args", "code", "fragment"), LIVE_CASES)
def test_live_bad_arguments(args, code, fragment, files, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("TICKML_PG_URL", raising=False)
    try:
        rc = live_main.main(_argv(args, files))
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    _judge(rc, capsys.readouterr(), code, fragment)


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [("--shards x", 2, "invalid literal"), ("", 2, "TICKML_PG_URL"), ("--nope", 2, "--nope")],
)
def test_writer_module_bad_arguments(args, code, fragment, capsys, monkeypatch):
    from live.writer import main

    monkeypatch.delenv("TICKML_PG_URL", raising=False)
    try:
        rc = main(args.split())
    except SystemExit as exc:
        rc = exc.code
    _judge(rc, capsys.readouterr(), code, fragment)


def _judge(rc, captured, code, fragment) -> None:
    out = captured.out + captured.err
    assert "Traceback" not in out, out[-3000:]
    errors = [ln for ln in captured.err.splitlines() if ": error: " in ln]
    assert len(errors) == 1, captured.err[-3000:]
    assert fragment in errors[0], errors[0]
    assert rc == code, (rc, errors[0])


def test_no_arguments_prints_help() -> None:
    proc = run([TICKML], timeout=60)
    assert proc.returncode == 2 and "Usage" in proc.stdout and not proc.stderr.strip()


def test_the_installed_commands_exit_with_the_status(files) -> None:
    """The console scripts themselves (a real process each): status and one line."""
    error_line(run([TICKML, "quarantine", "--day", "x"], timeout=60), 2, "not a date")
    error_line(run([TICKML, "run", "--horizons", "30m,5m"], timeout=60), 2, "shorter")
    error_line(run([TICKML, "live", "replay", "--day", "bad"], timeout=60), 2, "not a date")
    error_line(run([*LIVE, "feed", "--day", "bad"], timeout=60), 2, "not a date")
    error_line(run([sys.executable, "-m", "live", "nope"], timeout=60), 2, "invalid choice")


def test_a_busy_metrics_port_is_one_line(capsys, monkeypatch, tmp_path) -> None:
    """A worker whose metrics port is taken stops at start-up with one line naming the port
    (it used to print a traceback per restart under the supervisor)."""
    monkeypatch.chdir(tmp_path)
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        argv = ["exporter", "--metrics-port", str(port), "--reports", str(tmp_path)]
        rc = live_main.main(argv)
        _judge(rc, capsys.readouterr(), 2, f"metrics port 127.0.0.1:{port}")
