"""Packed model-vector layouts: which values the materializers pack for the scorer, per champion.

A :class:`VectorLayout` is the champion's model inputs (its FeatureService: every feature any of
its models uses, in manifest order: the short, long and, when the version has one, direction
model's; the registry's manifest ``features`` is their union) plus the columns the decision and
the position book need (:data:`DECISION_COLUMNS`: ``ret_b1``, the last interval's return;
:data:`MARKET_COLUMNS`: ``mid``, ``spread``, ``bid_size``, ``ask_size`` of the last book,
:mod:`tickml.execution.market`), float64 (the exact values the models were trained on: live
scores equal offline scores without retraining on rounded values). With 70 selected features a
vector is 75 values instead of 214.

Each layout is its own Feast view in Feast's Redis layout: view ``model_vector_<digest>``
(:attr:`VectorLayout.view`; the digest covers the column names and the dtype), one packed
``Array(Float64)`` field ``vector`` and ``_ts:<view>`` per symbol, under the ``vector_symbol``
entity (:data:`live.wire.VECTOR_JOIN_KEY`): a Redis hash of its own per symbol, not a field of
the symbol's ~216-field ``tick_features`` hash (measured at 5,000 symbols: 16 ms to read from
the large hashes, 5.4 ms from their own). A name fixes the content, so
a vector can never be read with another layout's columns.

Switching on promotion, without ever scoring a boundary with a layout that does not match the
loaded models:

1. every materializer, at every boundary, writes the layout of the registry's champion *and*
   every layout a scorer declared in ``<prefix>:layouts`` (the one its loaded models read), and
   announces the boundary with the champion's version and the layouts it wrote;
2. a scorer that sees a new champion announced loads it (models, compiled runtime) and switches
   at the first boundary every one of its shards announced with that champion, i.e. with the
   new layout already written; until then it keeps scoring the old models on the old layout,
   which is still written because it declared it. Then it declares the new layout; the old one
   stops being written at the next boundary.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from live.wire import field_key
from tickml.execution.market import MARKET_COLUMNS  # the position book's market
from tickml.models.registry import ModelRegistry, RegistryError

log = logging.getLogger(__name__)

DECISION_COLUMNS = ("ret_b1",)  # the decision's last_return (and the recent volatility)
VECTOR_FEATURE = "vector"
VIEW_PREFIX = "model_vector_"


@dataclass(frozen=True)
class VectorLayout:
    """The columns of a packed vector, in order (see the module doc)."""

    columns: tuple[str, ...]
    dtype: str = "float64"
    feature_service: str = ""

    def __post_init__(self) -> None:
        if self.dtype != "float64":
            raise ValueError(f"layout dtype {self.dtype!r}: only float64 is exact")
        if len(set(self.columns)) != len(self.columns) or not self.columns:
            raise ValueError("layout columns must be non-empty and unique")

    @functools.cached_property
    def digest(self) -> str:
        """Content hash; the first whose field name suits SORT's one-reply read (live.online:
        a murmur3 field starting with a NUL byte can only be read with HMGET)."""
        for salt in range(256):
            text = json.dumps([list(self.columns), self.dtype, salt], separators=(",", ":"))
            d = hashlib.blake2b(text.encode(), digest_size=6).hexdigest()
            if field_key(VIEW_PREFIX + d, VECTOR_FEATURE)[:1] != b"\0":
                return d
        raise AssertionError("unreachable: 256 NUL-leading murmur3 hashes in a row")

    @functools.cached_property
    def view(self) -> str:
        return VIEW_PREFIX + self.digest

    @property
    def features(self) -> tuple[str, ...]:
        """The columns computed by the feature engine (all but the market columns)."""
        return tuple(c for c in self.columns if c not in MARKET_COLUMNS)

    def index(self, column: str) -> int:
        return self.columns.index(column)

    def to_json(self) -> str:
        return json.dumps(
            {"columns": list(self.columns), "dtype": self.dtype, "fs": self.feature_service},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> VectorLayout:
        d = json.loads(text)
        return cls(tuple(d["columns"]), d.get("dtype", "float64"), d.get("fs", ""))


def layout_for(manifest: Mapping[str, Any] | None) -> VectorLayout:
    """The layout of a registry version (None: no champion, the fallback's columns only)."""
    feats: Sequence[str] = list(manifest["features"]) if manifest else []
    cols = [*dict.fromkeys([*feats, *DECISION_COLUMNS]), *MARKET_COLUMNS]
    fs = str(manifest.get("feature_service", "")) if manifest else ""
    return VectorLayout(tuple(cols), feature_service=fs)


def declare(client: redis.Redis, prefix: str, owner: str, layout: VectorLayout) -> None:
    """Ask the materializers to keep writing ``layout`` (for ``owner``, e.g. a scorer)."""
    client.hset(f"{prefix}:layouts", owner, layout.to_json())


class LayoutPlan:
    """What a materializer writes at a boundary: the champion's layout and every declared one.

    The champion is read from the registry folder (``champion.json``, re-read when it changes;
    None without a registry), the declared layouts from ``<prefix>:layouts`` (one HGETALL)."""

    def __init__(self, client: redis.Redis, prefix: str, registry: str | Path | None) -> None:
        self.r, self.prefix = client, prefix
        self.registry = ModelRegistry(registry) if registry else None
        self._stamp: tuple[int, int] | None = None
        self._champion: tuple[str | None, VectorLayout | None] = (None, None)
        self._declared: dict[bytes, VectorLayout] = {}

    def champion(self) -> tuple[str | None, VectorLayout | None]:
        if self.registry is None:
            return None, None
        path = self.registry.root / "champion.json"
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_ino)
        except FileNotFoundError:
            stamp = (0, 0)
        if stamp != self._stamp:
            try:
                version = self.registry.champion()
                manifest = self.registry.manifest(version) if version else None
                self._champion = (version, layout_for(manifest))
                self._stamp = stamp
            except RegistryError as exc:
                log.error("champion unreadable, keeping the last one", extra={"error": str(exc)})
        return self._champion

    def current(self) -> tuple[str | None, list[VectorLayout]]:
        """(champion version, layouts to write: the champion's first, no repeats)."""
        version, champ = self.champion()
        out = [champ] if champ is not None else []
        for raw in self.r.hvals(f"{self.prefix}:layouts"):
            lay = self._declared.get(raw)
            if lay is None:
                try:
                    lay = self._declared[raw] = VectorLayout.from_json(raw)
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("bad declared layout ignored", extra={"error": str(exc)})
                    continue
            if lay not in out:
                out.append(lay)
        if not out:  # nobody asked yet: the fallback's columns
            out.append(layout_for(None))
        return version, out
