"""The one place a registered version's models become scores.

:class:`Inference` maps "the registered models of a version" to class probabilities (and a
regression model, the direction model, to its prediction, shape (n,)): every
model of the version (short, long, direction, and any model added later) is evaluated,
concurrently, on
its own feature columns of one input matrix, with the compiled runtime
(:mod:`tickml.models.runtime`, exact) or, when it is unusable, LightGBM itself (the reason is
kept). Adding a model to the registry needs no change here.

A call may ask for some models only (``names``): the live scorer evaluates the models the
decision reads before it publishes, the others after (:func:`tickml.decision.models_needed`).
Models that read the same columns share one prepared input (gathered, guarded and converted
once, :class:`~tickml.models.runtime.PreparedRows`); the models run one after the other, each
predictor on ``threads`` threads over the rows (measured at 5,000 rows x 70 features on 2
cores, long + direction models: 8.3 ms run concurrently on one thread each, 5.2 ms one after
the other on 2 threads each; the per-model input preparation was 2.1 ms).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tickml.models.promotion import decision_model_for
from tickml.models.runtime import CompiledModel, PreparedRows, RuntimeUnavailable, load_compiled
from tickml.models.train import TrainedModel, proba_from_raw


@dataclass
class Inference:
    """Every model of a registered version -> class probabilities or predictions (module doc).

    ``columns``: the input matrix's columns (e.g. a packed vector layout); each model takes
    its own features from it. ``compiled``: try the compiled runtime (else LightGBM);
    ``threads``: per compiled predictor (None: the runtime's default).
    """

    version: str
    models: dict[str, TrainedModel]
    index: dict[str, np.ndarray]
    compiled: dict[str, CompiledModel] | None
    fallback_reason: str | None = None
    fallback_message: str | None = None

    @classmethod
    def of(
        cls,
        registered: Any,
        columns: Sequence[str],
        compiled: bool = True,
        threads: int | None = None,
    ) -> Inference:
        """``registered``: a :class:`~tickml.models.registry.RegisteredModels`."""
        col = {c: i for i, c in enumerate(columns)}
        missing = sorted({f for m in registered.models.values() for f in m.features} - set(col))
        if missing:
            raise ValueError(f"{registered.version}: inputs lack features {missing[:10]}")
        index = {
            name: np.array([col[f] for f in m.features], dtype=np.int64)
            for name, m in registered.models.items()
        }
        libs: dict[str, CompiledModel] | None = None
        reason: str | None = "disabled"
        message: str | None = "compiled runtime disabled"
        if compiled:
            try:
                libs = load_compiled(
                    registered.path, registered.manifest, registered.models, threads
                )
                reason = message = None
            except RuntimeUnavailable as exc:
                reason, message = exc.reason, str(exc)
        return cls(registered.version, dict(registered.models), index, libs, reason, message)

    @property
    def decision_model(self) -> str:
        """The model whose score decides (:attr:`RegisteredModels.decision_model`'s rule)."""
        return decision_model_for(self.models)

    @property
    def runtime(self) -> str:
        return "tl2cgen" if self.compiled is not None else "lightgbm"

    def _one(self, name: str, rows: PreparedRows) -> np.ndarray:
        m = self.models[name]
        if self.compiled is not None:
            raw = self.compiled[name].raw(rows)
        else:
            raw = np.asarray(m.booster.predict(rows.values, raw_score=True), dtype=np.float64)
        n = len(rows.values)
        if m.is_regression:  # the raw score is the prediction (predict_value)
            return raw.reshape(n)
        return proba_from_raw(m, raw.reshape(n, m.n_classes))

    def predict(
        self, x: np.ndarray, names: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Probabilities (n, classes) of every classifier and the prediction (n,) of every
        regression model (``"direction"``) on the rows of ``x`` (columns as given to
        :meth:`of`); ``names``: only these models (None: all)."""
        want = list(self.models) if names is None else list(names)
        unknown = [n for n in want if n not in self.models]
        if unknown:
            raise KeyError(f"{self.version} has no model {unknown[0]!r}")
        prepared: dict[bytes, PreparedRows] = {}
        out: dict[str, np.ndarray] = {}
        for name in want:
            idx = self.index[name]
            key = idx.tobytes()
            if key not in prepared:
                prepared[key] = PreparedRows(_columns(x, idx))
            out[name] = self._one(name, prepared[key])
        return out


def _columns(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``x[:, idx]``, as a view when ``idx`` is a run of consecutive columns (no copy)."""
    if idx.size and idx[-1] - idx[0] + 1 == idx.size and (np.diff(idx) == 1).all():
        return x[:, int(idx[0]) : int(idx[-1]) + 1]
    return x[:, idx]
