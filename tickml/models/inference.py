"""The one place a registered version's models become scores.

:class:`Inference` maps "the registered models of a version" to class probabilities (and a
regression model, the direction model, to its prediction, shape (n,)): every
model of the version (short, long, direction, and any model added later) is evaluated,
concurrently, on
its own feature columns of one input matrix, with the compiled runtime
(:mod:`tickml.models.runtime`, exact) or, when it is unusable, LightGBM itself (the reason is
kept). Adding a model to the registry needs no change here.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from tickml.models.promotion import decision_model_for
from tickml.models.runtime import CompiledModel, RuntimeUnavailable, load_compiled
from tickml.models.train import TrainedModel, proba_from_raw

_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="inference")


@dataclass
class Inference:
    """Every model of a registered version -> class probabilities or predictions (module doc).

    ``columns``: the input matrix's columns (e.g. a packed vector layout); each model takes
    its own features from it. ``compiled``: try the compiled runtime (else LightGBM).
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
                libs = load_compiled(registered.path, registered.manifest, registered.models)
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

    def _one(self, name: str, x: np.ndarray) -> np.ndarray:
        m = self.models[name]
        xm = np.ascontiguousarray(x[:, self.index[name]])
        if self.compiled is not None:
            raw = self.compiled[name].raw(xm)
        else:
            raw = np.asarray(m.booster.predict(xm, raw_score=True), dtype=np.float64)
        if m.is_regression:  # the raw score is the prediction (predict_value)
            return raw.reshape(len(xm))
        return proba_from_raw(m, raw.reshape(len(xm), m.n_classes))

    def predict(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Probabilities (n, classes) of every classifier and the prediction (n,) of every
        regression model (``"direction"``) on the rows of ``x`` (columns as given to
        :meth:`of`); the models run concurrently (both runtimes release the GIL)."""
        names = list(self.models)
        futures = {n: _POOL.submit(self._one, n, x) for n in names[1:]}
        out = {names[0]: self._one(names[0], x)}
        out.update({n: f.result() for n, f in futures.items()})
        return out
