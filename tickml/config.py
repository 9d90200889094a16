"""The run configuration: every knob of the offline pipeline in one documented YAML file.

``tickml config`` prints the defaults as YAML with each field's description; ``tickml run
--config FILE`` and the Dagster assets (``TICKML_CONFIG``) read it. Sections:

- ``features``: :class:`tickml.features.FeatureConfig` (families, windows, sampling interval,
  session, leader symbol, fracdiff d);
- ``labels``: :class:`tickml.labels.LabelConfig` (horizons, barriers, traps, path quality);
- ``experiment``: walk-forward folds, embargo, model size, top-K, decision gates and costs.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tickml.features import FeatureConfig
from tickml.labels import LabelConfig
from tickml.models.experiment import ExperimentConfig


class RunConfig(BaseModel):
    """Everything `tickml run` and the Dagster assets need to know, with defaults."""

    model_config = ConfigDict(extra="forbid")

    features: FeatureConfig = Field(
        default_factory=FeatureConfig, description="feature engine (tickml.features)"
    )
    labels: LabelConfig = Field(
        default_factory=LabelConfig, description="triple-barrier labels (tickml.labels)"
    )
    experiment: ExperimentConfig = Field(
        default_factory=ExperimentConfig,
        description="walk-forward evaluation, training, selection, decision and costs "
        "(tickml.models.experiment)",
    )

    @model_validator(mode="after")
    def _one_source_of_horizons(self) -> RunConfig:
        """The labels' horizons name the models and set the holding period: the experiment
        section follows them (set horizons under ``labels``)."""
        want = {"short_horizon": self.labels.short_horizon,
                "long_horizon": self.labels.long_horizon}
        if any(getattr(self.experiment, k) != v for k, v in want.items()):
            self.experiment = self.experiment.model_copy(update=want)
        return self

    def experiment_config(self) -> ExperimentConfig:
        return self.experiment

    @classmethod
    def load(cls, path: str | Path | None) -> RunConfig:
        if path is None:
            return cls()
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(f"config file {p} does not exist")
        data = yaml.safe_load(p.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{p}: expected a mapping at the top level")
        return cls.model_validate(data)

    def with_overrides(
        self, horizons: tuple[str, str] | None = None, interval: str | None = None
    ) -> RunConfig:
        cfg = self
        if horizons:
            labels = LabelConfig.model_validate(
                {**cfg.labels.model_dump(), "short_horizon": horizons[0],
                 "long_horizon": horizons[1]}
            )
            cfg = RunConfig.model_validate({**cfg.model_dump(), "labels": labels.model_dump()})
        if interval:
            cfg = cfg.model_copy(
                update={"features": FeatureConfig.model_validate(
                    {**cfg.features.model_dump(), "interval": interval}
                )}
            )
        return cfg


def documented_yaml(model: BaseModel, indent: int = 0) -> str:
    """The model's values as YAML, each field preceded by its description as a comment."""
    lines: list[str] = []
    pad = " " * indent
    as_json = model.model_dump(mode="json")
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if field.description:
            lines.append(f"{pad}# {field.description}")
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            lines.append(documented_yaml(value, indent + 2))
            continue
        plain = as_json[name]
        if isinstance(plain, (list, dict)):
            text = yaml.safe_dump(plain, default_flow_style=True, width=10_000).strip()
        else:
            text = yaml.safe_dump(plain, width=10_000).strip()
            text = text.removesuffix("\n...").removesuffix("...").strip()
        lines.append(f"{pad}{name}: {text}")
    return "\n".join(lines)
