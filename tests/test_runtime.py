"""Compiled inference runtime (TL2cgen): built into the registry, exact against LightGBM (the two
classifiers and the direction regression model), and a LightGBM fallback (with the reason) when
the artifact is missing, stale, corrupt or disabled."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tickml.labels import CLASSES_3, CLASSES_5
from tickml.models.inference import Inference
from tickml.models.registry import ModelRegistry
from tickml.models.runtime import RUNTIME_DIR, RUNTIME_MANIFEST, probe_rows
from tickml.models.train import (
    TrainConfig,
    TrainedModel,
    predict_proba,
    predict_value,
    train_model,
    train_regressor,
)

pytestmark = pytest.mark.integration  # compiles with gcc, loads shared libraries

FEATURES = [f"f{i}" for i in range(12)]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(FEATURES)))
    x[:, 3] = np.round(x[:, 3], 1)  # repeated values: rows land exactly on thresholds
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values take the learned default branch
    f = pd.DataFrame(x, columns=FEATURES)
    s = np.nan_to_num(x[:, 0] + 0.5 * x[:, 1] * x[:, 2] + 0.3 * rng.standard_normal(n))
    f["label_short"] = np.select(
        [s > 1.0, s < -1.0, s > 0.5, s < -0.5], ["UP", "DOWN", "TRAP_UP", "TRAP_DOWN"], "FLAT"
    )
    f["label_long"] = np.select([s > 0.3, s < -0.3], ["UP", "DOWN"], "FLAT")
    f["target_direction"] = s
    return f


def _offline(m: TrainedModel, frame: pd.DataFrame) -> np.ndarray:
    """What the offline path gives: probabilities, or a regression model's prediction."""
    return predict_value(m, frame) if m.is_regression else predict_proba(m, frame)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    tr, va = _frame(3000, 1), _frame(800, 2)
    cfg = TrainConfig(n_estimators=40, num_leaves=15, min_child_samples=10)
    models = {
        "short": train_model(
            tr, tr["label_short"], va, va["label_short"], CLASSES_5, cfg, FEATURES
        ),
        "long": train_model(
            tr, tr["label_long"], va, va["label_long"], CLASSES_3, cfg, FEATURES[::-1][:8]
        ),
        "direction": train_regressor(
            tr, tr["target_direction"], va, va["target_direction"], cfg, FEATURES[2:10]
        ),
    }
    reg = ModelRegistry(tmp_path_factory.mktemp("reg"))
    reg.set_champion(reg.save(models))  # promotion builds the compiled runtime
    return reg


def _inputs(reg: ModelRegistry) -> np.ndarray:
    champ = reg.load()
    rows = _frame(5000, 3)[FEATURES].to_numpy()
    probes = [probe_rows(m) for m in champ.models.values()]
    # probe rows are in each model's feature order: map them back to FEATURES columns
    extra = []
    for m, p in zip(champ.models.values(), probes, strict=True):
        full = np.zeros((len(p), len(FEATURES)))
        full[:, [FEATURES.index(f) for f in m.features]] = p
        extra.append(full)
    return np.vstack([rows, *extra])


def test_compiled_scores_equal_lightgbm_bit_for_bit(registry: ModelRegistry) -> None:
    champ = registry.load()
    info = json.loads((champ.path / RUNTIME_DIR / RUNTIME_MANIFEST).read_text())
    assert set(info["models"]) == {"short", "long", "direction"} and info["runtime"] == "tl2cgen"
    for name, e in info["models"].items():
        assert e["model_sha256"] == champ.manifest["models"][name]["sha256"]
    inf = Inference.of(champ, FEATURES)
    assert inf.runtime == "tl2cgen" and inf.fallback_reason is None
    x = _inputs(registry)
    got = inf.predict(x)
    frame = pd.DataFrame(x, columns=FEATURES)
    for name, m in champ.models.items():
        np.testing.assert_array_equal(got[name], _offline(m, frame))
    assert got["direction"].shape == (len(x),) and champ.direction is not None
    assert np.unique(got["direction"]).size > 20  # a real regression, not a constant
    assert np.isnan(x).any()  # missing values were part of it
    # an unchanged artifact is reused, not rebuilt
    assert registry.build_runtime(champ.version)["built_at"] == info["built_at"]


def _copy(reg: ModelRegistry, tmp_path: Path) -> ModelRegistry:
    dst = tmp_path / "reg"
    shutil.copytree(reg.root, dst)
    return ModelRegistry(dst)


@pytest.mark.parametrize("damage", ["missing", "corrupt", "stale", "disabled"])
def test_fallback_to_lightgbm_says_why_and_stays_exact(
    registry: ModelRegistry, tmp_path: Path, damage: str
) -> None:
    reg = _copy(registry, tmp_path)
    champ = reg.load()
    rt = champ.path / RUNTIME_DIR
    if damage == "missing":
        shutil.rmtree(rt)
    elif damage == "corrupt":
        lib = rt / "short.so"
        lib.write_bytes(lib.read_bytes()[:-64] + b"\0" * 64)
    elif damage == "stale":
        info = json.loads((rt / RUNTIME_MANIFEST).read_text())
        info["models"]["long"]["model_sha256"] = "0" * 64  # compiled from another model
        (rt / RUNTIME_MANIFEST).write_text(json.dumps(info))
    inf = Inference.of(champ, FEATURES, compiled=damage != "disabled")
    assert inf.runtime == "lightgbm" and inf.fallback_reason == damage, inf.fallback_message
    x = _frame(500, 4)[FEATURES].to_numpy()
    got = inf.predict(x)
    frame = pd.DataFrame(x, columns=FEATURES)
    for name, m in champ.models.items():
        np.testing.assert_array_equal(got[name], _offline(m, frame))
    if damage == "corrupt":  # rebuilding repairs it (compiling takes seconds: once here)
        assert reg.build_runtime(champ.version) is not None
        assert Inference.of(reg.load(), FEATURES).runtime == "tl2cgen"


def test_no_compiler_means_no_artifact_and_a_logged_fallback(
    registry: ModelRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reg = _copy(registry, tmp_path)
    v = reg.save(dict(reg.load().models))
    monkeypatch.setenv("CC", "no-such-compiler-tickml")
    with caplog.at_level("WARNING"):
        reg.set_champion(v)  # promotion still happens
    assert reg.champion() == v
    assert "no C compiler" in caplog.text
    assert Inference.of(reg.load(v), FEATURES).fallback_reason == "missing"


def test_aliased_rows_are_exact_and_scored_by_one_lightgbm_thread(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Values one ulp below a power of two (low 32 bits all ones: TL2cgen's missing marker) are
    common in computed features; their rows go to LightGBM, on one thread (its default OpenMP
    team waited 5-17 ms for a core on a busy machine: the scorer's stalls at 500 symbols)."""
    champ = registry.load()
    inf = Inference.of(champ, FEATURES)
    x = _frame(400, 5)[FEATURES].to_numpy()
    near_one, near_quarter = np.nextafter(1.0, 0.0), np.nextafter(-0.25, -1.0)
    assert int(np.float64(near_one).view(np.uint64)) & 0xFFFFFFFF == 0xFFFFFFFF
    x[7, :] = near_one
    x[100, 2] = near_quarter
    x[250, 9] = -near_one
    calls: list[dict[str, object]] = []
    for lib in inf.compiled.values():  # type: ignore[union-attr]
        real = lib.model.booster.predict

        def spy(data: np.ndarray, *args: object, _real=real, **kw: object) -> np.ndarray:
            calls.append({"rows": len(data), **kw})
            return _real(data, *args, **kw)

        monkeypatch.setattr(lib.model.booster, "predict", spy)
    got = inf.predict(x)
    frame = pd.DataFrame(x, columns=FEATURES)
    for name, m in champ.models.items():
        monkeypatch.undo()  # the offline reference: LightGBM itself, default threads
        np.testing.assert_array_equal(got[name], _offline(m, frame))
    assert calls and all(c["num_threads"] == 1 and c["rows"] <= 3 for c in calls), calls
    assert sum(lib.aliased for lib in inf.compiled.values()) >= 3  # type: ignore[union-attr]
