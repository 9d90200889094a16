"""Datasets for the model tests: the simulator through the real chain (compute_features ->
make_labels -> prepare_dataset), with the latent signal kept beside each row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tickml.features import FeatureConfig, compute_features, feature_names
from tickml.labels import LabelConfig, make_labels
from tickml.models import prepare_dataset
from tickml.simulator import SimConfig, simulate_day


def sim_dataset(
    n_days: int,
    n_symbols: int,
    signal_strength: float,
    *,
    seed: int = 7,
    feature_config: FeatureConfig | None = None,
    short_horizon: str = "5min",
    long_horizon: str = "10min",
    start: str = "2024-01-08",
    **sim: Any,
) -> tuple[pd.DataFrame, list[str]]:
    """(dataset, feature columns). The dataset has every column run_experiment needs plus
    ``latent_signal`` (the simulator's hidden signal at event_timestamp; NaN at the close)."""
    cfg = SimConfig(n_symbols=n_symbols, signal_strength=signal_strength, seed=seed, **sim)
    days = list(pd.bdate_range(start, periods=n_days).date)
    sims = [simulate_day(cfg, d) for d in days]
    ticks = pd.concat([s.ticks for s in sims], ignore_index=True)
    latent = pd.concat([s.latent for s in sims], ignore_index=True)
    fcfg = feature_config or FeatureConfig(leader=cfg.leader_name)
    feats = compute_features(ticks, fcfg)
    labels = make_labels(
        ticks,
        feats[["symbol", "event_timestamp"]],
        LabelConfig(short_horizon=short_horizon, long_horizon=long_horizon),
    )
    ds = prepare_dataset(feats, labels)
    lat = latent.rename(columns={"ts": "event_timestamp", "signal": "latent_signal"})
    ds = ds.merge(
        lat[["symbol", "event_timestamp", "latent_signal"]],
        on=["symbol", "event_timestamp"],
        how="left",
        validate="1:1",
    )
    return ds, feature_names(fcfg)


def panel_dataset(n_days: int = 4, n_sym: int = 3, seed: int = 11) -> pd.DataFrame:
    """A small synthetic panel for the mechanics of selection and the runner: minute rows in
    the session, a planted feature 'sig' driving both labels' returns, eight noise features."""
    rng = np.random.default_rng(seed)
    rows = []
    for day in pd.bdate_range("2024-03-04", periods=n_days):
        open_ = pd.Timestamp(day.date().isoformat() + " 09:30", tz="America/New_York")
        ts = open_ + pd.to_timedelta(np.arange(1, 391), unit="min")
        for s in range(n_sym):
            rows.append(pd.DataFrame({"symbol": f"S{s}", "event_timestamp": ts.tz_convert("UTC")}))
    ds = pd.concat(rows, ignore_index=True)
    n = len(ds)
    ds["label_end"] = ds["event_timestamp"] + pd.Timedelta(minutes=10)
    feats = {f"noise{i}": rng.standard_normal(n) for i in range(8)}
    feats["sig"] = rng.standard_normal(n)
    for k, v in feats.items():
        ds[k] = v
    r = 0.002 * ds["sig"] + 0.002 * rng.standard_normal(n)
    ds["fwd_return_short"] = r
    ds["fwd_return_long"] = r + 0.001 * rng.standard_normal(n)
    ds["label_short"] = np.where(r > 0.002, "UP", np.where(r < -0.002, "DOWN", "FLAT"))
    ds.loc[rng.random(n) < 0.05, "label_short"] = "TRAP_UP"
    ds.loc[rng.random(n) < 0.05, "label_short"] = "TRAP_DOWN"
    rl = ds["fwd_return_long"]
    ds["label_long"] = np.where(rl > 0.002, "UP", np.where(rl < -0.002, "DOWN", "FLAT"))
    ds["label_short"] = ds["label_short"].astype(object)
    ds["label_long"] = ds["label_long"].astype(object)
    ds.loc[::50, ["label_short", "label_long"]] = None
    ds["mid"] = 50.0
    ds["spread"] = 0.01
    ds["ret_b1"] = rng.standard_normal(n)
    return ds


PANEL_FEATURES = [f"noise{i}" for i in range(8)] + ["sig"]
