"""Compiled inference for the registry's LightGBM models, and the one place models become scores.

**Runtime, chosen by measurement** (README "Inference runtime"; ``tickml bench
inference-runtimes``): TL2cgen 1.0 turns each LightGBM text model (through Treelite) into C,
compiled by gcc into a shared library, evaluated by TL2cgen's predictor. Its raw scores are
*identical* to LightGBM's (same double thresholds, the same missing-value branches, trees summed
in LightGBM's order), so the probabilities (the same logit offset and softmax,
:func:`tickml.models.train.proba_from_raw`) equal :func:`~tickml.models.train.predict_proba`
bit for bit. lleaves (LLVM) was faster in an earlier measurement but cannot share an
environment with numba (lleaves 1.3 calls llvmlite's removed ``PassManagerBuilder``; numba
>= 0.61 needs llvmlite >= 0.44); ONNX Runtime keeps float32 thresholds (not exact).

**Artifact**: ``<version>/runtime/`` beside the text models: one ``<model>.so`` per model and
``runtime.json`` (format, TL2cgen/Treelite versions, platform, and per model the library's
sha256 and the sha256 of the text model it was compiled from). Built by :func:`build` (the
registry calls it at promotion, or at registration when asked), written under a temporary name
and renamed into place; before it is installed, every library's raw scores are checked equal to
LightGBM's on probe rows made of the model's own split thresholds (each value exactly at,
just below and just above a threshold, NaN and 0). No pickle: the libraries are C code compiled
here, loaded only after their hash matches.

**Loading** (:func:`load_compiled`): the artifact is *missing* (never built), *stale* (built
from another model file, another TL2cgen version or another machine type), *corrupt* (hash)
or *fails* (cannot be loaded, or differs from LightGBM on the probe rows in this process):
:class:`RuntimeUnavailable` with that reason; ``Inference`` then uses LightGBM itself and says
so (``runtime``, ``fallback_reason``).

:class:`tickml.models.inference.Inference` turns a version's models into probabilities (and
the direction model's prediction) with this runtime or LightGBM. Regression models (the
direction model: one raw output per row, its prediction) are compiled, checked and guarded
exactly like the classifiers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tickml.models.train import TrainedModel

log = logging.getLogger(__name__)

RUNTIME_DIR = "runtime"
RUNTIME_MANIFEST = "runtime.json"
RUNTIME_FORMAT = 1
PROBE_ROWS = 2048
#: fallback reasons (the scorer's metric label)
REASONS = ("missing", "stale", "corrupt", "failed", "disabled")


class RuntimeUnavailable(RuntimeError):
    """The compiled runtime of a version cannot be used; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class RuntimeBuildError(RuntimeError):
    """Building the compiled runtime failed (no compiler, a compile error, not exact)."""


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _toolchain() -> str | None:
    return shutil.which(os.environ.get("CC", "gcc"))


def _versions() -> dict[str, str]:
    from importlib import metadata

    return {
        "tl2cgen": metadata.version("tl2cgen"),
        "treelite": metadata.version("treelite"),
        "machine": platform.machine(),
        "system": platform.system(),
    }


def _compatible(built: Mapping[str, Any], now: Mapping[str, str]) -> str | None:
    """Why a library built under ``built`` may not run here (None: it may)."""
    for key in ("machine", "system"):
        if built.get(key) != now[key]:
            return f"built on {built.get(key)}, this is {now[key]}"
    major_minor = ".".join(str(built.get("tl2cgen", "")).split(".")[:2])
    if major_minor != ".".join(now["tl2cgen"].split(".")[:2]):
        return f"built with tl2cgen {built.get('tl2cgen')}, installed {now['tl2cgen']}"
    return None


def probe_rows(model: TrainedModel, rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Inputs that exercise every split of ``model``: per feature, values drawn from its split
    thresholds (at, one ulp below, one ulp above), NaN, +-0 and a tiny value."""
    rng = np.random.default_rng(seed)
    dump = model.booster.dump_model(num_iteration=-1)
    found: dict[int, list[float]] = {}

    def walk(node: Mapping[str, Any]) -> None:
        if "split_feature" in node:
            found.setdefault(int(node["split_feature"]), []).append(float(node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in dump["tree_info"]:
        walk(tree["tree_structure"])
    x = np.zeros((rows, len(model.features)))
    for j in range(x.shape[1]):
        t = np.asarray(found.get(j, [0.0]), dtype=np.float64)
        cand = np.concatenate(
            [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf), [np.nan, 0.0, -0.0, 1e-36]]
        )
        x[:, j] = rng.choice(cand, size=rows)
    return x


#: low 32 bits of a double that TL2cgen's ``union Entry {int missing; double fvalue;}`` reads as
#: its missing-value marker (-1): such a value takes the missing branch (found by the probe rows)
_MISSING_ALIAS = np.uint64(0xFFFFFFFF)


def aliased_rows(x: np.ndarray) -> np.ndarray:
    """Rows holding a non-NaN value whose low 32 bits are all ones (see :class:`CompiledModel`)."""
    m = np.ascontiguousarray(x, dtype=np.float64)
    hit = (m.view(np.uint64) & _MISSING_ALIAS) == _MISSING_ALIAS
    if not hit.any():
        return np.zeros(len(m), dtype=bool)
    return (hit & ~np.isnan(m)).any(axis=1)


#: LightGBM's ``kZeroThreshold`` (``1e-35f``, a float widened to double): its predict drops input
#: values with ``|v| <= kZeroThreshold`` (they read as 0.0); TL2cgen compares them as given
ZERO_THRESHOLD = float(np.float32(1e-35))


class CompiledModel:
    """One model's compiled library: raw scores (n, k) of float64 rows in model order (k: the
    classes of a classifier, 1 for a regression model, whose raw score is its prediction).

    TL2cgen passes each value in ``union Entry {int missing; double fvalue;}`` and tests
    ``missing != -1``: a (non-NaN) double whose low 32 bits are all ones, e.g.
    -0.24999999999999997 (one ulp below -0.25, a common LightGBM threshold), is taken for a
    missing value. Rows holding one are scored by LightGBM itself (:func:`aliased_rows`; about
    one value in 4 billion at random, far more often in practice: any value one ulp below a
    power of two, e.g. a ratio that rounds to 0.9999999999999999), so the result stays exact;
    ``aliased`` counts them. That LightGBM call runs on one thread (see :meth:`raw`). Values
    LightGBM reads as zero (:data:`ZERO_THRESHOLD`) are zeroed first, as LightGBM does.
    """

    def __init__(self, path: Path, model: TrainedModel) -> None:
        import sys

        import tl2cgen

        if sys.byteorder != "little":
            raise RuntimeUnavailable("failed", "the missing-marker guard assumes little endian")
        self.path, self.model = path, model
        self.n_classes = model.n_outputs  # raw scores per row (1 for a regression model)
        self.aliased = 0
        # one thread: the caller splits rows across threads (OpenMP's spinning workers hurt
        # the other processes of a busy machine; see tickml.models.inference)
        self._pred = tl2cgen.Predictor(str(path), nthread=1)
        if self._pred.threshold_type != "float64" or self._pred.leaf_output_type != "float64":
            raise RuntimeUnavailable(
                "failed",
                f"{path.name}: threshold/leaf types {self._pred.threshold_type}/"
                f"{self._pred.leaf_output_type}, expected float64 (exactness)",
            )

    def raw(self, x: np.ndarray | PreparedRows) -> np.ndarray:
        """Raw scores (n, k) of ``x`` (float64 rows in the model's feature order), or of rows
        :class:`PreparedRows` made once for several models with the same features."""
        rows = x if isinstance(x, PreparedRows) else PreparedRows(x)
        m = rows.values
        if not len(m):
            return np.zeros((0, self.n_classes))
        out = self._pred.predict(rows.dmatrix(), pred_margin=True)
        raw = np.asarray(out, dtype=np.float64).reshape(len(m), self.n_classes)
        if rows.aliased.any():
            bad = rows.aliased
            self.aliased += int(bad.sum())
            # one thread: a handful of rows; LightGBM's default OpenMP team waits for a core
            # on a busy machine (a 1-row call took 5-17 ms under load instead of 0.1)
            fix = self.model.booster.predict(m[bad], raw_score=True, num_threads=1)
            raw[bad] = np.asarray(fix, dtype=np.float64).reshape(-1, self.n_classes)
        return raw


def default_threads() -> int:
    """Threads a scorer splits its rows over: the machine's cores, at most 2 (several scorer
    processes pass their share)."""
    return max(1, min(2, os.cpu_count() or 1))


class PreparedRows:
    """A model input made once for every model that reads the same columns: contiguous
    float64 rows with LightGBM's tiny values zeroed (:data:`ZERO_THRESHOLD`), the rows
    holding a missing-marker alias (:func:`aliased_rows`) and TL2cgen's matrix, built on
    first use."""

    def __init__(self, values: np.ndarray) -> None:
        m = np.ascontiguousarray(values, dtype=np.float64)
        if m.size:
            tiny = np.abs(m) <= ZERO_THRESHOLD
            if tiny.any():  # LightGBM reads |v| <= kZeroThreshold as 0 (it keeps no such entry)
                m = np.where(tiny, 0.0, m)
        self.values = m
        self.aliased = aliased_rows(m) if m.size else np.zeros(len(m), dtype=bool)
        self._dm: Any = None

    def dmatrix(self) -> Any:
        if self._dm is None:
            import tl2cgen

            self._dm = tl2cgen.DMatrix(self.values, dtype="float64")
        return self._dm


def _check_exact(name: str, lib: CompiledModel, model: TrainedModel) -> None:
    x = probe_rows(model)
    want = np.asarray(model.booster.predict(x, raw_score=True), dtype=np.float64)
    got = lib.raw(x)
    if not np.array_equal(got, want.reshape(got.shape)):
        diff = float(np.nanmax(np.abs(got - want.reshape(got.shape))))
        raise RuntimeUnavailable(
            "failed", f"{name}: compiled raw scores differ from LightGBM's (max {diff:.3g})"
        )


def build(
    version_dir: Path, manifest: Mapping[str, Any], models: Mapping[str, TrainedModel]
) -> dict[str, Any]:
    """Compile every model of a version into ``<version_dir>/runtime`` (replaces an existing
    one atomically); returns the runtime manifest. Raises :class:`RuntimeBuildError`."""
    cc = _toolchain()
    if cc is None:
        raise RuntimeBuildError(
            "no C compiler (gcc) on PATH: install it (Debian: apt-get install gcc) to build the "
            "compiled runtime; the scorer uses LightGBM meanwhile"
        )
    try:
        import tl2cgen
        import treelite
        from tl2cgen.exception import TL2cgenError
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise RuntimeBuildError(f"tl2cgen/treelite not installed: {exc}") from exc
    tmp = version_dir / f".runtime-tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        entries: dict[str, Any] = {}
        for name, entry in manifest["models"].items():
            src = version_dir / entry["file"]
            if _sha256(src) != entry["sha256"]:
                raise RuntimeBuildError(f"{name}: {entry['file']} does not match its manifest hash")
            t0 = time.perf_counter()
            tm = treelite.frontend.load_lightgbm_model(str(src))
            lib = tmp / f"{name}.so"
            tl2cgen.export_lib(tm, toolchain=cc, libpath=str(lib), params={}, nthread=1)
            seconds = time.perf_counter() - t0
            _check_exact(name, CompiledModel(lib, models[name]), models[name])
            entries[name] = {
                "file": lib.name,
                "sha256": _sha256(lib),
                "model_sha256": entry["sha256"],
                "compile_s": round(seconds, 3),
            }
        info = {
            "format": RUNTIME_FORMAT,
            "runtime": "tl2cgen",
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **_versions(),
            "compiler": cc,
            "exact": "raw scores equal LightGBM's on probe rows at every split threshold",
            "models": entries,
        }
        (tmp / RUNTIME_MANIFEST).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        final = version_dir / RUNTIME_DIR
        old = version_dir / f".runtime-old-{uuid.uuid4().hex}"
        if final.exists():
            os.rename(final, old)
        os.rename(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        return info
    except RuntimeUnavailable as exc:
        raise RuntimeBuildError(str(exc)) from exc
    except (OSError, TL2cgenError, treelite.TreeliteError) as exc:
        raise RuntimeBuildError(f"compiling the models failed: {exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_compiled(
    version_dir: Path, manifest: Mapping[str, Any], models: Mapping[str, TrainedModel]
) -> dict[str, CompiledModel]:
    """The compiled libraries of a version, checked (hashes, versions, exactness on probe
    rows); :class:`RuntimeUnavailable` with the reason otherwise."""
    path = version_dir / RUNTIME_DIR / RUNTIME_MANIFEST
    if not path.is_file():
        raise RuntimeUnavailable("missing", f"no compiled runtime in {version_dir.name}")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        entries = info["models"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RuntimeUnavailable("corrupt", f"{path}: unreadable ({exc})") from exc
    why = _compatible(info, _versions())
    if why:
        raise RuntimeUnavailable("stale", f"{version_dir.name}: compiled runtime {why}")
    out: dict[str, CompiledModel] = {}
    for name, entry in manifest["models"].items():
        e = entries.get(name)
        if e is None or e.get("model_sha256") != entry["sha256"]:
            raise RuntimeUnavailable(
                "stale", f"{version_dir.name}/{name}: compiled from another model file"
            )
        lib = version_dir / RUNTIME_DIR / str(e["file"])
        if not lib.is_file():
            raise RuntimeUnavailable("missing", f"{version_dir.name}: {lib.name} is missing")
        if _sha256(lib) != e["sha256"]:
            raise RuntimeUnavailable("corrupt", f"{version_dir.name}: {lib.name} hash differs")
        try:
            compiled = CompiledModel(lib, models[name])
        except RuntimeUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any loader failure means: fall back
            raise RuntimeUnavailable("failed", f"{lib.name} failed to load: {exc}") from exc
        _check_exact(name, compiled, models[name])
        out[name] = compiled
    return out
