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
from dataclasses import dataclass
from pathlib import Path

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


class ChampionSwitch:
    """The active version of one scorer (``name``) and its layout (module doc)."""

    def __init__(
        self,
        config: LiveConfig,
        client: redis.Redis,
        registry_root: str | Path,
        name: str,
        compiled: bool = True,
    ) -> None:
        self.cfg, self.r, self.name, self.compiled = config, client, name, compiled
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
                layout = layout_for(reg.manifest)
                inf = Inference.of(
                    reg, layout.columns, compiled=self.compiled, threads=self.threads
                )
            except (RegistryError, ValueError) as exc:
                log.error("cannot load model version; keeping the current one",
                          extra={"version": version, "error": str(exc)})
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
