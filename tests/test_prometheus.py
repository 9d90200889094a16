"""Prometheus rules, metric names and Grafana dashboards as code, without a server.

``promtool`` (Debian's ``prometheus`` package, installed by scripts/services.sh) checks and
unit-tests the rules, lints the metrics the workers and the reports exporter expose, and the
committed dashboards must equal what ``orchestration/grafana.py`` generates. Every metric a
rule or a panel reads exists, and the README's operations table documents every metric, rule
and panel. The real-server evaluation is in tests/test_live_e2e.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "ops" / "prometheus" / "rules.yml"
DASHBOARDS = REPO / "ops" / "grafana" / "dashboards"



def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        msg = "promtool not found: apt-get install -y prometheus (`make test` as root does it)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [promtool(), *args], input=stdin, capture_output=True, text=True, timeout=120,
        cwd=RULES.parent,
    )


@pytest.mark.integration
def test_rules_and_config_are_valid_and_their_unit_tests_pass() -> None:
    for args in (("check", "rules", "rules.yml"), ("check", "config", "prometheus.yml"),
                 ("test", "rules", "rules_test.yml")):
        res = _run(*args)
        assert res.returncode == 0, (args, res.stdout[-3000:], res.stderr[-3000:])
    assert "SUCCESS" in _run("test", "rules", "rules_test.yml").stdout


@pytest.mark.unit
def test_rule_unit_tests_fix_the_group_order() -> None:
    """Without ``group_eval_order`` promtool evaluates the groups in Go map order (random), and
    an alert on a recording rule sees that rule's value of the same minute only when the
    recording group happens to run first: the test then fails about one run in ten."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    order = yaml.safe_load((RULES.parent / "rules_test.yml").read_text())["group_eval_order"]
    assert sorted(order) == sorted(g["name"] for g in groups)
    recording = [g["name"] for g in groups if any("record" in r for r in g["rules"])]
    alerting = [g["name"] for g in groups if any("alert" in r for r in g["rules"])]
    assert max(map(order.index, recording)) < min(map(order.index, alerting))


@pytest.mark.unit
def test_every_alert_has_a_unit_test() -> None:
    alerts = set(re.findall(r"^\s+- alert: (\w+)", RULES.read_text(), re.M))
    tested = set(re.findall(r"alertname: (\w+)", (RULES.parent / "rules_test.yml").read_text()))
    assert alerts and alerts == tested, alerts ^ tested


def _exposition(tmp_path: Path) -> str:
    """Every metric family of the workers and the exporter, as one scrape would show them."""
    import numpy as np
    from prometheus_client import CollectorRegistry, generate_latest

    from live import metrics
    from live.exporter import ReportsCollector

    metrics.scorer_started()
    metrics.worker_started("materializer-0", dependencies=())
    metrics.ticks_processed("materializer-0", 10)
    metrics.boundary_scored(
        60 * 10**9, np.array([60 * 10**9, -1]), np.array([True, False]), False,
        {"traded": 1, "stale": 1}, {"read": 0.001},
    )
    metrics.LAG.labels("mat-0", "0").set(0)
    metrics.ONLINE_WRITE.labels("model_vector").observe(0.001)
    metrics.ONLINE_READ.observe(0.001)
    metrics.CLOSE_TO_SIGNAL.observe(0.01)
    metrics.STORE_WRITE.observe(0.01)
    metrics.FEED_RECONNECTS.labels("binance")
    metrics.DUPLICATES.labels("writer")
    reports = tmp_path / "reports"
    (reports / "consistency").mkdir(parents=True)
    (reports / "drift").mkdir()
    (reports / "consistency" / "2013-10-08.json").write_text(json.dumps({
        "passed": True, "features": {"n_matched": 10, "n_rows_differing": 0,
                                     "max_mismatch_share": 0.0, "n_batch_only": 0,
                                     "n_online_only": 0}, "scores": None}))
    (reports / "drift" / "2013-10-08.json").write_text(json.dumps({"status": "skipped"}))
    reg = CollectorRegistry()
    reg.register(ReportsCollector(reports))
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY).decode() + generate_latest(reg).decode()


@pytest.mark.integration
def test_metric_names_pass_promtool_lint(tmp_path: Path) -> None:
    text = _exposition(tmp_path)
    res = _run("check", "metrics", stdin=text)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "tickml_consistency_check_passed 1.0" in text
    assert "tickml_drift_report_skipped 1.0" in text and "tickml_drift_adversarial_auc NaN" in text


def _metric_names(tmp_path: Path) -> set[str]:
    names = set(re.findall(r"^# TYPE (tickml_\w+) ", _exposition(tmp_path), re.M))
    return names | {n + s for n in names for s in ("_bucket", "_sum", "_count", "_total")}


def _dashboard_queries() -> list[tuple[str, str, str]]:
    from orchestration.grafana import DASHBOARDS as BUILT
    from orchestration.grafana import panel_queries

    out = []
    for name in BUILT:
        out += list(panel_queries(json.loads((DASHBOARDS / f"{name}.json").read_text())))
    return out


@pytest.mark.unit
def test_rules_and_panels_read_only_existing_metrics(tmp_path: Path) -> None:
    known = _metric_names(tmp_path)
    recorded = set(re.findall(r"record: (tickml:[\w:]+)", RULES.read_text()))
    exprs = re.findall(r"expr: (?:>-\n)?((?:.|\n)*?)(?=\n\s+(?:for|labels|- record|- alert)|\Z)",
                       RULES.read_text())
    exprs += [q for _, kind, q in _dashboard_queries() if kind == "promql"]
    used = {m for e in exprs for m in re.findall(r"\b(tickml[_:][\w:]+)", e)}
    unknown = {m for m in used if m not in known and m not in recorded}
    assert not unknown, unknown
    assert recorded <= used  # every recording rule feeds an alert or a panel


@pytest.mark.unit
def test_committed_dashboards_equal_the_generated_ones() -> None:
    from orchestration.grafana import DASHBOARDS as BUILT
    from orchestration.grafana import render

    for name in BUILT:
        committed = (DASHBOARDS / f"{name}.json").read_text()
        assert committed == render(name) + "\n", (
            f"{name}.json is stale: run `python -m orchestration.grafana`"
        )
        dash = json.loads(committed)
        ids = [p["id"] for p in dash["panels"]]
        assert ids == list(range(1, len(ids) + 1))
        for p in dash["panels"]:
            assert p["type"] == "row" or p.get("targets"), p["title"]


@pytest.mark.unit
def test_readme_documents_every_metric_rule_and_panel(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("### Metrics, rules and panels"):]
    base = {n for n in _metric_names(tmp_path) if not n.endswith(("_bucket", "_sum", "_count"))}
    base = {n for n in base if not (n.endswith("_total") and n[:-6] in base)}
    rules = re.findall(r"(?:record|alert): ([\w:]+)", RULES.read_text())
    panels = [t for t, _, _ in _dashboard_queries()]
    missing = [x for x in sorted(base) + rules + panels if f"`{x}`" not in table]
    assert not missing, missing
