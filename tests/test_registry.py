"""The model registry: text models + manifest, integrity checks, champion pointer, promotion."""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _sim_data import PANEL_FEATURES, panel_dataset

from tickml.evaluation.splits import WalkForwardConfig
from tickml.labels import CLASSES_3, CLASSES_5
from tickml.models import (
    ExperimentConfig,
    ModelRegistry,
    RegistryError,
    SelectionConfig,
    TrainConfig,
    dataset_hash,
    predict_proba,
    promotion_decision,
    run_experiment,
    train_model,
)
from tickml.models.train import TrainedModel

FAST = TrainConfig(num_threads=1, n_estimators=40, min_child_samples=20)


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    ds = panel_dataset(n_days=3, seed=21)
    # NaNs in the features: the loaded model must route them the same way
    rng = np.random.default_rng(0)
    for c in PANEL_FEATURES[:4]:
        ds.loc[rng.random(len(ds)) < 0.1, c] = np.nan
    return ds


@pytest.fixture(scope="module")
def models(panel: pd.DataFrame) -> dict[str, TrainedModel]:
    tr, va = panel.iloc[:2000], panel.iloc[2000:2800]
    out = {}
    for name, lab, cls in (("short", "label_short", CLASSES_5), ("long", "label_long", CLASSES_3)):
        out[name] = train_model(tr, tr[lab], va, va[lab], cls, FAST, PANEL_FEATURES)
    return out


def manifest(
    ic: float | None,
    ci: list[float] | None,
    ll: float | None,
    mom_ll: float | None,
    horizons: dict[str, str] | None = None,
    version: str = "v9",
    n_days: int = 10,
) -> dict[str, Any]:
    return {
        "version": version,
        "horizons": horizons or {"short": "15m", "long": "30m"},
        "models": {"short": {"classes": list(CLASSES_5)}, "long": {"classes": list(CLASSES_3)}},
        "oos": {
            "short": {"ic": ic, "ic_ci95": ci, "log_loss": ll, "n_ic_days": n_days},
            "baselines": {"momentum_short": {"log_loss": mom_ll}},
        },
    }


@pytest.mark.unit
def test_round_trip_predicts_identically(
    tmp_path: Path, panel: pd.DataFrame, models: dict[str, TrainedModel]
) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    digest = dataset_hash(panel)
    window = {"start": "2024-03-04T14:31:00+00:00", "end": "2024-03-06T21:00:00+00:00"}
    v = reg.save(models, {"data_hash": digest, "training_window": window, "note": "unit"})
    assert v == "v1" and reg.versions() == ["v1"]
    loaded = reg.load(v)
    for name, m in models.items():
        got = loaded.models[name]
        assert got.classes == m.classes and got.features == m.features
        assert got.best_iteration == m.best_iteration
        np.testing.assert_array_equal(got.logit_offset, m.logit_offset)
        np.testing.assert_array_equal(predict_proba(got, panel), predict_proba(m, panel))
    # only text and JSON on disk: no pickle anywhere
    files = sorted(p.name for p in (tmp_path / "reg" / v).iterdir())
    assert files == ["long.txt", "manifest.json", "short.txt"]
    assert not list((tmp_path / "reg").glob(".tmp-*"))


@pytest.mark.unit
def test_manifest_fields(tmp_path: Path, models: dict[str, TrainedModel]) -> None:
    reg = ModelRegistry(tmp_path)
    v1 = reg.save(models, {"data_hash": "sha256:abc"})
    v2 = reg.save({"short": models["short"]})
    m = reg.manifest(v1)
    assert m["version"] == "v1" and m["format"] == 1
    assert m["features"] == PANEL_FEATURES
    assert m["feature_service"] == f"tick_features_top{len(PANEL_FEATURES)}_v1"
    assert m["data_hash"] == "sha256:abc"
    assert dt.datetime.fromisoformat(m["created_at"]).tzinfo is not None
    assert m["models"]["short"]["classes"] == list(CLASSES_5)
    assert m["models"]["long"]["classes"] == list(CLASSES_3)
    assert m["models"]["short"]["params"]["num_leaves"] == FAST.num_leaves
    assert len(m["models"]["short"]["sha256"]) == 64
    assert m["models"]["short"]["size"]["trees"] == models["short"].booster.num_trees()
    assert set(m["code_version"]) == {"git_commit", "dirty"}
    assert m["code_version"]["git_commit"] is None or len(m["code_version"]["git_commit"]) == 40
    assert m["libraries"]["lightgbm"] and m["libraries"]["python"]
    assert m["metadata"] == {"data_hash": "sha256:abc"}
    assert v2 == "v2" and list(reg.manifest(v2)["models"]) == ["short"]
    assert reg.load(v2).models.keys() == {"short"}


@pytest.mark.unit
def test_versions_sort_numerically(tmp_path: Path, models: dict[str, TrainedModel]) -> None:
    reg = ModelRegistry(tmp_path)
    for _ in range(11):
        reg.save({"long": models["long"]})
    assert reg.versions() == [f"v{i}" for i in range(1, 12)]
    (tmp_path / "notes").mkdir()  # stray entries are ignored
    (tmp_path / "v12.txt").write_text("x")
    assert reg.versions()[-1] == "v11"


@pytest.mark.unit
def test_champion_pointer(tmp_path: Path, models: dict[str, TrainedModel]) -> None:
    reg = ModelRegistry(tmp_path)
    assert reg.champion() is None
    with pytest.raises(RegistryError, match="no champion"):
        reg.load()
    v1, v2 = reg.save(models), reg.save(models)
    reg.set_champion(v1, build_runtime=False)  # the pointer only (tests/test_runtime.py builds)
    assert reg.champion() == v1
    reg.set_champion(v2, build_runtime=False)
    data = json.loads((tmp_path / "champion.json").read_text())
    assert data["version"] == v2 and data["previous"] == v1
    assert reg.load().version == v2
    with pytest.raises(RegistryError, match="not found"):
        reg.set_champion("v7")
    assert reg.champion() == v2  # a refused pointer change leaves the old one
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    (tmp_path / "champion.json").write_text("{not json")
    with pytest.raises(RegistryError, match="corrupted"):
        reg.champion()


@pytest.mark.unit
def test_corrupted_and_missing_files_give_clear_errors(
    tmp_path: Path, models: dict[str, TrainedModel]
) -> None:
    reg = ModelRegistry(tmp_path)
    v = reg.save(models)
    d = tmp_path / v
    with pytest.raises(RegistryError, match="not found"):
        reg.load("v2")
    with pytest.raises(RegistryError, match="not a version name"):
        reg.load("../etc")
    text = (d / "short.txt").read_text()
    (d / "short.txt").write_text(text.replace("leaf_value=", "leaf_value=1", 1))
    with pytest.raises(RegistryError, match=r"short\.txt is corrupted"):
        reg.load(v)
    (d / "short.txt").write_text(text)
    assert reg.load(v).short.classes == tuple(CLASSES_5)
    (d / "long.txt").unlink()
    with pytest.raises(RegistryError, match=r"long\.txt is missing"):
        reg.load(v)
    # a file that matches its hash but is not a LightGBM model
    man = json.loads((d / "manifest.json").read_text())
    (d / "long.txt").write_text("garbage\n")
    man["models"]["long"]["sha256"] = hashlib.sha256(b"garbage\n").hexdigest()
    (d / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(RegistryError, match="LightGBM cannot read"):
        reg.load(v)
    (d / "manifest.json").write_text("{")
    with pytest.raises(RegistryError, match="not valid JSON"):
        reg.load(v)
    (d / "manifest.json").unlink()
    with pytest.raises(RegistryError, match="manifest.json is missing"):
        reg.load(v)


@pytest.mark.unit
def test_save_rejects_bad_input(tmp_path: Path, models: dict[str, TrainedModel]) -> None:
    reg = ModelRegistry(tmp_path)
    with pytest.raises(ValueError, match="no models"):
        reg.save({})
    with pytest.raises(ValueError, match="model names"):
        reg.save({"medium": models["short"]})
    with pytest.raises(TypeError):
        reg.save([models["short"]])
    assert reg.versions() == []


@pytest.mark.unit
def test_promotion_rule_cases() -> None:
    good = manifest(0.05, [0.01, 0.09], 1.30, 1.35)
    ok, why = promotion_decision(good, None)
    assert ok, why
    assert any("first model" in r for r in why)
    # first model: the interval must exclude 0, the momentum baseline must be beaten
    assert not promotion_decision(manifest(0.05, [-0.01, 0.09], 1.30, 1.35), None)[0]
    assert not promotion_decision(manifest(0.05, None, 1.30, 1.35), None)[0]
    assert not promotion_decision(manifest(0.05, [0.01, 0.09], 1.36, 1.35), None)[0]
    assert not promotion_decision(manifest(0.05, [0.01, 0.09], 1.30, None), None)[0]
    assert not promotion_decision(manifest(None, None, None, None), None)[0]
    # too few out-of-sample days: a day-block bootstrap interval is no evidence
    ok, why = promotion_decision(manifest(0.05, [0.01, 0.09], 1.30, 1.35, n_days=4), None)
    assert not ok and any("fewer than 5" in r for r in why)
    # against a champion: strictly better IC and log loss, on comparable models
    champ = manifest(0.04, [0.01, 0.07], 1.31, 1.35, version="v1")
    assert promotion_decision(good, champ)[0]
    ok, why = promotion_decision(manifest(0.05, [0.01, 0.09], 1.32, 1.35), champ)
    assert not ok and any("does not beat v1's 1.3100" in r for r in why)
    ok, why = promotion_decision(manifest(0.03, [0.01, 0.09], 1.30, 1.35), champ)
    assert not ok and any("IC 0.0300 does not beat" in r for r in why)
    assert not promotion_decision(manifest(0.04, [0.01, 0.09], 1.30, 1.35), champ)[0]  # a tie
    other = manifest(0.05, [0.01, 0.09], 1.30, 1.35, horizons={"short": "5m", "long": "30m"})
    ok, why = promotion_decision(other, champ)
    assert not ok and any("not comparable" in r for r in why)
    # a better challenger that fails the absolute bar is still refused
    weak = manifest(0.05, [-0.02, 0.09], 1.30, 1.35)
    assert not promotion_decision(weak, champ)[0]
    # the champion's metrics are read, not assumed: a changed champion changes the answer
    better_champ = copy.deepcopy(champ)
    better_champ["oos"]["short"]["ic"] = 0.06
    assert not promotion_decision(good, better_champ)[0]


@pytest.mark.unit
def test_promote_if_better_moves_the_pointer(
    tmp_path: Path, models: dict[str, TrainedModel]
) -> None:
    reg = ModelRegistry(tmp_path)
    v1 = reg.save(models, {"oos": manifest(0.05, [0.01, 0.09], 1.30, 1.35)["oos"]})
    v2 = reg.save(models, {"oos": manifest(0.04, [0.01, 0.09], 1.29, 1.35)["oos"]})
    v3 = reg.save(models, {"oos": manifest(0.06, [0.02, 0.10], 1.29, 1.35)["oos"]})
    assert reg.promote_if_better(v1, build_runtime=False)[0] and reg.champion() == v1
    ok, why = reg.promote_if_better(v2, build_runtime=False)
    assert not ok and reg.champion() == v1
    assert reg.promote_if_better(v3, build_runtime=False)[0] and reg.champion() == v3


@pytest.mark.unit
def test_dataset_hash_is_stable_and_sensitive(panel: pd.DataFrame) -> None:
    cols = ["symbol", "event_timestamp", "label_short", "sig", "noise0"]
    h = dataset_hash(panel, cols)
    assert h == dataset_hash(panel.sample(frac=1.0, random_state=3), cols)  # row order
    assert h == dataset_hash(panel.copy(), cols)
    changed = panel.copy()
    changed.loc[changed.index[5], "sig"] += 1e-12
    assert dataset_hash(changed, cols) != h
    relabel = panel.copy()
    old = relabel["label_short"].iloc[7]
    relabel.loc[relabel.index[7], "label_short"] = "TRAP_UP" if old != "TRAP_UP" else "UP"
    assert dataset_hash(relabel, cols) != h
    assert dataset_hash(panel, cols[:-1]) != h
    local = panel.assign(event_timestamp=panel["event_timestamp"].dt.tz_convert("Asia/Tokyo"))
    assert dataset_hash(local, cols) == h  # the same instants


@pytest.mark.slow
def test_save_experiment_result(tmp_path: Path, panel: pd.DataFrame) -> None:
    cfg = ExperimentConfig(
        short_horizon="10min",
        long_horizon="10min",
        walk_forward=WalkForwardConfig(mode="blocked"),
        train=FAST,
        selection=SelectionConfig(top_k=4, shap_sample=200),
        n_boot=50,
        baseline_backtests=False,
    )
    res = run_experiment(panel, PANEL_FEATURES, cfg)
    reg = ModelRegistry(tmp_path)
    v = reg.save(res)
    m = reg.manifest(v)
    assert m["features"] == res.selection.features and len(m["features"]) == 4
    assert m["feature_service"] == "tick_features_top4_v1"
    assert m["data_hash"] == res.data_hash
    assert m["training_window"]["n_rows"] == res.training_window["n_rows"] > 0
    assert m["horizons"] == {"short": "10m", "long": "10m", "direction": "10m", "ensemble": "10m"}
    assert set(m["models"]) == {"short", "long", "direction"}  # the ensemble is not served
    assert m["oos"]["decision_model"] == "direction"
    assert m["oos"]["short"]["ic"] == res.model("short")["oos"]["ic"]
    assert m["oos"]["baselines"]["momentum_short"]["log_loss"] is not None
    assert m["selection"]["table"][0]["feature"] == "sig"
    assert m["selection"]["stability"] == res.selection.to_dict()["stability"]
    assert m["selection"]["stability"][0]["top_k_share"] == 1.0  # sig: every fold's top-4
    assert m["oos"]["short"]["n_ic_days"] == res.model("short")["oos"]["n_ic_days"] > 0
    loaded = reg.load(v)
    for name in ("short", "long"):
        np.testing.assert_array_equal(
            predict_proba(loaded.models[name], panel), predict_proba(res.production[name], panel)
        )
    ok, why = reg.promotion_decision(m, None)
    assert isinstance(ok, bool) and why[0] == "decision model: direction"
    assert reg.load(v).decision_model == "direction"
    # a result whose decision_model disagrees with its production models (which include the
    # direction model): refused, nothing saved
    res.decision_model = "short"
    with pytest.raises(ValueError, match="source's decision_model is 'short'"):
        reg.save(res)
    res.decision_model = "direction"
    assert reg.save(res) == "v2" and reg.versions() == ["v1", "v2"]


@pytest.mark.unit
def test_direction_regressor_round_trip(tmp_path: Path, panel: pd.DataFrame) -> None:
    """The direction model (a regression, classes == ()) saves, loads and predicts the same."""
    from tickml.models.train import predict_value, train_regressor

    tr, va = panel.iloc[:2000], panel.iloc[2000:2800]
    target = np.sign(tr["fwd_return_short"].to_numpy()) * 0.5
    model = train_regressor(tr, target, va, np.sign(va["fwd_return_short"]) * 0.5, FAST,
                            PANEL_FEATURES, target_name="fwd_return_short_vol",
                            target_units="volatilities")  # fmt: skip
    assert model.is_regression and model.n_outputs == 1 and model.classes == ()
    reg = ModelRegistry(tmp_path / "reg")
    version = reg.save({"direction": model})
    loaded = reg.load(version)
    assert loaded.direction is not None and loaded.direction.is_regression
    assert loaded.decision_model == "direction"  # the direction model makes the score
    train_info = loaded.manifest["models"]["direction"]["train_info"]
    assert train_info["target_name"] == "fwd_return_short_vol"
    assert train_info["target_units"] == "volatilities"
    with pytest.raises(ValueError, match="regression model.*predict_value"):
        predict_proba(model, panel.iloc[:5])  # no probabilities from a regression
    x = panel[PANEL_FEATURES].iloc[2800:]
    before, after = predict_value(model, x), predict_value(loaded.direction, x)
    assert before.shape == (len(x),) and np.array_equal(before, after)
    assert np.std(before) > 0  # it learned something from the signed target
    classifier = train_model(tr, tr["label_short"], va, va["label_short"], CLASSES_5, FAST,
                             PANEL_FEATURES)  # fmt: skip
    with pytest.raises(ValueError, match="regression"):
        predict_value(classifier, x)


@pytest.mark.unit
def test_save_records_the_decision_model_and_refuses_a_disagreeing_source(
    tmp_path: Path, panel: pd.DataFrame
) -> None:
    """One rule: the direction model when the version has one, else short; ``save`` writes it
    to ``oos["decision_model"]`` and refuses a source (or oos) that names another model."""
    from tickml.models.registry import decision_model_of
    from tickml.models.train import predict_value, train_regressor

    tr, va = panel.iloc[:2000], panel.iloc[2000:2800]
    short = train_model(tr, tr["label_short"], va, va["label_short"], CLASSES_5, FAST,
                        PANEL_FEATURES)  # fmt: skip
    direction = train_regressor(tr, tr["fwd_return_short"], va, va["fwd_return_short"], FAST,
                                PANEL_FEATURES)  # fmt: skip
    reg = ModelRegistry(tmp_path / "reg")
    v1 = reg.save({"short": short, "long": short})
    v2 = reg.save({"short": short, "long": short, "direction": direction})
    for v, want in ((v1, "short"), (v2, "direction")):
        m = reg.manifest(v)
        assert m["oos"]["decision_model"] == want == decision_model_of(m)
        assert reg.load(v).decision_model == want
    # metadata's oos naming another model than the saved ones make it: refused, nothing saved
    with pytest.raises(ValueError, match="decision model 'direction'"):
        reg.save({"short": short, "direction": direction},
                 metadata={"oos": {"decision_model": "short"}})  # fmt: skip
    assert reg.versions() == [v1, v2]
    # the shadow's backtest input on a day that mixes the two versions: v1's rows have no
    # direction and are marked to be decided without one (direction=None), as live does
    from tickml.shadow import directions_by_version

    rows = panel.iloc[2800:3000]
    row_version = np.where(np.arange(len(rows)) < 120, v1, v2).astype(object)
    row_version[:5] = ""  # no model scored these
    loaded = {v: reg.load(v) for v in (v1, v2)}
    got = directions_by_version(rows, row_version, loaded)
    assert got is not None
    values, has = got
    assert has.tolist() == (row_version == v2).tolist()
    assert np.isnan(values[~has]).all()
    np.testing.assert_array_equal(values[has], predict_value(direction, rows.iloc[120:]))
    assert directions_by_version(rows, row_version, {v1: loaded[v1]}) is None
