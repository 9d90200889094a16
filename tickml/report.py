"""Evaluation reports: ``evaluation.json`` (machine-readable) and ``evaluation.html`` (plots).

Input: the dict of :meth:`tickml.models.experiment.ExperimentResult.to_dict` (``models``,
``baselines``, ``backtest``, ``selection``, ``folds``, ``ic_by_fold``...). Plots are PNG (matplotlib
Agg) embedded in the HTML and also written beside it, so the Dagster UI can link them.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRICS = ("n", "log_loss", "balanced_accuracy", "directional_accuracy", "macro_f1", "pr_auc",
           "ic", "ic_ci95", "n_ic", "n_days")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4f}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return html.escape(str(v))


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plot_equity(backtest: dict[str, Any], sized: dict[str, Any] | None = None) -> bytes | None:
    curves = [(name, (bt or {}).get("equity_curve") or [])
              for name, bt in (("unit size", backtest), ("sized", sized))]
    curves = [(name, c) for name, c in curves if c]
    if not curves:
        return None
    import pandas as pd

    fig, ax = plt.subplots(figsize=(8, 3))
    for name, curve in curves:
        ts = pd.to_datetime([c[0] for c in curve], utc=True)
        ax.plot(ts, [c[1] for c in curve], lw=1.2, label=name)
    ax.axhline(0, color="grey", lw=0.6)
    ax.legend(fontsize=8)
    ax.set_title("Backtest equity (net of costs, units of a unit position's notional)")
    fig.autofmt_xdate()
    return _png(fig)


def backtest_rows(result: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(metric, unit-size value, sized value) for every scalar backtest metric."""
    unit, sized = result.get("backtest") or {}, result.get("backtest_sized") or {}
    keys = [k for k in dict.fromkeys([*unit, *sized])
            if not isinstance(unit.get(k, sized.get(k)), (list, dict))]
    return [(k, unit.get(k), sized.get(k)) for k in keys]


def plot_calibration(models: list[dict[str, Any]]) -> bytes | None:
    tabs = [(m["name"], (m.get("oos") or {}).get("calibration") or {}) for m in models]
    tabs = [(n, t["top"]) for n, t in tabs if t.get("top")]
    if not tabs:
        return None
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="perfect")
    for name, top in tabs:
        pts = [(p, o) for p, o, c in zip(top["mean_predicted"], top["observed"], top["count"],
                                        strict=False) if c and p is not None and o is not None]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=name)
    ax.set_xlabel("predicted probability of the called class")
    ax.set_ylabel("observed frequency")
    ax.set_title("Calibration (out of sample)")
    ax.legend(fontsize=8)
    return _png(fig)


def plot_shap(selection: dict[str, Any], top: int = 25) -> bytes | None:
    table = selection.get("table") or []
    if not table:
        return None
    key = next((k for k in ("mean_importance", "mean_abs_shap", "mean") if k in table[0]), None)
    if key is None:
        return None
    rows = sorted(table, key=lambda r: -(r.get(key) or 0))[:top]
    names = [r.get("feature", "?") for r in rows][::-1]
    vals = [r.get(key) or 0 for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(6, max(3, 0.22 * len(rows))))
    err = [r.get("std_importance") or 0 for r in rows][::-1]
    ax.barh(names, vals, xerr=err if any(err) else None, error_kw={"lw": 0.6})
    ax.set_title(f"SHAP importance (mean |SHAP| across folds), top {len(rows)}")
    ax.tick_params(axis="y", labelsize=7)
    return _png(fig)


def plot_ic_by_fold(ic_by_fold: Any) -> bytes | None:
    if not ic_by_fold:
        return None
    series: dict[str, list[tuple[int, float]]] = {}
    if isinstance(ic_by_fold, dict):
        for name, vals in ic_by_fold.items():
            series[name] = [(i, v) for i, v in enumerate(vals) if v is not None]
    else:
        for row in ic_by_fold:
            for name, v in row.items():
                if name.startswith("ic_") and isinstance(v, (int, float)):
                    series.setdefault(name[3:], []).append((int(row.get("fold", 0)), float(v)))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 3))
    width = 0.8 / max(len(series), 1)
    for j, (name, pts) in enumerate(series.items()):
        ax.bar([p[0] - 0.4 + (j + 0.5) * width for p in pts], [p[1] for p in pts], width=width,
               label=name)
    folds = sorted({p[0] for pts in series.values() for p in pts})
    ax.set_xticks(folds)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("fold")
    ax.set_ylabel("IC (Spearman)")
    ax.set_title("Out-of-sample IC by fold")
    ax.legend(fontsize=8)
    return _png(fig)


def _metric_table(rows: list[dict[str, Any]], title: str, decision_model: Any = None) -> str:
    """One row per model or baseline (``kind`` says which: lightgbm, lightgbm_regression,
    ensemble, logistic, momentum, rule); the decision model is marked."""
    head = "".join(f"<th>{m}</th>" for m in ("name", "kind", "horizon", *METRICS))
    body = ""
    for r in rows:
        oos = r.get("oos") or {}
        name = str(r.get("name")) + (" (decision score)" if r.get("name") == decision_model else "")
        cells = [name, r.get("kind"), r.get("horizon")] + [oos.get(m) for m in METRICS]
        body += "<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in cells) + "</tr>"
    return f"<h2>{title}</h2><table><tr>{head}</tr>{body}</table>"


def ensemble_table(models: list[dict[str, Any]]) -> str:
    """The regime ensemble's weights per volatility regime, one block of rows per fold (fitted
    on that fold's validation slice), with each component's IC there; empty without one."""
    ens = next((m for m in models if m.get("kind") == "ensemble"), None)
    folds = (ens or {}).get("fold_weights") or []
    if not folds:
        return ""
    comps = list(folds[0]["model"]["components"])
    head = "".join(f"<th>{c}</th>" for c in ("fold", "regime", "vol from", "vol to", "rows",
                                              *comps))  # fmt: skip
    body = ""
    for fw in folds:
        ics = fw.get("component_ic_val") or {}
        body += (f"<tr><td>{fw['fold']}</td><td>IC on fitting rows</td><td></td><td></td>"
                 f"<td>{_fmt(fw.get('n_fit_rows'))}</td>"
                 + "".join(f"<td>{_fmt(ics.get(c))}</td>" for c in comps) + "</tr>")  # fmt: skip
        for w in fw["weights"]:
            cells = [fw["fold"], w["regime"], w["vol_from"], w["vol_to"], w["n_rows"]]
            weights = [w.get(c) for c in comps]  # tiny in return units: 3 significant digits
            body += ("<tr>" + "".join(f"<td>{_fmt(c)}</td>" for c in cells)
                     + "".join(f"<td>{'-' if v is None else f'{v:.3g}'}</td>" for v in weights)
                     + "</tr>")  # fmt: skip
    return (
        "<h2>Regime ensemble: weights per volatility regime (fitted per fold on its validation "
        "slice; reported, not served)</h2><p>Non-negative weights of the components divided by "
        "their standard deviation on the fitting rows, in units of the volatility-normalized "
        "return; a regime with too few rows uses the pooled weights.</p>"
        f"<table><tr>{head}</tr>{body}</table>"
    )


def selection_stability_html(selection: dict[str, Any], top: int = 30) -> str:
    """The selection-stability section: per feature selected in any fold, the share of folds
    whose own top-K has it and its mean rank over folds (``selection["stability"]``)."""
    rows = selection.get("stability") or []
    if not rows:
        return ""
    shown = min(top, len(rows))
    body = "".join(
        f"<tr><td style='text-align:left'>{_fmt(r.get('feature'))}</td>"
        f"<td>{_fmt(r.get('top_k_share'))}</td><td>{_fmt(r.get('mean_fold_rank'))}</td>"
        f"<td>{'yes' if r.get('selected') else 'no'}</td></tr>"
        for r in rows[:top]
    )
    return (
        f"<h2>Selection stability ({_fmt(selection.get('n_folds'))} folds, top "
        f"{_fmt(selection.get('top_k'))} per fold, chosen on training rows only)</h2>"
        f"<p>{len(rows)} features selected in at least one fold; mean pairwise Spearman of the "
        f"folds' importances {_fmt(selection.get('fold_spearman_mean'))}. First {shown} by "
        "share of folds, then mean rank.</p><table><tr><th>feature</th><th>share of folds"
        "</th><th>mean rank</th><th>in the pooled top-K</th></tr>" + body + "</table>"
    )


def write_reports(
    result: dict[str, Any], out_dir: Path, title: str = "tickml evaluation"
) -> dict[str, Path]:
    """Write ``evaluation.json``, ``evaluation.html`` and the plot PNGs; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    js = out_dir / "evaluation.json"
    js.write_text(json.dumps(result, indent=2, default=str))
    paths["json"] = js
    plots = {
        "equity_curve": plot_equity(result.get("backtest") or {}, result.get("backtest_sized")),
        "calibration": plot_calibration(result.get("models") or []),
        "shap_importance": plot_shap(result.get("selection") or {}),
        "ic_by_fold": plot_ic_by_fold(result.get("ic_by_fold")),
    }
    imgs = ""
    for name, png in plots.items():
        if png is None:
            continue
        p = out_dir / f"{name}.png"
        p.write_bytes(png)
        paths[name] = p
        b64 = base64.b64encode(png).decode()
        imgs += f'<figure><img alt="{name}" src="data:image/png;base64,{b64}"/></figure>'
    bt_rows = "<tr><th>metric</th><th>unit size</th><th>sized</th></tr>" + "".join(
        f"<tr><td>{k}</td><td>{_fmt(u)}</td><td>{_fmt(v)}</td></tr>"
        for k, u, v in backtest_rows(result)
    )
    notes = "".join(f"<li>{html.escape(str(n))}</li>" for n in result.get("notes") or [])
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;
margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}}
figure{{display:inline-block;margin:.5em}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>All metrics are out of sample (purged walk-forward test folds). IC = mean over days of the
day's Spearman rank correlation of the score with the forward return (classifiers: P(UP) -
P(DOWN); the direction model: its prediction of the volatility-normalized return; rules: the
feature's last value; ensemble: its combined score); 95% Student-t interval over the per-day ICs
(coverage checked by simulation); n_ic rows and n_days days. Score models and rules are scored
on the rows of the short model; they have no class probabilities, hence no log loss.</p>
{_metric_table([*(result.get("models") or []), *(result.get("baselines") or [])],
               "Models and baselines (same folds)", result.get("decision_model"))}
{ensemble_table(result.get("models") or [])}
<h2>Backtest (same decision function and position book as the live worker, costs included)</h2>
<p>Unit size: every position one notional. Sized: volatility-scaled positions under the caps and
the portfolio risk limit (the execution config's <code>sized</code> book, what the shadow ledger
runs).</p>
<table>{bt_rows}</table>
{selection_stability_html(result.get("selection") or {})}
{imgs}
{"<h2>Notes</h2><ul>" + notes + "</ul>" if notes else ""}
</body></html>"""
    h = out_dir / "evaluation.html"
    h.write_text(page)
    paths["html"] = h
    return paths
