"""What the benchmarks share: where the real data sets are (``TICKML_SHARED_DATA``, default
``../shared/data`` beside this checkout), read through the settings."""

from __future__ import annotations

from pathlib import Path

from tickml.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def data_root(settings: Settings | None = None) -> Path:
    s = settings or Settings.from_env()
    return s.shared_data or REPO.parent / "shared" / "data"


def equity_root(settings: Settings | None = None) -> Path:
    """The real US equity week (AlgoSeek files, 2013-10-07..11)."""
    return data_root(settings) / "equity-ticks-2013"
