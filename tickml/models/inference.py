"""The one place a registered version's models become scores.

:class:`Inference` maps "the registered models of a version" to class probabilities (and a
regression model, the direction model, to its prediction, shape (n,)): every model of the
version (short, long, direction, and any model added later) is evaluated on its own feature
columns of one input matrix, with the compiled runtime
(:mod:`tickml.models.runtime`, exact) or, when it is unusable, LightGBM itself (the reason is
kept). Adding a model to the registry needs no change here.

A call may ask for some models only (``names``): the live scorer evaluates the models the
decision reads before it publishes, the others after (:func:`tickml.decision.inputs_read`).
Models that read the same columns share one prepared input (gathered, guarded and converted
once, :class:`~tickml.models.runtime.PreparedRows`). With ``threads`` > 1 and at least
:data:`SPLIT_MIN_ROWS` rows, the rows are split into ``threads`` parts scored in parallel (each
part runs the models one after the other; TL2cgen releases the GIL). Measured at 5,000 rows x 70
features on 2 cores, long + direction models: 8.3 ms run concurrently on one thread each,
5.2-5.5 ms split by rows; the per-model input preparation was 2.1 ms, now once per column set.
TL2cgen's own OpenMP threads are not used: under load (materializers busy on the same cores)
OpenMP's spinning workers made a 500-row call take 12 ms (p50) instead of about 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from tickml.models.promotion import decision_model_for
from tickml.models.runtime import (
    CompiledModel,
    PreparedRows,
    RuntimeUnavailable,
    default_threads,
    load_compiled,
)
from tickml.models.train import TrainedModel, proba_from_raw

#: rows below which one thread scores a call (the hand-off to a second costs more than it saves)
SPLIT_MIN_ROWS = 1000
_POOL = ThreadPoolExecutor(max_workers=3, thread_name_prefix="inference")


@dataclass
class Inference:
    """Every model of a registered version -> class probabilities or predictions (module doc).

    ``columns``: the input matrix's columns (e.g. a packed vector layout); each model takes
    its own features from it. ``compiled``: try the compiled runtime (else LightGBM);
    ``threads``: row parts scored in parallel (None: the runtime's default).
    """

    version: str
    models: dict[str, TrainedModel]
    index: dict[str, np.ndarray]
    compiled: dict[str, CompiledModel] | None
    fallback_reason: str | None = None
    fallback_message: str | None = None
    threads: int = 1

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
                libs = load_compiled(registered.path, registered.manifest, registered.models)
                reason = message = None
            except RuntimeUnavailable as exc:
                reason, message = exc.reason, str(exc)
        n_threads = default_threads() if threads is None else max(1, int(threads))
        return cls(
            registered.version, dict(registered.models), index, libs, reason, message, n_threads
        )

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
        n = len(x)
        parts = self.threads if self.compiled is not None and n >= SPLIT_MIN_ROWS else 1
        if parts <= 1:
            return self._rows(x, want)
        cuts = np.linspace(0, n, parts + 1).astype(np.int64)
        spans = zip(cuts[1:-1], cuts[2:], strict=True)
        futures = [_POOL.submit(self._rows, x[a:b], want) for a, b in spans]
        done = [self._rows(x[: cuts[1]], want), *(f.result() for f in futures)]
        return {name: np.concatenate([d[name] for d in done]) for name in want}

    def _rows(self, x: np.ndarray, want: Sequence[str]) -> dict[str, np.ndarray]:
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
