"""The champion a scorer scores with: its models (compiled), its vector layout, and the switch
on promotion (see :mod:`live.layout` for the protocol).

:class:`ChampionSwitch` loads a version once (models, compiled runtime, layout), declares the
layout its loaded models read in ``<prefix>:layouts`` (so materializers keep writing it), and
switches to a new champion only at a boundary every shard announced with that champion's layout
written (:meth:`ChampionSwitch.follow`); without announcements (tests, benchmarks) it follows
the registry directly (:meth:`ChampionSwitch.reload`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis

from live import metrics
from live.config import LiveConfig
from live.layout import VectorLayout, declare, layout_for
from tickml.models.inference import Inference
from tickml.models.registry import ModelRegistry, RegistryError

log = logging.getLogger(__name__)

#: the champion field of announcements from materializers that run without the registry
UNKNOWN = "?"


@dataclass(frozen=True)
class Announced:
    """What the shards a scorer owns announced for one boundary."""

    champion: str | None  #: the champion every shard saw ("" none; None: they disagree;
    #: UNKNOWN: materializers without the registry)
    layouts: frozenset[str]  #: views every shard wrote


class FeatureConfigMismatch(ValueError):
    """A model version's recorded feature configuration is not the live one."""


class ChampionSwitch:
    """The active version of one scorer (``name``) and its layout (module doc)."""

    def __init__(
        self,
        config: LiveConfig,
        client: redis.Redis,
        registry_root: str | Path,
        name: str,
        compiled: bool = True,
        feature_digest: str | None = None,
    ) -> None:
        self.cfg, self.r, self.name, self.compiled = config, client, name, compiled
        #: FeatureConfig.value_digest of the features this scorer is served (None: no check)
        self.feature_digest = feature_digest
        # each scorer process of the machine gets its share of the cores for its predictors
        self.threads = max(1, (os.cpu_count() or 1) // max(1, config.scorers))
        self.registry = ModelRegistry(registry_root)
        self.models: Inference | None = None
        self.layout: VectorLayout = layout_for(None)
        self._prepared: dict[str, tuple[Inference, VectorLayout] | None] = {}

    @property
    def version(self) -> str | None:
        return self.models.version if self.models else None

    def _prepare(self, version: str) -> tuple[Inference, VectorLayout] | None:
        """Load a version (models, compiled runtime, layout) once; None when it cannot load."""
        if version not in self._prepared:
            self._prepared.clear()  # keep at most the active and one pending version
            try:
                reg = self.registry.load(version)
                self._check_features(reg.manifest)
                layout = layout_for(reg.manifest)
                inf = Inference.of(
                    reg, layout.columns, compiled=self.compiled, threads=self.threads
                )
            except (RegistryError, ValueError) as exc:
                reason = "feature_config" if isinstance(exc, FeatureConfigMismatch) else "load"
                metrics.VERSIONS_REFUSED.labels(self.name, reason).inc()
                log.error("cannot load model version; keeping the current one",
                          extra={"version": version, "error": str(exc), "reason": reason})
                self._prepared[version] = None
                return None
            if inf.fallback_reason is not None:
                metrics.RUNTIME_FALLBACKS.labels(self.name, inf.fallback_reason).inc()
                log.warning(
                    "compiled runtime unusable: scoring with LightGBM",
                    extra={"version": version, "reason": inf.fallback_reason,
                           "detail": inf.fallback_message},
                )
            inf.predict(np.zeros((1, len(layout.columns))))  # warm up
            self._prepared[version] = (inf, layout)
        return self._prepared[version]

    def _check_features(self, manifest: Mapping[str, Any]) -> None:
        """A version trained under another feature configuration would be served features of
        the same names with other values (e.g. a changed fracdiff order): refuse it. Versions
        saved before the digest was recorded load with a warning."""
        want = manifest.get("feature_config_digest")
        if self.feature_digest is None:
            return
        if want is None:
            log.warning("model version records no feature configuration; not checked",
                        extra={"version": manifest.get("version")})
            return
        if want != self.feature_digest:
            raise FeatureConfigMismatch(
                f"{manifest.get('version')} was trained under feature configuration {want}, "
                f"this scorer's features are {self.feature_digest}: retrain, or run the live "
                "workers with the training configuration"
            )

    def _activate(self, version: str | None) -> bool:
        if version is None:
            self.models, self.layout = None, layout_for(None)
        else:
            ready = self._prepare(version)
            if ready is None:
                return False
            self.models, self.layout = ready
            self._prepared = {version: ready}
        declare(self.r, self.cfg.prefix, self.name, self.layout)
        for rt in ("tl2cgen", "lightgbm"):
            metrics.INFERENCE_RUNTIME.labels(self.name, rt).set(
                int(self.models is not None and self.models.runtime == rt)
            )
        log.info("champion active", extra={
            "version": version, "layout": self.layout.view, "columns": len(self.layout.columns),
            "runtime": self.models.runtime if self.models else None})
        return True

    def reload(self) -> bool:
        """Standalone use (no announcements): activate the registry's champion when it changed;
        True when the active version changed."""
        version = self.registry.champion()
        return version != self.version and self._activate(version)

    def follow(self, announced: Announced) -> bool:
        """Switch to the champion the shards announced once its layout is written everywhere;
        True when the active version changed."""
        target = announced.champion
        if target == UNKNOWN:  # materializers without the registry: the scorer reads it
            target = self.registry.champion() or ""
        if target is None or (target or None) == self.version:
            return False
        layout = layout_for(None)
        if target:
            ready = self._prepare(target)
            if ready is None:
                return False
            layout = ready[1]
        if layout.view not in announced.layouts:
            # not written yet: ask for it (materializers that follow the registry already do)
            declare(self.r, self.cfg.prefix, f"{self.name}:next", layout)
            return False
        self.r.hdel(self.cfg.key("layouts"), f"{self.name}:next")
        return self._activate(target or None)
