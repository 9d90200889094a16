"""``champion_model`` promotes exactly the version whose ``beats_champion`` check passed.

The race of two overlapping retrains (drift sensor and weekly schedule), reproduced on a real
Dagster instance and a real registry: run A registers v1 and its check passes; before A's
``champion_model`` step runs, run B registers v2 and its check fails (B stops at the blocking
check). The newest version is then v2; A must promote v1. The experiment of each run is a
minimal asset with ``model_experiment``'s key and blocking check, registering real (tiny)
LightGBM models: the real experiment trains for minutes and would add nothing to this race.
"""

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from assets.resources import MlflowResource, ModelRegistryResource
from assets.training import champion_model
from tickml.labels import CLASSES_3, CLASSES_5
from tickml.models.registry import ModelRegistry
from tickml.models.train import TrainConfig, train_model

pytestmark = pytest.mark.integration


def _models(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    cfg = TrainConfig(n_estimators=5, num_leaves=4, seed=seed)
    return {
        name: train_model(
            x[:200], rng.choice(cls, 200), x[200:], rng.choice(cls, 100), cls, cfg, ["a", "b", "c"]
        )
        for name, cls in (("short", CLASSES_5), ("long", CLASSES_3))
    }


class ExperimentRun(dg.Config):
    passes: bool
    overlap: bool = False  # start the other retrain inside this one, before champion_model


def build(instance: dg.DagsterInstance, root: Path):  # noqa: ANN201
    @dg.asset(
        name="model_experiment",
        group_name="training",
        check_specs=[dg.AssetCheckSpec("beats_champion", asset="model_experiment", blocking=True)],
    )
    def experiment(config: ExperimentRun, registry: ModelRegistryResource):  # noqa: ANN202
        reg = registry.registry()
        version = reg.save(_models(len(reg.versions())))
        current = reg.champion()
        if config.overlap:  # the other retrain registers a newer version that fails its check
            other = dg.materialize(
                [experiment, champion_model],
                instance=instance,
                resources=resources,
                run_config=run_config(passes=False),
                raise_on_error=False,
            )
            assert not other.success
        return dg.MaterializeResult(
            metadata={"version": version},
            check_results=[
                dg.AssetCheckResult(
                    check_name="beats_champion",
                    passed=config.passes,
                    metadata={"challenger": version, "champion": str(current)},
                )
            ],
        )

    resources = {
        "registry": ModelRegistryResource(root=str(root)),
        # no MLflow run behind these versions: nothing to tag
        "mlflow": MlflowResource(workdir=str(root.parent), enabled=False),
    }
    return experiment, resources


def run_config(passes: bool, overlap: bool = False) -> dg.RunConfig:
    return dg.RunConfig(ops={"model_experiment": ExperimentRun(passes=passes, overlap=overlap)})


def test_promotes_the_version_that_passed_not_the_newest(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    with dg.instance_for_test() as instance:
        experiment, resources = build(instance, root)
        res = dg.materialize(
            [experiment, champion_model],
            instance=instance,
            resources=resources,
            run_config=run_config(passes=True, overlap=True),
        )
        assert res.success
        reg = ModelRegistry(root)
        assert reg.versions() == ["v1", "v2"]
        assert reg.champion() == "v1"  # not versions()[-1], whose check failed

        # champion_model alone promotes the latest experiment's version only if it passed
        dg.materialize(
            [experiment], instance=instance, resources=resources, run_config=run_config(False),
            raise_on_error=False,
        )  # fmt: skip
        alone = dg.materialize(
            [experiment, champion_model],
            instance=instance,
            resources=resources,
            selection=[champion_model],
            raise_on_error=False,
        )
        assert not alone.success and reg.champion() == "v1"
        assert "did not pass beats_champion" in str(alone.get_step_failure_events()[0])
