"""MLflow tracking against a real `mlflow server` (PostgreSQL backend store, as in production).

A small real experiment (simulated panel, walk-forward, SHAP selection, dual LightGBM,
baselines, backtest) is saved twice to the registry (a retrain on the same data) and logged
through ``MlflowResource``, the resource the ``model_experiment`` and ``champion_model`` assets
call. Read back with MLflow's client: two comparable runs (same parameters and metric keys,
per-fold metrics as steps, the report and plots as artifacts, the SHAP table), the registry
manifests record their run ids, and promotion moves the ``tickml.champion`` tag. Headless
Chromium renders the run page.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from _servers import free_port, running
from _sim_data import sim_dataset
from test_models import SMALL_FEATURES, small_config
from test_ui_browser import _browser, _chromium

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture()
def mlflow_server(tmp_path: Path, fresh_pg_url: str):
    """`mlflow server` on 127.0.0.1 with the test's own PostgreSQL database as backend store
    and a temporary artifacts folder; yields its URL once /health answers."""
    _chromium()  # skip (or fail under CI) before starting a server for nothing
    base = f"http://127.0.0.1:{free_port()}"
    argv = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1",
            "--port", base.rsplit(":", 1)[1], "--workers", "1",
            "--backend-store-uri", fresh_pg_url.replace("postgresql://", "postgresql+psycopg://"),
            "--artifacts-destination", str(tmp_path / "artifacts")]
    env = {"MLFLOW_DISABLE_TELEMETRY": "true"}
    with running(argv, f"{base}/health", tmp_path / "mlflow.log", env, timeout_s=180):
        yield base


def test_two_training_runs_in_a_real_mlflow_server(mlflow_server: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient
    from PIL import Image

    from assets.resources import MlflowResource
    from tickml.models import run_experiment
    from tickml.models.registry import ModelRegistry
    from tickml.report import write_reports

    ds, feats = sim_dataset(3, 4, 1.0, feature_config=SMALL_FEATURES, leader_beta=0.0)
    result = run_experiment(ds, feats, small_config())
    res = result.to_dict()
    paths = write_reports(res, tmp_path / "reports")
    tracker = MlflowResource(tracking_uri=mlflow_server, workdir=str(tmp_path))
    reg = ModelRegistry(tmp_path / "models")
    versions = []
    for _ in range(2):  # the asset's sequence: start, save with the run id, log, promote
        run = tracker.start_run("training", {"tickml.data_hash": res["data_hash"]})
        assert run is not None and run["tracking_uri"] == mlflow_server
        version = reg.save(result, metadata={"mlflow": run})
        assert tracker.log_training(
            run, version, res, {"experiment": res["config"], "data": {"n_rows": res["n_rows"]}},
            paths, (False, ["3 out-of-sample days: fewer than 5"]),
            {"tickml.feature_service": reg.manifest(version)["feature_service"]},
        )
        previous = reg.champion()
        reg.set_champion(version)
        assert tracker.mark_champion(
            run, version, reg.manifest(previous)["metadata"]["mlflow"] if previous else None
        )
        versions.append(version)

    client = MlflowClient(tracking_uri=mlflow_server)
    exp = client.get_experiment_by_name("tickml")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.info.run_name for r in runs] == versions == ["v1", "v2"]
    for r, v in zip(runs, versions, strict=True):
        assert reg.manifest(v)["metadata"]["mlflow"]["run_id"] == r.info.run_id
        assert r.info.status == "FINISHED" and r.data.tags["tickml.version"] == v
    a, b = runs
    # comparable: the same parameters and metrics (a retrain on the same data: equal values)
    assert a.data.params == b.data.params and "experiment.walk_forward.mode" in a.data.params
    assert set(a.data.metrics) == set(b.data.metrics)
    for key in ("oos.short.ic", "oos.short.log_loss", "oos.momentum_short.log_loss",
                "oos.logistic_short.ic", "oos.short.ic_ci95_low", "backtest.net_pnl",
                "backtest.n_trades", "selection.fold_spearman_mean"):
        assert a.data.metrics[key] == b.data.metrics[key], key
    assert a.data.metrics["oos.short.ic"] == pytest.approx(res["models"][0]["oos"]["ic"])
    folds = client.get_metric_history(a.info.run_id, "fold.short.ic")
    assert [m.step for m in folds] == list(range(len(res["folds"])))
    arts = {f.path for f in client.list_artifacts(a.info.run_id, "report")}
    assert {"report/evaluation.html", "report/evaluation.json", "report/equity_curve.png"} <= arts
    table = Path(client.download_artifacts(a.info.run_id, "selection/shap_selection.json",
                                           str(tmp_path)))
    shap = json.loads(table.read_text())  # MLflow's table format: columns + data
    col = shap["columns"].index("feature")
    assert [row[col] for row in shap["data"][:3]] == res["selection"]["features"][:3]
    # promotion is visible: v2 is the champion, v1 was replaced by it
    assert client.get_run(b.info.run_id).data.tags["tickml.champion"] == "true"
    old = client.get_run(a.info.run_id).data.tags
    assert old["tickml.champion"] == "false" and old["tickml.replaced_by"] == "v2"
    assert client.get_experiment(exp.experiment_id).tags["tickml.champion_version"] == "v2"
    assert a.data.tags["tickml.promotion"] == "refused"

    # the run page in a real browser
    page = f"{mlflow_server}/#/experiments/{exp.experiment_id}/runs/{b.info.run_id}"
    dom = _browser(tmp_path, "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "v2" in dom.stdout and "oos.short.ic" in dom.stdout, dom.stdout[-2000:]
    shot = tmp_path / "run.png"
    res_shot = _browser(tmp_path, f"--screenshot={shot}", page)
    assert res_shot.returncode == 0, res_shot.stderr[-2000:]
    with Image.open(shot) as img:
        assert img.size == (1400, 900)
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 50
    keep = os.environ.get("TICKML_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        (Path(keep) / "mlflow_run.png").write_bytes(shot.read_bytes())
