"""Model registry: one directory per version, LightGBM text models and a JSON manifest. No pickle.

Layout::

    root/
      champion.json            {"version": "v3", "set_at": ..., "previous": "v1"} (atomic)
      v1/
        short.txt              LightGBM text model (5-class, short horizon)
        long.txt               LightGBM text model (3-class, long horizon)
        direction.txt          optional LightGBM regression model (the direction model:
                               classes [], one raw output = its prediction)
        manifest.json          see below
        runtime/               compiled inference (tickml.models.runtime): short.so, long.so,
                               runtime.json (hashes, versions); built at promotion
      v2/ ...

A version directory is written under a temporary name and renamed into place, so a version is
either complete or absent, and two concurrent ``save`` calls get different versions.

``manifest.json``: ``format``, ``version``, ``created_at``, ``feature_service`` (e.g.
``tick_features_top70_v3``: the Feast FeatureService that training and live scoring use),
``features`` (model input order), ``models`` (per model: file, sha256 of the file, classes,
horizon, features, best_iteration, logit_offset, params, size), ``training_window``,
``data_hash`` (:func:`dataset_hash` of the training dataset), ``oos`` (pooled out-of-sample
metrics of each model and baseline), ``backtest``, ``selection`` (top of the SHAP table),
``code_version`` (git HEAD and whether the tree was dirty), ``libraries``, ``metadata``.

Loading checks every file's sha256 against the manifest and that the booster's features and
classes match it: a corrupted or missing file is a :class:`RegistryError` that names it.

Decision model: the model whose score decides (live scorer, backtest, shadow, consistency,
monitoring, promotion): the direction model when the version has one, else the short model;
one rule, :func:`tickml.models.promotion.decision_model_of` (a manifest) /
:attr:`RegisteredModels.decision_model` (a loaded version). ``save`` writes it to
``oos["decision_model"]`` and refuses a source that names another.

Promotion rule: :func:`tickml.models.promotion.promotion_decision` (re-exported here), the
blocking check before ``set_champion``. It judges the decision model on its pooled
out-of-sample metrics: at least 5 out-of-sample days with an IC; the lower end of the 95%
Student-t interval over days of its IC (the mean per-day IC,
:mod:`tickml.evaluation.ic_interval`, coverage checked by simulation) above 0; a classifier's
log loss below the momentum baseline's, a regression's IC above the better plain rule's
(micro-price deviation, book imbalance; refused when neither is recorded); with a champion, a
higher IC (and a lower log loss when both decision models are the same classifier). See that
module for the details and caveats.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from tickml.market import utc_ns
from tickml.models.promotion import decision_model_for, promotion_decision
from tickml.models.promotion import decision_model_of as decision_model_of  # re-exported
from tickml.models.train import TrainedModel

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.json"
CHAMPION = "champion.json"
#: "short" (5-class), "long" (3-class) and the optional "direction" regression model
MODEL_NAMES: tuple[str, ...] = ("short", "long", "direction")
_VERSION_RE = re.compile(r"^v(\d+)$")
_OOS_KEYS = (
    "n",
    "log_loss",
    "balanced_accuracy",
    "directional_accuracy",
    "n_directional_calls",
    "macro_f1",
    "pr_auc",
    "ic",
    "ic_ci95",
    "n_ic_days",
    "ic_per_day",
    "ic_pooled",
    "ic_ci95_bootstrap",
    "n_ic",
    "n_days",
)


class RegistryError(RuntimeError):
    """A registry directory, manifest or model file is missing, corrupted or inconsistent."""


# -- hashing -------------------------------------------------------------------------------------


def dataset_hash(frame: pd.DataFrame, columns: list[str] | None = None) -> str:
    """``sha256:<hex>`` of a frame's values, stable across runs and library versions.

    Rows are taken in (symbol, event_timestamp) order when both columns exist (else as given);
    each column contributes its name and its values in a fixed encoding: datetimes as int64 ns
    UTC, booleans as uint8, other numbers as little-endian float64 (one NaN bit pattern),
    anything else as UTF-8 text with a NUL for missing values.
    """
    cols = list(columns) if columns is not None else [str(c) for c in frame.columns]
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise ValueError(f"columns not in frame: {missing[:10]}")
    if {"symbol", "event_timestamp"} <= set(frame.columns):
        ev = utc_ns(frame["event_timestamp"])
        sym = frame["symbol"].astype(str).to_numpy()
        order = np.lexsort((ev, sym))
    else:
        order = np.arange(len(frame))
    h = hashlib.sha256()
    h.update(f"rows={len(frame)};cols={len(cols)}".encode())
    for c in cols:
        s = frame[c]
        h.update(b"\x1e" + c.encode("utf-8") + b"\x1f")
        if pd.api.types.is_datetime64_any_dtype(s):
            h.update(b"ts")
            h.update(utc_ns(s)[order].astype("<i8").tobytes())
        elif pd.api.types.is_bool_dtype(s) and not s.isna().any():
            h.update(b"b")
            h.update(s.to_numpy(dtype=np.uint8)[order].tobytes())
        elif pd.api.types.is_numeric_dtype(s):
            a = s.to_numpy(dtype=np.float64, na_value=np.nan)[order].copy()
            a[np.isnan(a)] = np.nan
            h.update(b"f")
            h.update(a.astype("<f8").tobytes())
        else:
            vals = s.to_numpy(dtype=object)[order]
            text = "\x1f".join("\x00" if _missing(v) else str(v) for v in vals)
            h.update(b"s")
            h.update(text.encode("utf-8"))
    return "sha256:" + h.hexdigest()


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# -- provenance ---------------------------------------------------------------------------------


def code_version() -> dict[str, Any]:
    """git HEAD of the checkout this module runs from, and whether it had local changes."""
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=here, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    rev = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if rev else None
    return {"git_commit": rev, "dirty": None if status is None else bool(status)}


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("tickml", "lightgbm", "numpy", "pandas", "scikit-learn", "shap", "optuna"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        f = float(value)
        return f if np.isfinite(f) else None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return _json_safe(value.tolist())
    if isinstance(value, (pd.Timestamp, dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (dt.timedelta, pd.Timedelta)):
        return pd.Timedelta(value).isoformat()
    return value


def _oos_summary(oos: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: oos.get(k) for k in _OOS_KEYS}
    cal = oos.get("calibration") or {}
    out["ece"] = cal.get("ece")
    out["brier"] = cal.get("brier")
    return out


# -- the registry -------------------------------------------------------------------------------


@dataclass(eq=False)
class RegisteredModels:
    """A loaded version: its manifest and its models by name ("short", "long", optionally
    "direction")."""

    version: str
    path: Path
    manifest: dict[str, Any]
    models: dict[str, TrainedModel]

    @property
    def short(self) -> TrainedModel:
        return self.models["short"]

    @property
    def long(self) -> TrainedModel:
        return self.models["long"]

    @property
    def direction(self) -> TrainedModel | None:
        """The direction (regression) model, when the version has one."""
        return self.models.get("direction")

    @property
    def decision_model(self) -> str:
        """The name of the model whose score decides: ``"direction"`` when the version has a
        direction model, else ``"short"`` (the module docstring's rule)."""
        return decision_model_for(self.models)

    @property
    def features(self) -> list[str]:
        return list(self.manifest["features"])

    @property
    def feature_service(self) -> str:
        return str(self.manifest["feature_service"])


class ModelRegistry:
    """Versioned model directories under ``root`` and a champion pointer (module docstring)."""

    def __init__(self, root: str | Path, feature_service_prefix: str = "tick_features") -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.feature_service_prefix = feature_service_prefix

    # -- listing ---------------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Saved versions, oldest first."""
        found = []
        for p in self.root.iterdir():
            m = _VERSION_RE.match(p.name)
            if m and p.is_dir():
                found.append((int(m.group(1)), p.name))
        return [name for _, name in sorted(found)]

    def path(self, version: str) -> Path:
        if not _VERSION_RE.match(version):
            raise RegistryError(f"not a version name: {version!r} (expected v<N>)")
        p = self.root / version
        if not p.is_dir():
            raise RegistryError(
                f"version {version} not found in {self.root} (versions: {self.versions()})"
            )
        return p

    # -- save ------------------------------------------------------------------------------------
    def save(
        self,
        source: Any,
        metadata: Mapping[str, Any] | None = None,
        build_runtime: bool = False,
        feature_config: Any = None,
    ) -> str:
        """Save models as a new version; returns its name (``v1``, ``v2``, ...).

        ``source``: an :class:`~tickml.models.experiment.ExperimentResult` (its production
        models, metrics, selection, window and data hash) or a mapping ``{"short":
        TrainedModel, "long": TrainedModel}`` (either may be absent). ``metadata``: free-form
        JSON-able facts stored under ``metadata``; its keys ``training_window``, ``data_hash``,
        ``horizons``, ``oos`` and ``backtest`` fill the manifest's fields of the same name when
        ``source`` does not provide them. ``build_runtime``: also compile the models now
        (:meth:`build_runtime`; otherwise that happens when the version becomes champion).
        ``feature_config``: the :class:`~tickml.features.FeatureConfig` the training features
        were computed with: its settings and :meth:`~tickml.features.FeatureConfig.value_digest`
        go into the manifest (``feature_config``, ``feature_config_digest``), and the live
        scorer refuses the version under another digest.
        """
        meta = dict(metadata or {})
        models, facts = self._collect(source)
        for key in ("training_window", "data_hash", "horizons", "oos", "backtest"):
            if facts.get(key) is None and key in meta:
                facts[key] = meta[key]
        if not models:
            raise ValueError("nothing to save: no models")
        facts["oos"] = _with_decision_model(facts.get("oos"), source, models)
        features: list[str] = []
        for m in models.values():
            features += [f for f in m.features if f not in features]
        texts = {name: m.booster.model_to_string(num_iteration=-1) for name, m in models.items()}
        for _ in range(1000):
            existing = self.versions()
            number = int(existing[-1][1:]) + 1 if existing else 1
            version = f"v{number}"
            tmp = self.root / f".tmp-{version}-{uuid.uuid4().hex}"
            tmp.mkdir()
            try:
                entries: dict[str, Any] = {}
                for name, m in models.items():
                    fname = f"{name}.txt"
                    (tmp / fname).write_text(texts[name], encoding="utf-8")
                    horizon = (facts.get("horizons") or {}).get(name)
                    entries[name] = {
                        "file": fname,
                        "sha256": _file_sha256(tmp / fname),
                        "classes": list(m.classes),
                        "horizon": horizon,
                        "features": list(m.features),
                        "best_iteration": int(m.best_iteration),
                        "logit_offset": None
                        if m.logit_offset is None
                        else [float(v) for v in m.logit_offset],
                        "params": _json_safe(m.params),
                        "size": m.size(),
                        "train_info": _json_safe(m.info),
                    }
                manifest = {
                    "format": FORMAT,
                    "version": version,
                    "created_at": dt.datetime.now(dt.UTC).isoformat(),
                    "feature_service": f"{self.feature_service_prefix}_top{len(features)}_"
                    f"{version}",
                    "features": features,
                    "models": entries,
                    "horizons": facts.get("horizons"),
                    "training_window": facts.get("training_window"),
                    "data_hash": facts.get("data_hash"),
                    "oos": facts.get("oos"),
                    "backtest": facts.get("backtest"),
                    "selection": facts.get("selection"),
                    "code_version": code_version(),
                    "feature_config": None
                    if feature_config is None
                    else feature_config.model_dump(mode="json"),
                    "feature_config_digest": None
                    if feature_config is None
                    else feature_config.value_digest(),
                    "libraries": library_versions(),
                    "metadata": _json_safe(meta),
                }
                text = json.dumps(_json_safe(manifest), indent=2, allow_nan=False)
                (tmp / MANIFEST).write_text(text + "\n", encoding="utf-8")
                _fsync_dir(tmp)
                try:
                    os.rename(tmp, self.root / version)
                except OSError:
                    if (self.root / version).exists():  # another writer took this number
                        shutil.rmtree(tmp, ignore_errors=True)
                        continue
                    raise
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            _fsync_dir(self.root)
            log.info("saved models %s to %s", version, self.root / version)
            if build_runtime:
                self.build_runtime(version)
            return version
        raise RegistryError("could not allocate a version number")

    @staticmethod
    def _collect(source: Any) -> tuple[dict[str, TrainedModel], dict[str, Any]]:
        facts: dict[str, Any] = {}
        if isinstance(source, Mapping):
            models = {str(k): v for k, v in source.items() if v is not None}
        elif hasattr(source, "production") and hasattr(source, "models"):
            models = dict(source.production)
            if not models:
                raise ValueError("the experiment trained no production models")
            d_models = source.models
            facts["horizons"] = {m["model"]: m["horizon"] for m in d_models}
            oos: dict[str, Any] = {m["model"]: _oos_summary(m["oos"]) for m in d_models}
            oos["baselines"] = {b["name"]: _oos_summary(b["oos"]) for b in source.baselines}
            facts["oos"] = oos
            facts["training_window"] = source.training_window
            facts["data_hash"] = source.data_hash
            if source.backtest is not None:
                facts["backtest"] = {
                    k: v for k, v in source.backtest.metrics.items() if not isinstance(v, dict)
                }
            sel = source.selection.to_dict(max_rows=len(source.selection.features))
            facts["selection"] = {
                "top_k": sel["top_k"],
                "n_folds": sel["n_folds"],
                "fold_spearman_mean": sel["fold_spearman_mean"],
                "table": sel["table"],
                "stability": sel["stability"],
            }
        else:
            raise TypeError(
                "save() takes an ExperimentResult or a mapping of model name -> TrainedModel"
            )
        for name, m in models.items():
            if name not in MODEL_NAMES:
                raise ValueError(f"model names are {MODEL_NAMES}, got {name!r}")
            if not isinstance(m, TrainedModel):
                raise TypeError(f"{name}: expected a TrainedModel, got {type(m).__name__}")
        return models, facts

    # -- load ------------------------------------------------------------------------------------
    def manifest(self, version: str) -> dict[str, Any]:
        p = self.path(version) / MANIFEST
        if not p.is_file():
            raise RegistryError(f"{version}: {MANIFEST} is missing ({p})")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RegistryError(f"{version}: {MANIFEST} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT or "models" not in data:
            raise RegistryError(f"{version}: {MANIFEST} is not a format-{FORMAT} manifest")
        if data.get("version") != version:
            raise RegistryError(
                f"{version}: manifest says version {data.get('version')!r} (moved directory?)"
            )
        return data

    def load(self, version: str | None = None) -> RegisteredModels:
        """Load a version (default: the champion) with integrity checks."""
        if version is None:
            version = self.champion()
            if version is None:
                raise RegistryError(f"no champion set in {self.root}")
        path = self.path(version)
        manifest = self.manifest(version)
        models: dict[str, TrainedModel] = {}
        for name, entry in manifest["models"].items():
            try:
                fpath = path / entry["file"]
                classes = tuple(entry["classes"])
                features = tuple(entry["features"])
                digest = entry["sha256"]
            except (KeyError, TypeError) as exc:
                raise RegistryError(f"{version}: manifest entry of {name!r} is incomplete") from exc
            if not fpath.is_file():
                raise RegistryError(f"{version}: model file {entry['file']} is missing ({fpath})")
            raw = fpath.read_bytes()
            actual = hashlib.sha256(raw).hexdigest()
            if actual != digest:
                raise RegistryError(
                    f"{version}: {entry['file']} is corrupted (sha256 {actual[:12]}... but the "
                    f"manifest says {str(digest)[:12]}...)"
                )
            try:
                booster = lgb.Booster(model_file=str(fpath))
            except lgb.basic.LightGBMError as exc:
                raise RegistryError(
                    f"{version}: LightGBM cannot read {entry['file']}: {exc}"
                ) from exc
            if tuple(booster.feature_name()) != features:
                raise RegistryError(f"{version}: {entry['file']} features differ from the manifest")
            found = re.search(rb"^num_class=(\d+)$", raw, flags=re.MULTILINE)
            n_class = int(found.group(1)) if found else 1
            if n_class != max(1, len(classes)):
                raise RegistryError(
                    f"{version}: {entry['file']} has {n_class} classes, manifest {len(classes)}"
                )
            offset = entry.get("logit_offset")
            models[name] = TrainedModel(
                booster=booster,
                classes=classes,
                features=features,
                best_iteration=int(entry.get("best_iteration") or booster.current_iteration()),
                params=dict(entry.get("params") or {}),
                logit_offset=None if offset is None else np.asarray(offset, dtype=np.float64),
                info=dict(entry.get("train_info") or {}),
            )
        return RegisteredModels(version, path, manifest, models)

    # -- champion --------------------------------------------------------------------------------
    def champion(self) -> str | None:
        """The champion version, or None when none was set."""
        p = self.root / CHAMPION
        if not p.exists():
            return None
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
            version = data["version"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise RegistryError(f"{p} is corrupted: {exc}") from exc
        self.path(version)  # raises if it points nowhere
        return str(version)

    # -- compiled runtime ------------------------------------------------------------------------
    def build_runtime(self, version: str, force: bool = False) -> dict[str, Any] | None:
        """Compile the version's models into ``<version>/runtime`` (:mod:`tickml.models.runtime`)
        unless an up-to-date, exact artifact is there; its ``runtime.json``, or None (logged)
        when it cannot be built (no gcc, a compile error): the scorer then uses LightGBM."""
        from tickml.models.runtime import (
            RUNTIME_DIR,
            RUNTIME_MANIFEST,
            RuntimeBuildError,
            RuntimeUnavailable,
            build,
            load_compiled,
        )

        loaded = self.load(version)
        if not force:
            try:
                load_compiled(loaded.path, loaded.manifest, loaded.models)
                text = (loaded.path / RUNTIME_DIR / RUNTIME_MANIFEST).read_text(encoding="utf-8")
                return dict(json.loads(text))
            except RuntimeUnavailable:
                pass
        try:
            info = build(loaded.path, loaded.manifest, loaded.models)
        except RuntimeBuildError as exc:
            log.warning("%s: compiled runtime not built (%s)", version, exc)
            return None
        secs = sum(e["compile_s"] for e in info["models"].values())
        log.info("%s: compiled runtime built in %.1f s", version, secs)
        return info

    def set_champion(self, version: str, build_runtime: bool = True) -> None:
        """Point the champion at ``version`` (atomic replace of champion.json), after building
        its compiled runtime (``build_runtime``; a failed build is logged, not fatal)."""
        self.manifest(version)  # the version must exist and be readable
        if build_runtime:
            self.build_runtime(version)
        previous = None
        try:
            previous = self.champion()
        except RegistryError:
            previous = None
        data = {
            "version": version,
            "set_at": dt.datetime.now(dt.UTC).isoformat(),
            "previous": previous,
        }
        tmp = self.root / f".{CHAMPION}.{uuid.uuid4().hex}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(data, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.root / CHAMPION)
        _fsync_dir(self.root)

    def promote_if_better(self, version: str, build_runtime: bool = True) -> tuple[bool, list[str]]:
        """Apply :func:`promotion_decision` against the current champion; set it if promoted
        (:meth:`set_champion`, which builds the compiled runtime first unless told not to)."""
        challenger = self.manifest(version)
        current = self.champion()
        champ = self.manifest(current) if current is not None else None
        ok, reasons = promotion_decision(challenger, champ)
        if ok:
            self.set_champion(version, build_runtime=build_runtime)
        return ok, reasons

    @staticmethod
    def promotion_decision(
        challenger: Mapping[str, Any], champion: Mapping[str, Any] | None
    ) -> tuple[bool, list[str]]:
        """:func:`promotion_decision` (module function), for convenience."""
        return promotion_decision(challenger, champion)


def _with_decision_model(
    oos: Mapping[str, Any] | None, source: Any, models: Mapping[str, TrainedModel]
) -> dict[str, Any]:
    """``oos`` with ``decision_model`` set by the rule (:func:`decision_model_for` the saved
    models); a ValueError when the source (its ``decision_model`` attribute) or the given
    ``oos`` names another model: its metrics would be filed under the wrong model."""
    dm = decision_model_for(models)
    claims = {
        "the source's decision_model": getattr(source, "decision_model", None),
        'oos["decision_model"]': (oos or {}).get("decision_model"),
    }
    for who, named in claims.items():
        if named is not None and str(named) != dm:
            raise ValueError(
                f"{who} is {named!r}, but the saved models {sorted(models)} make the decision "
                f"model {dm!r} (the direction model when there is one, else short)"
            )
    return {**(oos or {}), "decision_model": dm}


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
