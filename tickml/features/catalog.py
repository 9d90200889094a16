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
