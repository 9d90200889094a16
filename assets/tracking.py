"""What a training run records in MLflow (the ``MlflowResource`` calls these).

One MLflow run per ``model_experiment`` materialization (``tickml run`` included), named after
the registry version it produced, in one experiment (default ``tickml``), so retrains line up
in MLflow's comparison views:

* params: the experiment config flattened (``walk_forward.n_folds``, ``train.num_leaves``...),
  the horizons, the sampling interval, rows and features in, the data hash;
* metrics: pooled out-of-sample metrics of both models and every baseline
  (``oos.short.ic``, ``oos.momentum_short.log_loss``...), per-fold metrics as steps
  (``fold.short.ic`` at step = fold), the IC 95% interval ends, the backtest figures
  (``backtest.net_pnl``...), the SHAP selection's fold agreement, stage timings;
* the SHAP selection table (``selection/shap_selection.json`` as an MLflow table), the
  reports (``report/evaluation.html``, ``evaluation.json``, the plot PNGs);
* tags: ``tickml.version``, ``tickml.feature_service``, ``tickml.data_hash``,
  ``tickml.git_commit``, ``tickml.promotion`` (passed | refused, with the reasons) and
  ``tickml.champion`` (true once ``champion_model`` promoted it; the replaced champion's run
  gets false and ``tickml.replaced_by``). The experiment's tags ``tickml.champion_version`` /
  ``tickml.champion_run_id`` point at the current champion.

The project's registry stays the serving source of truth; its manifest records the run id.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

_MAX_PARAM = 500  # MLflow accepts 6,000 characters; long lists are summarized as JSON


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Dotted leaves of nested dicts (lists stay leaves)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, value


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def params_of(tree: Mapping[str, Any]) -> dict[str, str]:
    """Flattened parameters as MLflow strings (long values cut)."""
    out: dict[str, str] = {}
    for k, v in flatten(tree):
        text = v if isinstance(v, str) else json.dumps(v, default=str)
        out[k] = text if len(text) <= _MAX_PARAM else text[: _MAX_PARAM - 3] + "..."
    return out


def metrics_of(res: Mapping[str, Any]) -> list[tuple[str, float, int]]:
    """(key, value, step) of every metric of a result (module docstring)."""
    rows: list[tuple[str, float, int]] = []

    def add(key: str, value: Any, step: int = 0) -> None:
        f = _num(value)
        if f is not None:
            rows.append((key, f, step))

    for entry in [*(res.get("models") or []), *(res.get("baselines") or [])]:
        name = entry.get("name")
        oos = entry.get("oos") or {}
        for k, v in flatten({k: v for k, v in oos.items() if k != "calibration"}):
            add(f"oos.{name}.{k}", v)
        cal = oos.get("calibration") or {}
        add(f"oos.{name}.ece", cal.get("ece"))
        add(f"oos.{name}.brier", cal.get("brier"))
        ci = oos.get("ic_ci95") or [None, None]
        add(f"oos.{name}.ic_ci95_low", ci[0])
        add(f"oos.{name}.ic_ci95_high", ci[1])
        for fold in entry.get("per_fold") or []:
            step = int(fold.get("fold", 0))
            for k in ("ic", "log_loss", "balanced_accuracy", "directional_accuracy", "n", "ece"):
                add(f"fold.{name}.{k}", fold.get(k), step)
    for k, v in (res.get("backtest") or {}).items():
        add(f"backtest.{k}", v)
    sel = res.get("selection") or {}
    add("selection.fold_spearman_mean", sel.get("fold_spearman_mean"))
    add("selection.n_features", len(sel.get("features") or []))
    for k, v in (res.get("timings") or {}).items():
        add(f"timing.{k}_s", v)
    add("data.n_rows", res.get("n_rows"))
    return rows


def log_training(
    client: Any,
    run_id: str,
    version: str,
    res: Mapping[str, Any],
    params_tree: Mapping[str, Any],
    report_paths: Mapping[str, Path],
    promotion: tuple[bool, list[str]],
    tags: Mapping[str, str],
) -> None:
    """Everything of one training run into ``run_id`` (module docstring); the run is named
    after the registry ``version``."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    client.update_run(run_id, name=version)
    params = [Param(k, v) for k, v in params_of(params_tree).items()]
    for i in range(0, len(params), 100):  # MLflow: at most 100 params per batch
        client.log_batch(run_id, params=params[i : i + 100])
    metrics = [Metric(k, v, now, s) for k, v, s in metrics_of(res)]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[i : i + 1000])
    table = (res.get("selection") or {}).get("table") or []
    if table:
        import pandas as pd

        client.log_table(run_id, pd.DataFrame(table), "selection/shap_selection.json")
    for path in report_paths.values():
        client.log_artifact(run_id, str(path), "report")
    ok, reasons = promotion
    client.log_batch(
        run_id,
        tags=[
            *(RunTag(k, str(v)) for k, v in tags.items()),
            RunTag("tickml.version", version),
            RunTag("tickml.champion", "false"),
            RunTag("tickml.promotion", "passed" if ok else "refused"),
            RunTag("tickml.promotion_reasons", "; ".join(reasons)[:4000]),
            RunTag("mlflow.note.content", "Promotion check: " + "; ".join(reasons)),
        ],
    )


def mark_champion(
    client: Any, experiment_id: str, run_id: str, version: str, previous_run_id: str | None
) -> None:
    """Tag ``run_id`` as the champion (and the replaced champion's run as no longer)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if previous_run_id and previous_run_id != run_id:
        client.set_tag(previous_run_id, "tickml.champion", "false")
        client.set_tag(previous_run_id, "tickml.replaced_by", version)
    client.set_tag(run_id, "tickml.champion", "true")
    client.set_tag(run_id, "tickml.promoted_at", stamp)
    client.set_experiment_tag(experiment_id, "tickml.champion_version", version)
    client.set_experiment_tag(experiment_id, "tickml.champion_run_id", run_id)
