"""Direction models: training, SHAP selection, the walk-forward experiment and the registry.

* :mod:`tickml.models.train`: :class:`TrainConfig`, :func:`train_model`, :func:`predict_proba`;
* :mod:`tickml.models.selection`: per-fold SHAP importance and its stability across folds;
* :mod:`tickml.models.experiment`: :func:`run_experiment` (evaluation.json via ``to_dict()``);
* :mod:`tickml.models.registry`: :class:`ModelRegistry` (text models + manifest, no pickle);
* :mod:`tickml.models.promotion`: :func:`promotion_decision` (the champion gate).
"""

from __future__ import annotations

from tickml.models.experiment import (
    ExperimentConfig,
    ExperimentResult,
    add_market_columns,
    prepare_dataset,
    run_experiment,
)
from tickml.models.promotion import promotion_decision
from tickml.models.registry import (
    ModelRegistry,
    RegisteredModels,
    RegistryError,
    dataset_hash,
)
from tickml.models.selection import SelectionConfig, SelectionResult
from tickml.models.train import (
    TrainConfig,
    TrainedModel,
    predict_proba,
    predict_value,
    train_model,
    train_regressor,
)

__all__ = [
    "ExperimentConfig",
    "ExperimentResult",
    "ModelRegistry",
    "RegisteredModels",
    "RegistryError",
    "SelectionConfig",
    "SelectionResult",
    "TrainConfig",
    "TrainedModel",
    "add_market_columns",
    "dataset_hash",
    "predict_proba",
    "predict_value",
    "prepare_dataset",
    "promotion_decision",
    "run_experiment",
    "train_model",
    "train_regressor",
]
