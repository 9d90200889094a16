"""`tickml run` end to end: the whole offline graph through Dagster on the simulator."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OOS_KEYS = {"n", "log_loss", "balanced_accuracy", "directional_accuracy", "macro_f1", "ic",
            "ic_ci95"}
SCORE_KEYS = {"n", "directional_accuracy", "ic", "ic_ci95", "n_ic", "n_days"}


def test_tickml_run_writes_reports_registry_and_feature_service(tmp_path):
    work = tmp_path / "run"
    # the command runs in a child process with this environment: its settings
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    cmd = [str(Path(sys.executable).parent / "tickml"), "run", "--workdir", str(work),
           "--days", "3", "--sim-symbols", "4", "--horizons", "5m,15m"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "out-of-sample evaluation" in proc.stdout

    ev = json.loads((work / "reports" / "evaluation.json").read_text())
    assert [m["name"] for m in ev["models"]][:3] == ["short", "long", "direction"]
    assert [m["horizon"] for m in ev["models"]][:3] == ["5m", "15m", "5m"]
    assert ev["decision_model"] == "direction"
    assert ev["models"][0]["classes"] == ["UP", "DOWN", "FLAT", "TRAP_UP", "TRAP_DOWN"]
    assert ev["models"][1]["classes"] == ["UP", "DOWN", "FLAT"]
    for m in ev["models"] + ev["baselines"]:
        # score models and plain rules (no classes) have no log loss or calibration
        assert (OOS_KEYS if m["classes"] else SCORE_KEYS) <= set(m["oos"]), m["name"]
        assert m["oos"]["n"] > 0
    assert {"logistic_short", "momentum_short", "microprice_short", "imbalance_short"} <= {
        b["name"] for b in ev["baselines"]
    }
    assert {"net_pnl", "sharpe", "max_drawdown", "n_trades", "hit_rate"} <= set(ev["backtest"])
    assert ev["backtest_sized"]["sizing"] == "volatility"  # the sized book beside the unit one
    assert "unit size" in proc.stdout and "sized" in proc.stdout
    assert 0 < len(ev["selection"]["features"]) <= 70  # top-K, fewer when few are used
    html = (work / "reports" / "evaluation.html").read_text()
    assert "data:image/png;base64" in html and "baselines" in html

    # the registry holds the version with LightGBM text models and a manifest, no pickle
    version = ev["version"]
    vdir = work / "models" / version
    assert (vdir / "short.txt").read_text().startswith("tree")
    manifest = json.loads((vdir / "manifest.json").read_text())
    assert manifest["features"] == ev["selection"]["features"]
    assert not list(vdir.rglob("*.pkl")) and not list(vdir.rglob("*.pickle"))

    # the selection is a versioned Feast FeatureService in the registry of this workdir
    from feature_repo.store import load_store
    from tickml.workdir import Workdir

    service = load_store("local", Workdir(work)).get_feature_service(ev["feature_service"])
    names = [f.name for proj in service.feature_view_projections for f in proj.features]
    assert names == ev["selection"]["features"]

    # the training set the models saw is point-in-time: no feature after its row's time
    data = pd.read_parquet(work / "lake" / "datasets" / "training.parquet")
    t = data["event_timestamp"].astype("datetime64[ns, UTC]").astype("int64")
    assert (data["row_event_ns"] <= t).all() and (data["last_tick_ns"] <= t).all()

    # the champion moves only when the blocking check passed
    champion = work / "models" / "champion.json"
    promoted = "not promoted" not in proc.stdout
    assert champion.exists() == promoted

    # the run is in the embedded MLflow store under the workdir; the manifest has its id
    from mlflow.tracking import MlflowClient

    ref = manifest["metadata"]["mlflow"]
    assert ref["tracking_uri"] == f"sqlite:///{work / 'mlflow' / 'mlflow.db'}"
    run = MlflowClient(tracking_uri=ref["tracking_uri"]).get_run(ref["run_id"])
    assert run.info.run_name == version and run.info.status == "FINISHED"
    assert run.data.metrics["oos.short.ic"] == pytest.approx(ev["models"][0]["oos"]["ic"])
    assert "oos.momentum_short.log_loss" in run.data.metrics
    assert run.data.params["labels.short_horizon"] == "5min"
    assert run.data.tags["tickml.champion"] == ("true" if promoted else "false")
    client = MlflowClient(ref["tracking_uri"])
    arts = {a.path for a in client.list_artifacts(ref["run_id"], "report")}
    assert "report/evaluation.html" in arts
