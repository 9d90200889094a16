"""The run configuration: every knob of the offline pipeline in one documented YAML file.

``tickml config`` prints the defaults as YAML with each field's description; ``tickml run
--config FILE`` and the Dagster assets (``TICKML_CONFIG``) read it. Sections:

- ``market``: :class:`tickml.market.Market` (time zone of the trading day, session open and
  close). Set once: every other section (features, labels, walk-forward folds, decision gates),
  the ingest (the day every tick is stored under), the simulator, the live workers and the
  Dagster daily partitions and schedules take their day and session from here. Without a
  market section a run takes its tick source's market (:meth:`RunConfig.for_source`,
  :func:`tickml.sources.source_market`: Binance 24/7 UTC, the others New York);
- ``features``: :class:`tickml.features.FeatureConfig` (families, windows, sampling interval,
  session, leader symbol, fracdiff d);
- ``labels``: :class:`tickml.labels.LabelConfig` (horizons, barriers, traps, path quality);
- ``experiment``: walk-forward folds, embargo, model size, top-K, decision gates and costs;
- ``validation``: :class:`tickml.validation.ValidationConfig` (plausibility bounds of ticks:
  price and size ranges, timestamp range, relative price jumps), used by ingest and the live
  bus consumers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from tickml.features import FeatureConfig
from tickml.labels import LabelConfig
from tickml.market import MARKET_KEYS, Market
from tickml.models.experiment import ExperimentConfig
from tickml.sources import source_market
from tickml.validation import ValidationConfig

#: the sections that take the market, as paths into the run configuration
MARKET_SECTIONS: tuple[tuple[str, ...], ...] = (
    ("features",),
    ("labels",),
    ("experiment", "walk_forward"),
    ("experiment", "decision"),
)


class RunConfig(BaseModel):
    """Everything `tickml run` and the Dagster assets need to know, with defaults."""

    model_config = ConfigDict(extra="forbid")

    market: Market = Field(
        default_factory=Market,
        description="the market: time zone of the trading day (local midnight to midnight) and "
        "the session; every section below takes its day and session from here (tickml.market)",
    )
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
    validation: ValidationConfig = Field(
        default_factory=ValidationConfig,
        description="plausibility bounds every tick must meet (tickml.validation)",
    )

    @model_validator(mode="before")
    @classmethod
    def _market_set_once(cls, data: Any) -> Any:
        """A section may repeat the market (files written before the market section existed)
        only with the same values; a different time zone or session is an error, not a
        silent misalignment."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        market = Market.model_validate(data.get("market") or {})
        for path in MARKET_SECTIONS:
            parent, key = _parent(data, path)
            if parent is None:
                continue
            section = parent.get(key)
            if isinstance(section, BaseModel):
                if getattr(section, "market", market) != market:
                    raise ValueError(f"{'.'.join(path)}.market differs from the market section")
                continue
            if not isinstance(section, dict):
                continue
            given = {k: section[k] for k in MARKET_KEYS if k in section}
            nested = section.get("market") or {}
            if isinstance(nested, BaseModel):
                nested = nested.model_dump()
            own = Market.model_validate({**market.model_dump(), **dict(nested), **given})
            if own != market:
                raise ValueError(
                    f"{'.'.join(path)}: time zone/session {_describe(own)} differ from the "
                    f"market section's {_describe(market)}; set them once, under market:"
                )
            parent[key] = {k: v for k, v in section.items() if k not in (*MARKET_KEYS, "market")}
        return data

    @model_validator(mode="after")
    def _one_market(self) -> RunConfig:
        """Every section takes the market section's time zone and session."""
        m = self.market
        if self.features.market != m:
            self.features = self.features.model_copy(update={"market": m})
        if self.labels.market != m:
            self.labels = self.labels.model_copy(update={"market": m})
        exp = self.experiment
        if exp.walk_forward.market != m or exp.decision.market != m:
            self.experiment = exp.model_copy(update={
                "walk_forward": exp.walk_forward.model_copy(update={"market": m}),
                "decision": exp.decision.model_copy(update={"market": m}),
            })
        return self

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

    @property
    def sets_market(self) -> bool:
        """Whether the configuration has a market section (not only the default)."""
        return "market" in self.model_fields_set

    def for_source(self, kind: str) -> RunConfig:
        """This configuration for a run on tick source ``kind``: unchanged when it has a
        market section; otherwise every section on the source's own market
        (:func:`tickml.sources.source_market`; Binance: 24/7 UTC)."""
        market = source_market(kind, self.market if self.sets_market else None)
        if market == self.market:
            return self
        data = self.model_dump(exclude=_section_markets())
        data["market"] = market.model_dump()
        return RunConfig.model_validate(data)

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
        data = self.model_dump()
        if horizons:
            data["labels"].update(short_horizon=horizons[0], long_horizon=horizons[1])
        if interval:
            data["features"]["interval"] = interval
        return RunConfig.model_validate(data)


def _section_markets() -> dict[str, Any]:
    """A ``model_dump`` exclusion of the sections' own market fields (they follow the market
    section)."""
    out: dict[str, Any] = {}
    for path in MARKET_SECTIONS:
        node = out
        for key in path:
            node = node.setdefault(key, {})
        node["market"] = True
    return out


def _parent(data: dict[str, Any], path: tuple[str, ...]) -> tuple[dict[str, Any] | None, str]:
    """The (copied) mapping holding the last key of ``path`` inside ``data``, if any."""
    parent = data
    for key in path[:-1]:
        child = parent.get(key)
        if not isinstance(child, dict):
            return None, path[-1]
        parent[key] = child = dict(child)
        parent = child
    return parent, path[-1]


def _describe(m: Market) -> str:
    if m.session_open is None:
        return f"{m.tz}, no session"
    return f"{m.tz} {m.session_open:%H:%M}-{m.session_close:%H:%M}"


def load_run_config(path: str | Path | None) -> RunConfig:
    """:meth:`RunConfig.load` with every problem as a :class:`~tickml.errors.UsageError` whose
    one-line message names the file and the first problem (missing file, YAML syntax, an
    unknown or invalid field)."""
    import pydantic

    from tickml.errors import UsageError

    try:
        return RunConfig.load(path)
    except FileNotFoundError as exc:
        raise UsageError(f"{exc} (`tickml config` prints a template)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"config {path}: not valid YAML{at}") from None
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(x) for x in first.get("loc", ())) or "(top level)"
        raise UsageError(
            f"config {path}: {loc}: {first.get('msg')} ({exc.error_count()} problem(s); "
            "`tickml config` lists every knob)"
        ) from None
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"config {path}: {' '.join(str(exc).split())}") from None


def documented_yaml(model: BaseModel, indent: int = 0) -> str:
    """The model's values as YAML, each field preceded by its description as a comment."""
    lines: list[str] = []
    pad = " " * indent
    as_json = model.model_dump(mode="json")
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        if indent and isinstance(value, Market):
            continue  # set once, in the top-level market section
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
