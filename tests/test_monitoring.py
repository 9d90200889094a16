"""Nightly monitoring against a real champion: the online log reader, the champion's training
window as drift reference, its recent out-of-sample IC, and the drift sensor retraining on IC.

The market is the simulator's stationary one (regime multipliers 1, no trend) with a strong
planted signal (``signal_strength=1``): a LightGBM short model trained on three days finds it.
The champion is evaluated on a fourth day of the same market (its edge holds: IC well above 0)
and on a fifth day whose returns respond to the signal with the opposite sign (labels and
forward returns flipped: the features look the same, the edge is gone, IC below 0), and on
a day whose returns are shuffled across rows (IC about 0). A second registry holds a version
with a direction model (a LightGBM regression of the standardized forward return) beside the
short one: its recent IC is the direction model's.
"""

import datetime as dt
import json
import warnings

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tickml.evaluation.metrics import direction_score, spearman_ic
from tickml.features import FeatureConfig, compute_features, feature_names
from tickml.labels import LabelConfig, make_labels
from tickml.lake import FeatureTables, LabelTables, online_log_dir, read_online_log
from tickml.models import prepare_dataset
from tickml.models.registry import ModelRegistry
from tickml.models.train import (
    TrainConfig,
    predict_proba,
    predict_value,
    train_model,
    train_regressor,
)
from tickml.monitoring import (
    REFERENCE_CHAMPION,
    REFERENCE_PRIOR_DAYS,
    decision_model,
    recent_ic,
    recent_window,
    reference_window,
    training_cutoff,
)
from tickml.simulator import SimConfig, simulate_day

TRAIN_DAYS = [dt.date(2024, 1, 8), dt.date(2024, 1, 9), dt.date(2024, 1, 10)]
GOOD_DAY = dt.date(2024, 1, 11)
FLIPPED_DAY = dt.date(2024, 1, 12)
SIM = SimConfig(
    n_symbols=8,
    seed=11,
    signal_strength=1.0,
    regime_vol=(1.0, 1.0, 1.0),
    regime_intensity=(1.0, 1.0, 1.0),
    spread_probs_volatile=(0.7, 0.22, 0.08),
    trend_drift=0.0,
)
FCFG = FeatureConfig(leader=None)
SHORT_CLASSES = ("UP", "DOWN", "FLAT", "TRAP_UP", "TRAP_DOWN")
FLIP = {"UP": "DOWN", "DOWN": "UP", "TRAP_UP": "TRAP_DOWN", "TRAP_DOWN": "TRAP_UP"}


def _day(day: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    ticks = simulate_day(SIM, day).ticks
    feats = compute_features(ticks, FCFG)
    feats["row_event_ns"] = feats["event_timestamp"].astype("int64")
    feats["last_tick_ns"] = feats["last_tick_ts"].astype("int64")
    labels = make_labels(
        ticks,
        feats[["symbol", "event_timestamp"]],
        LabelConfig(short_horizon="5min", long_horizon="10min"),
    )
    return feats, labels


def flipped(labels: pd.DataFrame) -> pd.DataFrame:
    """The market's response to the signal flips sign: returns negated, UP <-> DOWN."""
    out = labels.copy()
    out["fwd_return_short"] = -out["fwd_return_short"]
    out["label_short"] = out["label_short"].map(lambda v: FLIP.get(v, v))
    return out


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """A lake with five days of features and labels and a registry whose champion was trained
    on the first three (its manifest's training_window says so)."""
    work = tmp_path_factory.mktemp("monitoring")
    lake = work / "lake"
    frames = {d: _day(d) for d in [*TRAIN_DAYS, GOOD_DAY, FLIPPED_DAY]}
    for d, (feats, labels) in frames.items():
        FeatureTables(lake).write_day(feats, d)
        LabelTables(lake).write_day(flipped(labels) if d == FLIPPED_DAY else labels, d)
    ds = prepare_dataset(
        pd.concat([frames[d][0] for d in TRAIN_DAYS], ignore_index=True),
        pd.concat([frames[d][1] for d in TRAIN_DAYS], ignore_index=True),
    )
    names = [n for n in feature_names(FCFG) if ds[n].notna().any()]
    val = ds["event_timestamp"] >= pd.Timestamp("2024-01-10 18:00", tz="UTC")
    model = train_model(
        ds.loc[~val, names],
        ds.loc[~val, "label_short"],
        ds.loc[val, names],
        ds.loc[val, "label_short"],
        SHORT_CLASSES,
        TrainConfig(n_estimators=150),
        names,
    )
    window = {
        "start": ds["event_timestamp"].min().isoformat(),
        "end": ds["event_timestamp"].max().isoformat(),
        "label_end_max": ds["label_end"].max().isoformat(),
        "days": [d.isoformat() for d in TRAIN_DAYS],
    }
    reg = ModelRegistry(work / "models")
    version = reg.save({"short": model}, metadata={"training_window": window})
    reg.set_champion(version)
    return {
        "work": work,
        "lake": lake,
        "frames": frames,
        "registry": reg,
        "version": version,
        "dataset": ds,
        "names": names,
        "validation": val,
        "window": window,
    }


@pytest.fixture(scope="module")
def direction_champion(market):
    """A second registry whose champion has a direction model (a LightGBM regression of the
    forward return over its training-window standard deviation) beside the market champion's
    short model, and no ``oos.decision_model`` in its manifest."""
    ds, names, val = market["dataset"], market["names"], market["validation"]
    target = ds["fwd_return_short"] / ds.loc[~val, "fwd_return_short"].std()
    direction = train_regressor(
        ds.loc[~val, names],
        target[~val],
        ds.loc[val, names],
        target[val],
        TrainConfig(n_estimators=100),
        names,
    )
    short = market["registry"].load(market["version"]).short
    reg = ModelRegistry(market["work"] / "models_direction")
    window = {"training_window": market["window"]}
    version = reg.save({"short": short, "direction": direction}, metadata=window)
    reg.set_champion(version)
    return reg, version


def write_online_log(lake, day: dt.date, feats: pd.DataFrame, shards: int = 2) -> int:
    """The live materializer's layout: date=D/shard=S/<boundary_ns>.parquet, one file per
    boundary and shard, every feature as float64 in feature_names order; returns the files."""
    names = feature_names(FCFG)
    frame = pd.concat(
        [
            feats[["symbol", "event_timestamp"]],
            feats[names].astype(np.float64),
            feats[["last_tick_ts"]],
        ],
        axis=1,
    )
    frame["logged_at"] = frame["event_timestamp"] + pd.Timedelta(milliseconds=5)
    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    shard_of = {sym: i % shards for i, sym in enumerate(sorted(feats["symbol"].unique()))}
    key = (
        frame["symbol"].map(shard_of).astype(str)
        + "/"
        + frame["event_timestamp"].astype("int64").astype(str)
    )
    n = 0
    for k, idx in frame.reset_index(drop=True).groupby(key.to_numpy()).indices.items():
        shard, boundary = k.split("/")
        folder = online_log_dir(lake, day) / f"shard={shard}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.take(pa.array(idx)), folder / f"{boundary}.parquet")
        n += 1
    return n


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ------------------------------------------------------------------ pure functions


@pytest.mark.unit
def test_read_online_log_real_parquet_folder(tmp_path, market):
    feats = market["frames"][GOOD_DAY][0]
    assert read_online_log(tmp_path, GOOD_DAY).empty  # no log: empty
    feats = feats[feats["event_timestamp"] < feats["event_timestamp"].min() + pd.Timedelta("30min")]
    assert write_online_log(tmp_path, GOOD_DAY, feats) == 2 * 30  # two shards, 30 boundaries
    folder = online_log_dir(tmp_path, GOOD_DAY)
    # a file half-written by a crashed writer is never read; a replayed boundary rewritten
    # into another file keeps only its latest logging
    (folder / "shard=0" / "123.tmp").write_bytes(b"garbage")
    first = pq.read_table(next((folder / "shard=1").glob("*.parquet"))).to_pandas()
    replay = first.copy()
    replay["ret_t20"] = 42.0
    replay["logged_at"] = replay["logged_at"] + pd.Timedelta(minutes=1)
    pq.write_table(
        pa.Table.from_pandas(replay, preserve_index=False), folder / "shard=1" / "replay.parquet"
    )
    log = read_online_log(tmp_path, GOOD_DAY)
    assert len(log) == len(feats) and not log.duplicated(["symbol", "event_timestamp"]).any()
    assert str(log["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert log["event_timestamp"].is_monotonic_increasing
    replayed = log.merge(first[["symbol", "event_timestamp"]], on=["symbol", "event_timestamp"])
    assert (replayed["ret_t20"] == 42.0).all() and len(replayed) == len(first)
    # every other row carries exactly the batch values
    want = feats.set_index(["symbol", "event_timestamp"]).sort_index()
    got = log.set_index(["symbol", "event_timestamp"]).sort_index()
    names = [n for n in feature_names(FCFG) if n != "ret_t20"]
    np.testing.assert_array_equal(got[names].to_numpy(), want[names].to_numpy())
    frame, source = recent_window(tmp_path, GOOD_DAY)
    assert source == "online_log" and len(frame) == len(feats)


@pytest.mark.unit
def test_reference_is_the_champions_training_window_sampled_and_seeded(market):
    reg, lake = market["registry"], market["lake"]
    manifest = reg.manifest(market["version"])
    ref = reference_window(lake, GOOD_DAY, manifest, max_rows=3000, seed=1)
    assert ref.kind == REFERENCE_CHAMPION and ref.champion == market["version"]
    assert ref.days == TRAIN_DAYS
    assert len(ref.frame) == 3000  # bounded: each of the three days gives 1000 rows
    local = ref.frame["event_timestamp"].dt.tz_convert("America/New_York").dt.date
    assert local.value_counts().to_dict() == {d: 1000 for d in TRAIN_DAYS}
    again = reference_window(lake, GOOD_DAY, manifest, max_rows=3000, seed=1)
    pd.testing.assert_frame_equal(ref.frame, again.frame)
    other = reference_window(lake, GOOD_DAY, manifest, max_rows=3000, seed=2)
    assert not ref.frame["event_timestamp"].equals(other.frame["event_timestamp"])
    # the flipped day (after the window) is compared with the same three days, not the days
    # just before it
    assert reference_window(lake, FLIPPED_DAY, manifest).days == TRAIN_DAYS
    # no champion: the N feature-table days before the partition; none: no reference yet
    prior = reference_window(lake, FLIPPED_DAY, None, prior_days=2)
    assert prior.kind == REFERENCE_PRIOR_DAYS and prior.days == [TRAIN_DAYS[2], GOOD_DAY]
    first = reference_window(lake, TRAIN_DAYS[0], None)
    assert first.kind is None and first.frame.empty and "no reference yet" in first.note


@pytest.mark.unit
def test_champion_recent_ic_good_flipped_shuffled_and_in_sample(market):
    champ = market["registry"].load()
    feats, labels = market["frames"][GOOD_DAY]
    good = recent_ic(champ.short, champ.manifest, feats, labels)
    assert good["n_out_of_sample"] == good["n_labelled"] > 2000
    assert good["n_in_training_window"] == 0
    assert good["ic"] > 0.1, good
    flip = recent_ic(champ.short, champ.manifest, feats, flipped(labels))
    assert flip["ic"] == pytest.approx(-good["ic"])
    shuffled = labels.copy()
    shuffled["fwd_return_short"] = np.random.default_rng(0).permutation(
        shuffled["fwd_return_short"].to_numpy()
    )
    noise = recent_ic(champ.short, champ.manifest, feats, shuffled)["ic"]
    assert abs(noise) < 0.05 and noise < good["ic"] - 0.1
    # on its own training day every row is in the window: no out-of-sample IC
    tr_feats, tr_labels = market["frames"][TRAIN_DAYS[1]]
    inside = recent_ic(champ.short, champ.manifest, tr_feats, tr_labels)
    assert inside["ic"] is None and inside["n_out_of_sample"] == 0
    assert inside["n_in_training_window"] == inside["n_labelled"] > 2000
    assert training_cutoff(champ.manifest) > tr_feats["event_timestamp"].max()


def _oos_ic(scores: np.ndarray, feats: pd.DataFrame, labels: pd.DataFrame) -> float | None:
    """IC of per-row scores of ``feats`` with the day's forward returns, computed here."""
    frame = feats[["symbol", "event_timestamp"]].assign(score=scores)
    merged = frame.merge(labels[["symbol", "event_timestamp", "fwd_return_short"]])
    merged = merged[np.isfinite(merged["fwd_return_short"])]
    return spearman_ic(merged["score"], merged["fwd_return_short"])


@pytest.mark.unit
def test_recent_ic_scores_the_decision_model(market, direction_champion):
    feats, labels = market["frames"][GOOD_DAY]
    # a version with a direction model: its prediction is the score
    reg, version = direction_champion
    champ = reg.load(version)
    chosen = decision_model(champ)
    assert chosen.name == "direction" and chosen.model is champ.direction
    assert chosen.label == f"champion {version} direction model, prediction"
    got = recent_ic(chosen.model, champ.manifest, feats, labels)
    want = _oos_ic(predict_value(champ.direction, feats), feats, labels)
    assert got["ic"] == pytest.approx(want, abs=1e-12) and got["ic"] > 0.1, got
    assert got["score_mean"] == pytest.approx(np.nanmean(predict_value(champ.direction, feats)))
    short_ic = recent_ic(champ.short, champ.manifest, feats, labels)["ic"]
    assert abs(got["ic"] - short_ic) > 1e-6  # another model's score, not the short one's
    flip = recent_ic(chosen.model, champ.manifest, feats, flipped(labels))
    assert flip["ic"] == pytest.approx(-got["ic"])
    # one rule (RegisteredModels.decision_model): the registry refuses a manifest that names
    # another decision model than the version's models make it, so monitoring never sees one
    assert champ.decision_model == chosen.name
    with pytest.raises(ValueError, match="make the decision model 'direction'"):
        reg.save(
            {"short": champ.short, "direction": champ.direction},
            metadata={"training_window": market["window"], "oos": {"decision_model": "short"}},
        )
    with pytest.raises(ValueError, match="make the decision model 'short'"):
        reg.save(
            {"short": champ.short},
            metadata={"training_window": market["window"], "oos": {"decision_model": "direction"}},
        )
    # two classifiers (no direction model): the short model's P(UP) - P(DOWN), as before
    two = market["registry"].load(market["version"])
    plain = decision_model(two)
    assert plain.name == "short" and plain.model is two.short
    assert plain.label == f"champion {market['version']} short model, P(UP)-P(DOWN)"
    score = direction_score(predict_proba(two.short, feats), two.short.classes)
    ic = recent_ic(plain.model, two.manifest, feats, labels)["ic"]
    assert ic == pytest.approx(_oos_ic(np.asarray(score), feats, labels), abs=1e-12)


@pytest.mark.integration
def test_champion_evaluation_names_and_scores_the_direction_model(
    market, direction_champion, tmp_path
):
    """The asset scores the champion's direction model and says so; the drift report's note
    (what the drift sensor's IC threshold reads) names it too."""
    from assets.champion import champion_evaluation
    from assets.drift import champion_recent_ic
    from assets.resources import LakeResource, ModelRegistryResource

    feats, labels = market["frames"][GOOD_DAY]
    lake = tmp_path / "lake"
    FeatureTables(lake).write_day(feats, GOOD_DAY)
    LabelTables(lake).write_day(labels, GOOD_DAY)
    reg, version = direction_champion
    res = dg.materialize(
        [champion_evaluation],
        partition_key=GOOD_DAY.isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
        resources={
            "lake": LakeResource(root=str(lake)),
            "registry": ModelRegistryResource(root=str(reg.root)),
        },
    )
    assert res.success
    md = {k: v.value for k, v in res.asset_materializations_for_node("champion_evaluation")[0]
          .metadata.items()}  # fmt: skip
    champ = reg.load(version)
    want = recent_ic(champ.direction, champ.manifest, feats, labels)["ic"]
    assert md["model"] == "direction" and md["ic"] == pytest.approx(want)
    assert md["scored_by"] == f"champion {version} direction model, prediction"
    layout = LakeResource(root=str(lake)).layout
    ic, note = champion_recent_ic(layout, GOOD_DAY, version, min_rows=200)
    assert ic == pytest.approx(want)
    assert note.startswith(f"champion {version} direction model, prediction: IC over ")


# ------------------------------------------------------------------ assets + sensor


@pytest.mark.slow
@pytest.mark.integration
def test_drift_sensor_retrains_on_a_degraded_champion_not_a_good_one(market, tmp_path):
    from assets.champion import champion_evaluation
    from assets.drift import drift_report
    from assets.resources import (
        LakeResource,
        ModelRegistryResource,
        PipelineConfigResource,
    )
    from orchestration.sensors import make_drift_sensor

    lake = market["lake"]
    write_online_log(lake, GOOD_DAY, market["frames"][GOOD_DAY][0])  # as pushed online
    instance = dg.DagsterInstance.local_temp(str(tmp_path))
    resources = {
        "lake": LakeResource(root=str(lake)),
        "pipeline": PipelineConfigResource(),
        "registry": ModelRegistryResource(root=str(market["work"] / "models")),
    }
    run_config = {
        "ops": {
            "drift_report": {
                "config": {"evidently_max_columns": 40, "evidently_max_rows": 2000, "min_ic": 0.0}
            }
        }
    }
    sensor = make_drift_sensor(cooldown_s=0)

    def nightly(day: dt.date) -> tuple[dict, dict]:
        res = dg.materialize(
            [champion_evaluation, drift_report],
            partition_key=day.isoformat(),
            instance=instance,
            resources=resources,
            run_config=run_config,
        )
        assert res.success
        ev = res.asset_materializations_for_node("champion_evaluation")[0].metadata
        md = res.asset_materializations_for_node("drift_report")[0].metadata
        return {k: v.value for k, v in ev.items()}, {k: v.value for k, v in md.items()}

    ev, md = nightly(GOOD_DAY)
    assert ev["champion"] == market["version"] and ev["recent_source"] == "online_log"
    assert ev["ic"] > 0.1
    assert md["reference"] == REFERENCE_CHAMPION and md["recent_source"] == "online_log"
    assert md["reference_days"] == [d.isoformat() for d in TRAIN_DAYS]
    assert md["recent_ic"] == pytest.approx(ev["ic"])
    assert md["retrain"] is False, md["reasons"]
    summary = json.loads(open(md["summary_path"]).read())
    assert summary["current_predictions"]["n"] == len(market["frames"][GOOD_DAY][0])
    assert summary["reference_predictions"]["n"] == summary["n_reference"]
    data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert not data.run_requests
    cursor = data.cursor

    ev, md = nightly(FLIPPED_DAY)
    assert ev["recent_source"] == "batch" and ev["ic"] < -0.1
    assert md["recent_source"] == "batch" and md["reference"] == REFERENCE_CHAMPION
    # the features did not drift (same market): the IC alone asks for the retrain
    assert md["adversarial_auc"] < 0.7 and md["drifted_share"] <= 0.5
    assert md["retrain"] is True and md["reasons"].startswith("recent IC -0.")
    assert ";" not in md["reasons"]
    data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
    [req] = data.run_requests
    assert req.run_key == f"drift-{FLIPPED_DAY}"
    assert float(req.tags["tickml/recent_ic"]) == pytest.approx(ev["ic"])
