"""The Dagster UI in a real headless browser: `dagster dev` with the project's workspace.yaml,
rendered by Debian's Chromium, shows the asset catalog and the asset graph with our assets."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from _servers import dagster_dev

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: The project's assets, as the UI must list them (every asset of orchestration.jobs.ASSETS:
#: test_the_list_is_every_asset keeps the two in step).
ASSETS = ("raw_ticks", "tick_features", "feast_registry", "online_features", "labels",
          "training_dataset", "model_experiment", "champion_model", "champion_evaluation",
          "online_consistency", "drift_report", "shadow_vs_backtest")
LOCATION = "orchestration.definitions"  # the code location named by workspace.yaml
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--virtual-time-budget=20000", "--window-size=1400,900")


def _chromium() -> str:
    # test-harness variables (not the application's settings): where Chromium is, whether CI
    path = os.environ.get("TICKML_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).is_file():
        msg = (f"Chromium not found at {path}: install Debian's package (apt-get install -y "
               "chromium; `make test` as root does it via scripts/services.sh)")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def dagster_ui(tmp_path_factory):
    """`dagster dev -w workspace.yaml` on a free port; yields its base URL once GraphQL answers
    with the asset graph (the code location is loaded)."""
    _chromium()  # skip (or fail under CI) before starting a server for nothing
    with dagster_dev(tmp_path_factory.mktemp("ui")) as base:
        yield base


def _browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},  # the browser's process, a throw-away home
    )


def _visible_text(html: str) -> str:
    import re

    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S | re.I)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_list_is_every_asset():
    from orchestration.jobs import ASSETS as DEFINED

    assert sorted(ASSETS) == sorted(a.key.to_user_string() for a in DEFINED)


def test_catalog_lists_the_project_assets(dagster_ui, tmp_path):
    res = _browser(tmp_path, "--dump-dom", f"{dagster_ui}/assets")
    assert res.returncode == 0, res.stderr[-2000:]
    text = _visible_text(res.stdout)
    missing = [a for a in ASSETS if a not in text]
    assert not missing, f"catalog page lacks {missing}: {text[:1500]}"
    # the asset groups are shown next to the assets
    for group in ("ingestion", "features", "labels", "training"):
        assert group in text


def test_asset_graph_shows_groups_and_nodes(dagster_ui, tmp_path):
    # the global lineage: one (collapsed) box per asset group
    res = _browser(tmp_path, "--dump-dom", f"{dagster_ui}/asset-groups")
    assert res.returncode == 0, res.stderr[-2000:]
    text = _visible_text(res.stdout)
    assert "Global asset lineage" in text
    for group in ("ingestion", "features", "labels", "training"):
        assert group in text, f"lineage lacks group {group}: {text[:1500]}"
    # one group's graph: raw_ticks as a node, with its downstream tick_features beside it
    res = _browser(tmp_path, "--dump-dom",
                   f"{dagster_ui}/locations/{LOCATION}/asset-groups/ingestion")
    assert res.returncode == 0, res.stderr[-2000:]
    text = _visible_text(res.stdout)
    assert "raw_ticks" in text and "tick_features" in text, text[:1500]


def test_screenshot_of_the_catalog(dagster_ui, tmp_path):
    from PIL import Image

    shot = tmp_path / "catalog.png"
    res = _browser(tmp_path, f"--screenshot={shot}", f"{dagster_ui}/assets")
    assert res.returncode == 0, res.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 20_000
    with Image.open(shot) as img:
        assert img.size == (1400, 900)
        # a rendered page, not a blank canvas: many distinct colours
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 50
