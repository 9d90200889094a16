"""The feature table of a configuration: every family's definitions, in table order, and the
selected output features (one definition per feature, read by both engines' program)."""

from __future__ import annotations

from tickml.features.config import ALL_FAMILIES, FeatureConfig
from tickml.features.defs import FeatureDef
from tickml.features.families_ext import FAMILY_BUILDERS


def family_defs(config: FeatureConfig | None = None) -> list[FeatureDef]:
    """Every feature of the enabled families, in table order (before ``config.features``)."""
    cfg = config or FeatureConfig()
    out: list[FeatureDef] = []
    for fam in ALL_FAMILIES:
        if cfg.enabled(fam):
            out.extend(FAMILY_BUILDERS[fam](cfg))
    names = [f.name for f in out]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate feature names {dup}")
    return out


def computed_defs(config: FeatureConfig | None = None) -> list[FeatureDef]:
    """The enabled families' features and, in table order, every feature of a switched-off
    family that they read (a ref of the normalized family, say): computed, never output."""
    cfg = config or FeatureConfig()
    enabled = family_defs(cfg)
    off = [f for f in ALL_FAMILIES if not cfg.enabled(f)]
    if not off:
        return enabled
    table = {d.name: d for fam in off for d in FAMILY_BUILDERS[fam](cfg)}
    keep = {d.name for d in enabled}
    todo = [r for d in enabled for r in d.refs if r not in keep]
    support: set[str] = set()
    while todo:
        name = todo.pop()
        if name in support or name in keep:
            continue
        if name not in table:
            raise ValueError(f"feature reference {name!r} is not in any family")
        support.add(name)
        todo.extend(table[name].refs)
    order: dict[str, int] = {f: i for i, f in enumerate(ALL_FAMILIES)}
    both = enabled + [d for d in table.values() if d.name in support]
    return sorted(both, key=lambda d: order[d.family])  # stable: table order within a family


def feature_defs(config: FeatureConfig | None = None) -> list[FeatureDef]:
    """The output features: those of the enabled families, or ``config.features`` of them."""
    cfg = config or FeatureConfig()
    defs = family_defs(cfg)
    if cfg.features is None:
        return defs
    known = {d.name for d in defs}
    unknown = [n for n in cfg.features if n not in known]
    if unknown:
        raise ValueError(f"unknown features {unknown} (not in the enabled families)")
    wanted = set(cfg.features)
    return [d for d in defs if d.name in wanted]


def feature_names(config: FeatureConfig | None = None) -> list[str]:
    """Column names of the feature rows, in order (without symbol / timestamps)."""
    return [f.name for f in feature_defs(config)]
