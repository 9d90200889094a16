"""The market calendar (tickml.market) and the run configuration's one market section."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from tickml.config import RunConfig, documented_yaml
from tickml.decision import DecisionConfig
from tickml.evaluation.splits import WalkForwardConfig
from tickml.features import FeatureConfig
from tickml.labels import LabelConfig
from tickml.market import Market, day_numbers, local_days, ts_ns, utc_ns
from tickml.simulator import SimConfig

pytestmark = pytest.mark.unit

NY = "America/New_York"


def ns(text: str, tz: str = NY) -> int:
    return int(pd.Timestamp(text, tz=tz).value)


def test_day_rule_midnight_belongs_to_the_day_that_ends():
    m = Market()
    midnight = ns("2024-03-05 00:00")
    assert m.local_day(midnight) == dt.date(2024, 3, 4)
    assert m.local_day(midnight + 1) == dt.date(2024, 3, 5)
    start, end, open_, close = m.day_bounds(dt.date(2024, 3, 5))
    assert (start, end) == (midnight, ns("2024-03-06 00:00"))
    assert (open_, close) == (ns("2024-03-05 09:30"), ns("2024-03-05 16:00"))
    assert m.day_of(midnight + 1) == m.day_bounds(dt.date(2024, 3, 5))


def test_dst_days_are_23_and_25_hours():
    m = Market()
    spring = m.day_bounds(dt.date(2024, 3, 10))
    fall = m.day_bounds(dt.date(2024, 11, 3))
    assert spring.end - spring.start == 23 * 3_600 * 10**9
    assert fall.end - fall.start == 25 * 3_600 * 10**9
    # a local time that does not exist moves forward to the first instant that does
    assert m.local_ns(dt.date(2024, 3, 10), dt.time(2, 30)) == ns("2024-03-10 03:00")


def test_vectorized_day_rules_agree_with_the_scalar_rule():
    rng = np.random.default_rng(0)
    lo, hi = ns("2024-03-01"), ns("2024-03-20")
    ts = np.sort(rng.integers(lo, hi, 2_000))
    ts = np.concatenate([ts, [ns("2024-03-10 00:00"), ns("2024-03-10 00:00") + 1]])
    for tz in (NY, "UTC", "Asia/Tokyo"):
        m = Market(tz=tz)
        want = [m.local_day(int(t)) for t in ts]
        numbers = day_numbers(ts, tz)
        assert [dt.date(1970, 1, 1) + dt.timedelta(days=int(n)) for n in numbers] == want
        codes, days = local_days(ts, tz)
        assert [days[c] for c in codes] == want and days == sorted(set(want))
        idx, all_days = m.day_index(ts)
        assert [all_days[i] for i in idx] == want
        assert all_days == [all_days[0] + dt.timedelta(days=i) for i in range(len(all_days))]
    assert day_numbers(np.zeros(0, np.int64), NY).size == 0
    assert local_days(np.zeros(0, np.int64), NY)[1] == []


def test_utc_ns_takes_naive_as_utc_and_converts_aware():
    aware = pd.Series(pd.to_datetime(["2024-03-05 09:30"]).tz_localize(NY))
    naive = pd.Series(pd.to_datetime(["2024-03-05 14:30"]))
    want = ns("2024-03-05 09:30")
    assert utc_ns(aware)[0] == want == utc_ns(naive)[0]
    assert utc_ns(aware.dt.as_unit("us"))[0] == want
    assert ts_ns(want) == want == ts_ns(pd.Timestamp("2024-03-05 14:30"))
    out = utc_ns(aware)
    out[0] = 0  # a fresh writable array
    assert aware.iloc[0].value == want


def test_all_day_market_has_the_whole_day_as_session():
    m = Market.all_day("UTC")
    b = m.day_bounds(dt.date(2024, 1, 2))
    assert (b.open, b.close) == (b.start, b.end) and not m.has_session


def test_market_validation():
    with pytest.raises(ValidationError, match="both"):
        Market(session_open=dt.time(9, 30), session_close=None)
    with pytest.raises(ValidationError, match="after"):
        Market(session_open=dt.time(16), session_close=dt.time(9, 30))
    with pytest.raises(ValidationError, match="time zone"):
        Market(tz="Mars/Olympus")


def test_components_accept_flat_market_keys():
    flat = dict(tz="UTC", session_open=None, session_close=None)
    want = Market.all_day("UTC")
    assert FeatureConfig(**flat).market == want
    assert LabelConfig(**flat).market == want
    assert DecisionConfig(**flat).market == want
    assert WalkForwardConfig(tz="UTC").market.tz == "UTC"
    assert SimConfig(session_close=dt.time(10)).market.session_close == dt.time(10)


def test_run_config_sets_the_market_once():
    crypto = {"tz": "UTC", "session_open": None, "session_close": None}
    cfg = RunConfig.model_validate({"market": crypto})
    for m in (cfg.features.market, cfg.labels.market, cfg.experiment.walk_forward.market,
              cfg.experiment.decision.market):
        assert m == Market.all_day("UTC")
    # the YAML names the market once and reads back to the same configuration
    text = documented_yaml(cfg)
    assert text.count("tz:") == 1
    assert RunConfig.model_validate(yaml.safe_load(text)) == cfg
    assert cfg.with_overrides(("5min", "15min"), "30s").labels.market == Market.all_day("UTC")


def test_run_config_refuses_a_section_with_another_session():
    with pytest.raises(ValidationError, match="experiment.decision.*differ"):
        RunConfig.model_validate({"experiment": {"decision": {"session_close": "15:00"}}})
    with pytest.raises(ValidationError, match="features.*differ"):
        RunConfig.model_validate({"market": {"tz": "UTC"}, "features": {"tz": NY}})
    # files written before the market section repeat the same session in each section: fine
    old = {"features": {"tz": NY, "session_open": "09:30:00", "session_close": "16:00:00"},
           "labels": {"tz": NY}, "experiment": {"walk_forward": {"tz": NY}}}
    assert RunConfig.model_validate(old) == RunConfig()


@pytest.mark.parametrize("source", ["simulator", "equity-ticks", "binance", "binance-replay"])
def test_live_workers_compute_on_the_market_the_pipeline_trained_on(source):
    """The live workers' features (and gates) are the run configuration on the tick source's
    market, as the pipeline reads it (``RunConfig.for_source``): same feature digest, so the
    scorer accepts the champion; Binance without a market section is 24/7 UTC in both."""
    from live.__main__ import _decision_config, _feature_config
    from tickml.config import RunConfig

    kind = "binance" if source.startswith("binance") else source
    trained = RunConfig().for_source(kind)
    live_fc = _feature_config(None, source)
    assert live_fc.value_digest() == trained.features.value_digest()
    assert _decision_config(None, source).market == trained.market
    if kind == "binance":
        assert live_fc.market.tz == "UTC" and not live_fc.market.has_session
