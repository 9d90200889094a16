"""Drift: PSI, adversarial validation, real Evidently reports on simulator feature tables, the
``drift_report`` asset and the drift sensor over a real (sqlite) Dagster instance.

The reference is three days of a stationary simulated market (regime multipliers all 1, so
days differ only by chance); the stable day is a fourth day of it, the shifted day the same
market with 3x the volatility, wider spreads and twice the activity.
"""

import datetime as dt
import json
import math
import warnings

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from tickml.drift import DriftConfig, adversarial_auc, drift_summary, evidently_report, psi
from tickml.features import FeatureConfig, compute_features, feature_names
from tickml.lake import FeatureTables
from tickml.simulator import SimConfig, simulate_day

REF_DAYS = [dt.date(2024, 1, 8), dt.date(2024, 1, 9), dt.date(2024, 1, 10)]
STABLE_DAY = dt.date(2024, 1, 11)
SHIFTED_DAY = dt.date(2024, 1, 12)
STATIONARY = SimConfig(
    n_symbols=6,
    seed=7,
    regime_vol=(1.0, 1.0, 1.0),
    regime_intensity=(1.0, 1.0, 1.0),
    spread_probs_volatile=(0.7, 0.22, 0.08),
    trend_drift=0.0,
)
SHIFTED = STATIONARY.model_copy(
    update={"daily_vol": 0.045, "spread_probs": (0.2, 0.4, 0.4), "base_intensity": 2.0}
)
# Evidently costs ~0.1 s per column whatever the rows: 40 evenly spaced features in tests
CFG = DriftConfig(evidently_max_columns=40, evidently_max_rows=2000)


def _features(cfg: SimConfig, day: dt.date) -> pd.DataFrame:
    feats = compute_features(simulate_day(cfg, day).ticks, FeatureConfig(leader=None))
    feats["row_event_ns"] = feats["event_timestamp"].astype("int64")
    feats["last_tick_ns"] = feats["last_tick_ts"].astype("int64")
    return feats


@pytest.fixture(scope="module")
def days() -> dict[dt.date, pd.DataFrame]:
    out = {d: _features(STATIONARY, d) for d in [*REF_DAYS, STABLE_DAY]}
    out[SHIFTED_DAY] = _features(SHIFTED, SHIFTED_DAY)
    return out


@pytest.fixture(scope="module")
def reference(days) -> pd.DataFrame:
    return pd.concat([days[d] for d in REF_DAYS], ignore_index=True)


@pytest.fixture(autouse=True)
def _quiet_evidently():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ------------------------------------------------------------------ PSI


@pytest.mark.unit
def test_psi_identical_is_zero_and_shift_is_large():
    rng = np.random.default_rng(0)
    x = rng.normal(size=5000)
    assert psi(x, x) == pytest.approx(0.0, abs=1e-12)
    assert psi(x, rng.normal(size=5000)) < 0.05  # same distribution, other sample
    assert psi(x, rng.normal(1.0, 1.0, size=5000)) > 0.2
    assert psi(x, rng.normal(0.0, 3.0, size=5000)) > 0.2


@pytest.mark.unit
def test_psi_nan_safe_and_discrete():
    x = np.array([1.0, 2.0, np.nan, np.inf, 3.0] * 200)
    assert psi(x, x) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(psi(x, np.full(10, np.nan)))
    # a discrete feature: every value in its own bin; a new value lands in an edge bin
    d = np.repeat([0.0, 1.0, 2.0], 300)
    assert psi(d, d) == pytest.approx(0.0, abs=1e-12)
    assert psi(d, np.repeat([0.0, 2.0], 450)) > 0.2


@pytest.mark.unit
def test_psi_real_features(days, reference):
    cur = days[SHIFTED_DAY]
    assert psi(reference["rv_s300"], reference["rv_s300"]) == 0.0
    assert psi(reference["rv_s300"], cur["rv_s300"]) > 1.0  # 3x volatility
    assert psi(reference["tod_sin"], cur["tod_sin"]) < 0.05  # same sampling grid


# ------------------------------------------------------------------ adversarial validation


@pytest.mark.unit
def test_adversarial_auc_half_without_drift_high_with(days, reference):
    cols = [c for c in feature_names(FeatureConfig(leader=None)) if reference[c].notna().any()]
    shuffled = reference.sample(frac=1.0, random_state=1)
    half = len(shuffled) // 2
    same = adversarial_auc(shuffled.iloc[:half], shuffled.iloc[half:], seed=0, columns=cols)
    assert abs(same["auc"] - 0.5) < 0.06, same
    shifted = adversarial_auc(reference, days[SHIFTED_DAY], seed=0, columns=cols)
    assert shifted["auc"] > 0.95
    assert set(shifted["top_features"]) & {"rv_s60", "rv_s300", "atr_pct_b14", "std_t180"}


# ------------------------------------------------------------------ Evidently + summary


@pytest.mark.slow
def test_evidently_report_extracts_per_column_drift(days, reference):
    cols = ["rv_s300", "std_t180", "tod_sin", "lead_ret_b1"]  # lead_* all NaN (no leader)
    html, summary = evidently_report(reference, days[SHIFTED_DAY], cols)
    assert html.lstrip().lower().startswith("<html") or "<html" in html[:500].lower()
    assert summary["skipped"] == ["lead_ret_b1"]
    assert set(summary["columns"]) == {"rv_s300", "std_t180", "tod_sin"}
    assert summary["columns"]["rv_s300"]["drifted"] and summary["columns"]["std_t180"]["drifted"]
    assert not summary["columns"]["tod_sin"]["drifted"]
    assert summary["drifted_share"] == pytest.approx(2 / 3)


@pytest.mark.slow
def test_drift_summary_shifted_retrains_stable_does_not(days, reference):
    stable = drift_summary(
        reference, days[STABLE_DAY], CFG, ref_scores=[0.1, 0.2, 0.3], cur_scores=[0.1, 0.25, 0.3]
    )
    shifted = drift_summary(reference, days[SHIFTED_DAY], CFG)
    json.dumps(stable)
    json.dumps(shifted)  # JSON-able
    assert stable["retrain"] is False and stable["reasons"] == []
    assert stable["adversarial_auc"] < CFG.adversarial_auc_threshold
    assert stable["drifted_share"] <= CFG.drifted_share_threshold
    assert stable["current_predictions"]["n"] == 3
    assert shifted["retrain"] is True
    assert shifted["adversarial_auc"] > 0.95
    assert shifted["drifted_share"] > 0.5
    assert shifted["n_drifted_psi"] > 3 * stable["n_drifted_psi"]
    assert any("adversarial AUC" in r for r in shifted["reasons"])
    assert any("drifted share" in r for r in shifted["reasons"])
    # the champion's recent IC below the floor is a reason of its own
    ic_cfg = CFG.model_copy(update={"min_ic": 0.01, "evidently_max_columns": 5})
    low_ic = drift_summary(reference, days[STABLE_DAY], ic_cfg, recent_ic=-0.02)
    assert low_ic["retrain"] and any("IC" in r for r in low_ic["reasons"])


# ------------------------------------------------------------------ asset + sensors


@pytest.mark.slow
@pytest.mark.integration
def test_drift_report_asset_and_sensor(tmp_path, days):
    from assets.drift import drift_report
    from orchestration.sensors import make_drift_sensor, retrain_job

    lake = tmp_path / "lake"
    tables = FeatureTables(lake)
    for d, frame in days.items():
        tables.write_day(frame, d)
    home = tmp_path / "dagster_home"
    home.mkdir()
    instance = dg.DagsterInstance.local_temp(str(home))
    resources = _resources(tmp_path)  # no champion: the reference is the days before
    run_config = {
        "ops": {
            "drift_report": {"config": {"evidently_max_columns": 40, "evidently_max_rows": 2000}}
        }
    }

    def materialize(day: dt.date):
        res = dg.materialize(
            [drift_report],
            partition_key=day.isoformat(),
            instance=instance,
            resources=resources,
            run_config=run_config,
        )
        assert res.success
        return res

    now = [1_000_000.0]
    sensor = make_drift_sensor(cooldown_s=86_400, clock=lambda: now[0])

    def tick(cursor: str | None) -> tuple[list[dg.RunRequest], str | None]:
        data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
        return list(data.run_requests or []), data.cursor

    # stable day: report written, check passes, no retrain requested
    res = materialize(STABLE_DAY)
    md = res.asset_materializations_for_node("drift_report")[0].metadata
    assert md["retrain"].value is False
    assert res.get_asset_check_evaluations()[0].passed
    html = tmp_path / "reports" / "drift" / f"{STABLE_DAY}.html"
    assert md["report"].value == str(html) and html.stat().st_size > 10_000
    saved = json.loads((tmp_path / "reports" / "drift" / f"{STABLE_DAY}.json").read_text())
    assert saved["reference_days"] == [d.isoformat() for d in REF_DAYS]
    assert saved["reference"] == md["reference"].value == "prior_days"
    assert "no champion" in saved["reference_note"] and saved["champion"] is None
    assert saved["recent_source"] == md["recent_source"].value == "batch"
    assert saved["recent_ic"] is None and saved["recent_ic_note"] == "no champion"
    assert 0 < md["runtime_s"].value == pytest.approx(saved["timings"]["total_s"], abs=1e-3)
    assert "| feature | PSI |" in md["top_psi"].value
    requests, cursor = tick(None)
    assert requests == []

    # shifted day: the check warns and the sensor requests the retrain job once
    res = materialize(SHIFTED_DAY)
    md = res.asset_materializations_for_node("drift_report")[0].metadata
    assert md["retrain"].value is True and md["adversarial_auc"].value > 0.9
    check = res.get_asset_check_evaluations()[0]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    requests, cursor = tick(cursor)
    assert [r.run_key for r in requests] == [f"drift-{SHIFTED_DAY}"]
    assert requests[0].tags["tickml/drift_partition"] == SHIFTED_DAY.isoformat()
    assert sensor.job_name == retrain_job.name == "retrain_job"
    requests, cursor = tick(cursor)
    assert requests == []  # the same event is not seen twice

    # the same drift again within the cooldown: nothing; after the cooldown: a new request
    materialize(SHIFTED_DAY)
    now[0] += 3600
    requests, _ = tick(cursor)
    assert requests == []
    now[0] += 86_400
    requests, _ = tick(cursor)
    assert len(requests) == 1 and requests[0].run_key == f"drift-{SHIFTED_DAY}"


def _resources(tmp_path) -> dict:
    from assets.resources import (
        LakeResource,
        ModelRegistryResource,
        PipelineConfigResource,
    )

    return {
        "lake": LakeResource(root=str(tmp_path / "lake")),
        "pipeline": PipelineConfigResource(),
        "registry": ModelRegistryResource(root=str(tmp_path / "models")),
    }


@pytest.mark.integration
def test_first_day_without_reference_is_skipped_not_failed(tmp_path, days):
    """The first day has no champion and no day before it: a skipped report (it used to fail,
    which kept drift_report out of the nightly job), the check passes saying why, and the
    drift sensor requests nothing."""
    from assets.drift import drift_report
    from orchestration.sensors import make_drift_sensor

    FeatureTables(tmp_path / "lake").write_day(days[REF_DAYS[0]], REF_DAYS[0])
    instance = dg.DagsterInstance.local_temp(str(tmp_path))
    res = dg.materialize(
        [drift_report],
        partition_key=REF_DAYS[0].isoformat(),
        instance=instance,
        resources=_resources(tmp_path),
    )
    assert res.success
    md = res.asset_materializations_for_node("drift_report")[0].metadata
    assert md["status"].value == "skipped" and md["reference"].value == "none"
    assert md["retrain"].value is False
    assert "no reference yet" in md["reason"].value and "2024-01-08" in md["reason"].value
    [check] = res.get_asset_check_evaluations()
    assert check.passed and "no reference yet" in check.description
    saved = json.loads((tmp_path / "reports" / "drift" / f"{REF_DAYS[0]}.json").read_text())
    assert saved["status"] == "skipped" and saved["retrain"] is False
    assert not (tmp_path / "reports" / "drift" / f"{REF_DAYS[0]}.html").exists()
    data = make_drift_sensor(86_400).evaluate_tick(dg.build_sensor_context(instance=instance))
    assert not data.run_requests and "none requiring a retrain" in data.skip_message


@pytest.mark.integration
def test_run_failure_sensor_reports_failed_drift_run(tmp_path, days, caplog):
    from assets.drift import drift_report
    from orchestration.sensors import run_failure_sensor

    lake = tmp_path / "lake"
    FeatureTables(lake).write_day(days[REF_DAYS[0]], REF_DAYS[0])
    home = tmp_path / "dagster_home"
    home.mkdir()
    instance = dg.DagsterInstance.local_temp(str(home))
    # a corrupted champion pointer: the asset fails with a clear message
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "champion.json").write_text("{not json")
    res = dg.materialize(
        [drift_report],
        partition_key=REF_DAYS[1].isoformat(),
        instance=instance,
        resources=_resources(tmp_path),
        raise_on_error=False,
    )
    assert not res.success
    failure = instance.all_logs(res.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)[0]
    failure = failure.dagster_event
    ctx = dg.build_run_status_sensor_context(
        sensor_name="run_failure_sensor",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=res.dagster_run,
    ).for_run_failure()
    with caplog.at_level("ERROR", logger="orchestration.sensors"):
        run_failure_sensor(ctx)
    text = caplog.text
    assert res.run_id in text and "FAILED" in text
    assert "step drift_report" in text and "champion.json is corrupted" in text
