"""Training, SHAP selection and the experiment runner (tickml.models)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _sim_data import PANEL_FEATURES, panel_dataset, sim_dataset
from scipy import stats

from tickml.evaluation.splits import WalkForwardConfig, walk_forward_splits
from tickml.features import FeatureConfig
from tickml.labels import CLASSES_3, CLASSES_5
from tickml.models import (
    ExperimentConfig,
    SelectionConfig,
    TrainConfig,
    predict_proba,
    run_experiment,
    train_model,
)
from tickml.models.selection import (
    FoldImportance,
    aggregate_importance,
    fold_importance,
    shap_importance,
)

UDF = ("UP", "DOWN", "FLAT")
FAST = TrainConfig(num_threads=1, n_estimators=200, min_child_samples=20)


def planted(n: int, seed: int = 0, nan_share: float = 0.05) -> tuple[pd.DataFrame, np.ndarray]:
    """x0 drives the label (UP / DOWN / FLAT by thresholds on x0 + noise); x1..x5 are noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6))
    z = x[:, 0] + 0.5 * rng.standard_normal(n)
    y = np.where(z > 0.6, "UP", np.where(z < -0.6, "DOWN", "FLAT")).astype(object)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(6)])
    holes = rng.random(frame.shape) < nan_share
    holes[:, 0] = False
    frame = frame.mask(holes)
    return frame, y


# -- training ------------------------------------------------------------------------------------


@pytest.mark.unit
def test_planted_signal_is_learned() -> None:
    x, y = planted(6000, seed=1)
    xt, yt, xv, yv = x[:4000], y[:4000], x[4000:5000], y[4000:5000]
    model = train_model(xt, yt, xv, yv, UDF, FAST)
    xs, ys = planted(3000, seed=2)
    p = predict_proba(model, xs)
    assert p.shape == (3000, 3)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    acc = np.mean(np.asarray(UDF, dtype=object)[p.argmax(axis=1)] == ys)
    assert acc > 0.7  # chance (majority class) is about 0.5
    score = p[:, 0] - p[:, 1]
    assert np.corrcoef(score, xs["x0"])[0, 1] > 0.8
    # the informative feature carries the model
    imp = model.booster.feature_importance("gain")
    assert model.features[int(np.argmax(imp))] == "x0"


@pytest.mark.unit
def test_class_order_is_respected() -> None:
    x, y = planted(4000, seed=3)
    xs, _ = planted(2000, seed=4)
    orders = [("UP", "DOWN", "FLAT"), ("FLAT", "UP", "DOWN"), ("DOWN", "FLAT", "UP")]
    probs = {}
    for order in orders:
        model = train_model(x[:3000], y[:3000], x[3000:], y[3000:], order, FAST)
        assert model.classes == order
        p = predict_proba(model, xs)
        probs[order] = {c: p[:, j] for j, c in enumerate(order)}
        hi, lo = xs["x0"] > 1.5, xs["x0"] < -1.5
        assert probs[order]["UP"][hi].mean() > 0.6
        assert probs[order]["DOWN"][lo].mean() > 0.6
    # the same fit whatever the order (bagging draws differ): each class's probability agrees
    for c in UDF:
        for other in orders[1:]:
            assert np.corrcoef(probs[orders[0]][c], probs[other][c])[0, 1] > 0.97
            assert np.abs(probs[orders[0]][c] - probs[other][c]).mean() < 0.03
    with pytest.raises(ValueError, match="not in classes"):
        train_model(x, y, None, None, ("UP", "DOWN"), FAST)


@pytest.mark.unit
def test_early_stopping_truncates_to_best_iteration() -> None:
    rng = np.random.default_rng(5)
    x = pd.DataFrame(rng.standard_normal((3000, 5)), columns=list("abcde"))
    y = rng.choice(np.array(UDF, dtype=object), size=3000)  # pure noise: overfits at once
    cfg = TrainConfig(
        num_threads=1,
        n_estimators=500,
        early_stopping_rounds=10,
        min_child_samples=5,
        learning_rate=0.2,
    )
    model = train_model(x[:2000], y[:2000], x[2000:], y[2000:], UDF, cfg)
    assert model.info["early_stopped"]
    assert model.best_iteration < 100
    assert model.booster.current_iteration() == model.best_iteration
    assert model.info["val_multi_logloss_weighted"] is not None
    # without a validation slice every round is trained
    small = cfg.model_copy(update={"n_estimators": 25})
    full = train_model(x, y, None, None, UDF, small)
    assert full.best_iteration == 25 and not full.info["early_stopped"]


@pytest.mark.unit
def test_training_is_deterministic() -> None:
    x, y = planted(1500, seed=6)
    cfg = TrainConfig(num_threads=2, n_estimators=25, min_child_samples=20)  # default threads
    a = train_model(x[:1000], y[:1000], x[1000:], y[1000:], UDF, cfg)
    b = train_model(x[:1000], y[:1000], x[1000:], y[1000:], UDF, cfg)
    assert a.booster.model_to_string() == b.booster.model_to_string()
    assert np.array_equal(predict_proba(a, x), predict_proba(b, x))
    c = train_model(x[:1000], y[:1000], x[1000:], y[1000:], UDF, cfg.model_copy(update={"seed": 9}))
    assert c.booster.model_to_string() != a.booster.model_to_string()


@pytest.mark.unit
def test_missing_labels_dropped_and_nan_features_kept() -> None:
    x, y = planted(3000, seed=7, nan_share=0.2)
    y = y.copy()
    y[::7] = None
    y[3::11] = np.nan
    labelled = int(pd.notna(y[:2000]).sum())
    model = train_model(x[:2000], y[:2000], x[2000:], y[2000:], UDF, FAST)
    assert model.info["n_train"] == labelled
    assert np.isfinite(predict_proba(model, x)).all()


@pytest.mark.unit
def test_prior_correction_calibrates_balanced_model() -> None:
    rng = np.random.default_rng(8)
    n = 6000
    x = pd.DataFrame(rng.standard_normal((n, 4)), columns=list("abcd"))
    y = rng.choice(np.array(UDF, dtype=object), size=n, p=[0.1, 0.2, 0.7])  # no signal
    base = TrainConfig(num_threads=1, n_estimators=40, min_child_samples=200)
    corrected = train_model(x[:4000], y[:4000], x[4000:], y[4000:], UDF, base)
    raw = train_model(
        x[:4000],
        y[:4000],
        x[4000:],
        y[4000:],
        UDF,
        base.model_copy(update={"prior_correction": False}),
    )
    pc = predict_proba(corrected, x[4000:]).mean(axis=0)
    pr = predict_proba(raw, x[4000:]).mean(axis=0)
    np.testing.assert_allclose(pc, [0.1, 0.2, 0.7], atol=0.04)  # the real class mix
    np.testing.assert_allclose(pr, [1 / 3] * 3, atol=0.06)  # the balanced prior
    assert corrected.logit_offset is not None and raw.logit_offset is None
    # the correction is exactly a shift of the raw scores
    z = raw.booster.predict(x[4000:].to_numpy(), raw_score=True) + corrected.logit_offset
    e = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(predict_proba(corrected, x[4000:]), e / e.sum(1, keepdims=True))


@pytest.mark.unit
def test_predict_proba_takes_dataframe_columns_by_name() -> None:
    x, y = planted(2000, seed=9)
    model = train_model(x[:1500], y[:1500], x[1500:], y[1500:], UDF, FAST)
    shuffled = x[["x3", "x0", "x5", "x1", "x4", "x2"]].assign(extra=1.0)
    np.testing.assert_array_equal(predict_proba(model, shuffled), predict_proba(model, x))
    with pytest.raises(ValueError, match="missing"):
        predict_proba(model, x.drop(columns=["x2"]))
    with pytest.raises(ValueError, match="expected"):
        predict_proba(model, x.to_numpy()[:, :4])


@pytest.mark.unit
def test_optuna_search_is_bounded_and_needs_a_validation_slice() -> None:
    x, y = planted(2500, seed=10)
    cfg = TrainConfig(num_threads=1, n_estimators=50, optuna_trials=3, optuna_max_leaves=8)
    model = train_model(x[:2000], y[:2000], x[2000:], y[2000:], UDF, cfg)
    assert model.info["optuna"]["n_trials"] == 3
    assert 4 <= model.params["num_leaves"] <= 8
    with pytest.raises(ValueError, match="validation slice"):
        train_model(x, y, None, None, UDF, cfg)


# -- selection -----------------------------------------------------------------------------------


LABELS = {"short": ("label_short", CLASSES_5), "long": ("label_long", CLASSES_3)}


@pytest.mark.unit
def test_planted_feature_ranks_first_with_stable_folds() -> None:
    ds = panel_dataset()
    folds = walk_forward_splits(ds, WalkForwardConfig(mode="blocked"))
    tuned = FAST.model_copy(update={"optuna_trials": 20})  # ignored by the first pass
    imps = [
        fold_importance(ds, f, PANEL_FEATURES, LABELS, tuned, SelectionConfig(shap_sample=500))
        for f in folds
    ]
    assert not any(i.models_info[m]["optuna"] for i in imps for m in ("short", "long"))
    sel = aggregate_importance(imps, top_k=3)
    assert sel.features[0] == "sig"
    assert len(sel.features) == 3
    row = sel.table.iloc[0]
    assert row["feature"] == "sig" and row["rank"] == 1 and bool(row["selected"])
    assert row["top_k_share"] == 1.0
    assert row["mean_importance"] > 3 * sel.table["mean_importance"].iloc[1]
    assert sel.table["selected"].sum() == 3
    assert sel.n_folds == len(folds) == 4
    assert sel.fold_spearman_mean is not None and -1 <= sel.fold_spearman_mean <= 1
    # both models contributed; each normalised share sums to 1 per fold, so the total is 2
    for imp in imps:
        assert set(imp.per_model) == {"short", "long"}
        assert imp.importance.sum() == pytest.approx(2.0)
    json.dumps(sel.to_dict(), allow_nan=False)


@pytest.mark.unit
def test_selection_ignores_the_test_fold() -> None:
    ds = panel_dataset(seed=12)
    folds = walk_forward_splits(ds, WalkForwardConfig(mode="blocked"))
    fold = folds[1]
    cfg = SelectionConfig(shap_sample=400)
    before = fold_importance(ds, fold, PANEL_FEATURES, LABELS, FAST, cfg)
    changed = ds.copy()
    rng = np.random.default_rng(99)
    test = fold.test
    for c in PANEL_FEATURES:  # scramble every test-row feature and flip every test label
        changed.loc[changed.index[test], c] = rng.standard_normal(test.size) * 10
    changed.loc[changed.index[test], "label_short"] = rng.choice(list(CLASSES_5), test.size)
    changed.loc[changed.index[test], "label_long"] = rng.choice(list(CLASSES_3), test.size)
    after = fold_importance(changed, fold, PANEL_FEATURES, LABELS, FAST, cfg)
    pd.testing.assert_series_equal(before.importance, after.importance, check_exact=True)
    assert before.top(4) == after.top(4)
    # and the check is able to fail: the same change on training rows moves the importances
    moved = ds.copy()
    tr = fold.train[: fold.train.size // 2]
    moved.loc[moved.index[tr], "sig"] = rng.standard_normal(tr.size)
    shifted = fold_importance(moved, fold, PANEL_FEATURES, LABELS, FAST, cfg)
    assert not np.allclose(shifted.importance, before.importance)


@pytest.mark.unit
def test_aggregate_importance_arithmetic() -> None:
    def fi(k: int, values: dict[str, float]) -> FoldImportance:
        s = pd.Series(values, dtype=float)
        return FoldImportance(k, s, {"short": s}, {})

    folds = [
        fi(0, {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.0, "e": 0.0}),
        fi(1, {"a": 1.0, "b": 2.0, "c": 3.0, "d": 0.0, "e": 0.0}),
    ]
    sel = aggregate_importance(folds, top_k=4)
    t = sel.table.set_index("feature")
    # a, b, c tie at mean 2: broken by name; d and e never mattered and are not selected
    assert sel.features == ["a", "b", "c"]
    assert t.loc["a", "mean_importance"] == 2.0
    assert t.loc["a", "std_importance"] == pytest.approx(np.sqrt(2.0))
    assert t.loc["b", "std_importance"] == 0.0
    assert t.loc["a", "top_k_share"] == 1.0 and t.loc["d", "top_k_share"] == 0.0
    expect = stats.spearmanr([3, 2, 1, 0, 0], [1, 2, 3, 0, 0]).statistic
    assert sel.fold_spearman_mean == pytest.approx(expect)
    same = aggregate_importance([folds[0], fi(1, dict(folds[0].importance))], top_k=2)
    assert same.fold_spearman_mean == pytest.approx(1.0)
    assert same.features == ["a", "b"]


@pytest.mark.unit
def test_shap_importance_matches_lightgbm_contributions() -> None:
    x, y = planted(2000, seed=13)
    model = train_model(x[:1500], y[:1500], x[1500:], y[1500:], UDF, FAST)
    imp = shap_importance(model, x, sample=10_000)
    contrib = model.booster.predict(x.to_numpy(), pred_contrib=True).reshape(len(x), 3, 7)
    expect = np.abs(contrib[:, :, :6]).mean(axis=0).sum(axis=0)
    np.testing.assert_allclose(imp.to_numpy(), expect, rtol=1e-6, atol=1e-9)
    assert list(imp.index) == list(model.features)


# -- the experiment runner ---------------------------------------------------------------------

SMALL_FEATURES = FeatureConfig(
    families=("price", "order_flow", "microstructure", "session"), leader=None
)


@pytest.fixture(scope="module")
def small_sim() -> tuple[pd.DataFrame, list[str]]:
    return sim_dataset(3, 4, 1.0, feature_config=SMALL_FEATURES, leader_beta=0.0)


def small_config(**kw: object) -> ExperimentConfig:
    base: dict[str, object] = {
        "short_horizon": "5min",
        "long_horizon": "10min",
        "walk_forward": WalkForwardConfig(mode="blocked"),
        "train": TrainConfig(num_threads=1, n_estimators=60, min_child_samples=50),
        "selection": SelectionConfig(top_k=12, shap_sample=300),
        "n_boot": 100,
    }
    base.update(kw)
    return ExperimentConfig.model_validate(base)


@pytest.mark.slow
def test_run_experiment_shape_and_bookkeeping(small_sim: tuple[pd.DataFrame, list[str]]) -> None:
    ds, feats = small_sim
    calls: list[tuple[str, int, int]] = []
    res = run_experiment(
        ds, feats, small_config(), progress=lambda s, a, b: calls.append((s, a, b))
    )
    out = res.to_dict()
    text = json.dumps(out, allow_nan=False)
    assert len(text) < 5_000_000
    assert [c[1] for c in calls] == list(range(1, len(res.folds) + 4))
    assert [m["name"] for m in out["models"]] == ["short", "long", "direction", "ensemble"]
    assert {b["name"] for b in out["baselines"]} == {
        "logistic_short",
        "logistic_long",
        "momentum_short",
        "momentum_long",
        "microprice_short",
        "imbalance_short",
    }
    assert out["decision_model"] == "direction"
    scores = [m for m in out["models"] + out["baselines"] if not m["classes"]]
    assert {m["name"] for m in scores} == {
        "direction",
        "ensemble",
        "microprice_short",
        "imbalance_short",
    }
    short_rows = res.model("short")["oos"]["n"]
    for m in scores:  # score models and rules: the short model's rows, no probabilities
        assert m["horizon"] == "5m" and m["oos"]["n"] == short_rows
        assert "log_loss" not in m["oos"] and m["oos"]["n_days"] == 3
        assert m["oos"]["ic_ci95"] is not None and m["oos"]["directional_accuracy"] is not None
        assert len(m["per_fold"]) == len(res.folds)
        assert all(f"ic_{m['name']}" in row for row in out["ic_by_fold"])
    assert len(res.model("direction")["fold_models"]) == len(res.folds)
    # the regime ensemble: one fit per fold on its validation slice, weights per regime
    ens = res.model("ensemble")
    assert ens["served"] is False and len(ens["fold_weights"]) == len(res.folds)
    for fw in ens["fold_weights"]:
        assert [w["regime"] for w in fw["weights"]] == [0, 1, 2, "pooled"]
        assert set(fw["model"]["components"]) == {
            "short",
            "long",
            "direction",
            "microprice",
            "imbalance",
        }
        assert all(w[c] >= 0 for w in fw["weights"] for c in fw["model"]["components"])
    for m in out["models"] + out["baselines"]:
        assert m["horizon"] in ("5m", "10m")
        if not m["classes"]:
            continue
        assert m["classes"] == list(CLASSES_5 if m["model"] == "short" else CLASSES_3)
        for key in (
            "n",
            "log_loss",
            "balanced_accuracy",
            "directional_accuracy",
            "macro_f1",
            "pr_auc",
            "ic",
            "ic_ci95",
            "calibration",
        ):
            assert key in m["oos"]
        assert len(m["per_fold"]) == len(res.folds)
    bt = out["backtest"]
    for key in (
        "net_pnl",
        "sharpe",
        "max_drawdown",
        "n_trades",
        "hit_rate",
        "turnover",
        "trades_per_day",
        "equity_curve",
    ):
        assert key in bt
    assert all(len(p) == 2 for p in bt["equity_curve"])
    # the sized book beside the unit one: same decisions, its own sizing
    sized = out["backtest_sized"]
    assert sized["sizing"] == "volatility" and bt["sizing"] == "unit"
    assert sized["gate_counts"] == bt["gate_counts"] and "equity_curve" in sized
    assert out["selection"]["features"] == res.selection.features
    assert len(res.selection.features) == 12
    assert set(res.production) == {"short", "long", "direction"}
    for model in res.production.values():
        assert list(model.features) == res.selection.features
    assert res.production["direction"].is_regression
    assert len(out["folds"]) == len(out["ic_by_fold"]) == len(res.folds) == 3
    assert out["data_hash"].startswith("sha256:")
    # every labelled-or-not row is predicted exactly once (blocked mode, one group per fold)
    pred = res.predictions
    assert pred["row"].is_unique and len(pred) == len(ds)
    assert np.allclose(pred[[f"p_short_{c}" for c in CLASSES_5]].sum(axis=1), 1.0)
    # each fold's models use that fold's own selection, chosen from its training rows
    for fi, feats_k in zip(res.fold_importances, res.fold_features, strict=True):
        assert feats_k == fi.top(12)
    # the planted signal is there to be found, even in this small sample
    short = res.model("short")["oos"]
    assert short["ic"] > 0.1
    assert res.model("direction")["oos"]["ic"] > 0.1
    # the backtest frame carries the direction model's prediction (the decision score)
    pred = res.predictions.set_index("row").sort_index()
    assert np.isfinite(pred["direction"]).all()
    assert res.backtest is not None


@pytest.mark.slow
def test_direction_model_in_the_registry(
    small_sim: tuple[pd.DataFrame, list[str]], tmp_path: Path
) -> None:
    from tickml.models import ModelRegistry
    from tickml.models.experiment_reports import backtest_frame
    from tickml.models.train import predict_value

    ds, feats = small_sim
    cfg = small_config(logistic_baseline=False, baseline_backtests=False, n_boot=10)
    res = run_experiment(ds, feats, cfg)
    reg = ModelRegistry(tmp_path)
    v = reg.save(res)
    man = reg.manifest(v)
    assert set(man["models"]) == {"short", "long", "direction"}
    assert man["models"]["direction"]["classes"] == [] and man["horizons"]["direction"] == "5m"
    assert man["oos"]["decision_model"] == "direction"
    assert man["oos"]["direction"]["ic"] == res.model("direction")["oos"]["ic"]
    assert {"microprice_short", "imbalance_short"} <= set(man["oos"]["baselines"])
    assert man["models"]["direction"]["train_info"]["target"]["scale"] > 0
    loaded = reg.load(v)
    x = ds[res.selection.features]
    np.testing.assert_array_equal(
        predict_value(loaded.models["direction"], x), predict_value(res.production["direction"], x)
    )
    ordered = ds.sort_values(["event_timestamp", "symbol"], kind="stable").reset_index(drop=True)
    frame = backtest_frame(ordered, res.predictions, "p")
    by_row = res.predictions.groupby("row")["direction"].mean()
    np.testing.assert_array_equal(frame["direction"].to_numpy(), by_row.to_numpy())
    assert "direction" not in backtest_frame(ordered, res.predictions, "p_momentum").columns


@pytest.mark.slow
def test_run_experiment_fold_is_independent_of_its_test_rows(
    small_sim: tuple[pd.DataFrame, list[str]],
) -> None:
    ds, feats = small_sim
    cfg = small_config(
        production_models=False, baseline_backtests=False, logistic_baseline=False, n_boot=10
    )
    # expanding mode: fold 0 tests day 3 and trains on days 1-2
    cfg = cfg.model_copy(update={"walk_forward": WalkForwardConfig(min_train_days=2)})
    a = run_experiment(ds, feats, cfg)
    changed = ds.copy()
    ordered = changed.sort_values(["event_timestamp", "symbol"], kind="stable")
    test_idx = ordered.index[a.folds[0].test]
    rng = np.random.default_rng(1)
    for c in feats:
        changed.loc[test_idx, c] = rng.permutation(changed.loc[test_idx, c].to_numpy())
    changed.loc[test_idx, "label_short"] = rng.permutation(changed.loc[test_idx, "label_short"])
    b = run_experiment(changed, feats, cfg)
    assert a.fold_features[0] == b.fold_features[0]
    # the ensemble's weights come from the fold's validation slice, never its test rows
    wa, wb = a.model("ensemble")["fold_weights"][0], b.model("ensemble")["fold_weights"][0]
    assert wa["model"] == wb["model"]
    pd.testing.assert_series_equal(
        a.fold_importances[0].importance, b.fold_importances[0].importance, check_exact=True
    )
    # the scrambled test rows themselves are predicted differently (the change did reach
    # the experiment: the equality above is not vacuous)
    pa = a.predictions.sort_values("row")
    pb = b.predictions.sort_values("row")
    assert not np.allclose(pa["p_short_UP"].to_numpy(), pb["p_short_UP"].to_numpy())


@pytest.mark.unit
def test_run_experiment_rejects_bad_input() -> None:
    ds = panel_dataset(n_days=3)
    with pytest.raises(ValueError, match="lacks columns"):
        run_experiment(ds.drop(columns=["spread"]), PANEL_FEATURES, small_config())
    with pytest.raises(ValueError, match="duplicate"):
        run_experiment(pd.concat([ds, ds.iloc[:1]]), PANEL_FEATURES, small_config())
    with pytest.raises(ValueError, match="lacks columns"):
        run_experiment(ds, [*PANEL_FEATURES, "nope"], small_config())


@pytest.mark.unit
def test_run_experiment_rejects_a_horizon_that_does_not_match_the_labels(
    small_sim: tuple[pd.DataFrame, list[str]],
) -> None:
    ds, feats = small_sim  # labelled with 5 / 10 minute horizons
    with pytest.raises(ValueError, match="label_end_long reaches 0 days 00:10:00"):
        run_experiment(ds, feats, small_config(long_horizon="5min"))


@pytest.mark.unit
def test_experiment_config_defaults_are_documented() -> None:
    cfg = ExperimentConfig()
    assert cfg.selection.top_k == 70
    assert cfg.train.num_leaves <= 31 and cfg.train.num_threads == 2
    assert cfg.train.deterministic and cfg.train.optuna_trials == 0
    assert cfg.backtest_config().horizon == dt.timedelta(minutes=15)
    for model in (ExperimentConfig, TrainConfig, SelectionConfig):
        for name, f in model.model_fields.items():
            assert f.description, f"{model.__name__}.{name} has no description"


# -- the real equity data ----------------------------------------------------------------------


@pytest.mark.slow
def test_real_equity_days_end_to_end(equity_root: Path, tmp_path: Path) -> None:
    """Three real days (AIG, BAC, IBM, SPY): features -> labels -> experiment -> registry.

    Real data has what the simulator lacks: a trades-only symbol (SPY: no book, so no spread
    and no executable backtest rows), NaN-heavy features, uneven classes. No claim of edge."""
    from tickml.features import compute_features, feature_names
    from tickml.labels import LabelConfig, make_labels
    from tickml.models import ModelRegistry, prepare_dataset
    from tickml.readers.equity import read_equity_day

    days = [dt.date(2013, 10, d) for d in (8, 9, 10)]
    ticks = pd.concat([read_equity_day(equity_root, d).ticks for d in days], ignore_index=True)
    fcfg = FeatureConfig()
    feats = compute_features(ticks, fcfg)
    labels = make_labels(ticks, feats[["symbol", "event_timestamp"]], LabelConfig())
    ds = prepare_dataset(feats, labels)
    assert set(ds["symbol"]) == {"AIG", "BAC", "IBM", "SPY"}
    assert ds.loc[ds["symbol"] == "SPY", "spread"].isna().all()
    cfg = ExperimentConfig(train=TrainConfig(num_threads=1), n_boot=200)
    res = run_experiment(ds, feature_names(fcfg), cfg)
    out = res.to_dict()
    json.dumps(out, allow_nan=False)
    assert len(res.folds) == 1 and out["folds"][0]["test_days"] == ["2013-10-10"]
    short = res.model("short")["oos"]
    assert short["n"] > 1000 and short["log_loss"] is not None and short["ic"] is not None
    assert len(res.selection.features) == 70
    assert out["backtest"]["n_days"] == 1
    # production models trained on the real features survive the registry bit for bit
    reg = ModelRegistry(tmp_path)
    v = reg.save(res)
    loaded = reg.load(v)
    x = ds[res.selection.features]
    assert x.isna().to_numpy().any()  # real NaNs take the learned default branches
    for name in ("short", "long"):
        np.testing.assert_array_equal(
            predict_proba(loaded.models[name], x), predict_proba(res.production[name], x)
        )
    assert reg.manifest(v)["feature_service"] == "tick_features_top70_v1"
