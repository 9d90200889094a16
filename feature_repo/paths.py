"""Where the Feast definitions find the feature tables (resolved when the repo is applied)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def workdir() -> Path:
    return Path(os.environ.get("TICKML_WORKDIR", REPO_ROOT / "work")).resolve()


def features_path() -> str:
    """Directory of the batch feature tables: ``<lake>/features/date=YYYY-MM-DD/*.parquet``."""
    return os.environ.get("TICKML_FEATURES_PATH", str(workdir() / "lake" / "features"))


def feast_home() -> Path:
    return Path(os.environ.get("TICKML_FEAST_HOME", workdir() / "feast")).resolve()
