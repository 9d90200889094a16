"""A real Prometheus server for tests (Debian's ``prometheus``): start on 127.0.0.1 with a
temporary data dir, scrape given ports every second with the project's rules, query its API."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml
from _servers import free_port, running

REPO = Path(__file__).resolve().parents[1]
RULES = REPO / "ops" / "prometheus" / "rules.yml"
_ALERT = re.compile(r"^(?P<signal>.+?)\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<value>[-+0-9.eE]+)$", re.S)


def available() -> str | None:
    """Why a server cannot be started here (None: it can)."""
    if shutil.which("prometheus") is None:
        return "prometheus not found: apt-get install -y prometheus (scripts/services.sh)"
    return None


@contextmanager
def prometheus(tmp: Path, jobs: Mapping[str, Sequence[int]]) -> Iterator[str]:
    """A Prometheus scraping ``jobs`` (job -> ports on 127.0.0.1) every second and evaluating
    ops/prometheus/rules.yml every second; yields its base URL."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{p}" for p in ports]}]}
            for job, ports in jobs.items()
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    base = f"http://127.0.0.1:{free_port()}"
    argv = ["prometheus", f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address={base.removeprefix('http://')}", "--log.level=warn"]
    with running(argv, f"{base}/-/ready", tmp / "prometheus.log", timeout_s=60):
        yield base


def query(base: str, expr: str) -> list[dict[str, Any]]:
    """An instant query at now; the result vector (raises on a query error)."""
    resp = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=30).json()
    if resp.get("status") != "success":
        raise AssertionError(f"{expr!r}: {resp.get('errorType')}: {resp.get('error')}")
    return resp["data"]["result"]


def wait_for(base: str, expr: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = query(base, expr)
        if out:
            return out
        time.sleep(0.5)
    raise AssertionError(f"{expr!r} stayed empty for {timeout} s")


def rules(base: str) -> list[dict[str, Any]]:
    data = httpx.get(f"{base}/api/v1/rules", timeout=30).json()["data"]
    return [r for g in data["groups"] for r in g["rules"]]


def split_alert(expr: str) -> tuple[str, str, str]:
    """``signal op threshold`` of an alert expression (the rules file's convention)."""
    m = _ALERT.match(" ".join(expr.split()))
    if m is None:
        raise AssertionError(f"alert expression not `<signal> <op> <threshold>`: {expr!r}")
    return m.group("signal"), m.group("op"), m.group("value")


def grafana_promql(expr: str, rate_interval: str = "1m") -> str:
    """A panel's PromQL with Grafana's interval variables filled in as Grafana would."""
    return expr.replace("$__rate_interval", rate_interval).replace("$__interval", "15s")


def grafana_sql(sql: str, start: str, end: str) -> str:
    """A panel's SQL with Grafana's PostgreSQL time macros expanded."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 BETWEEN '{start}' AND '{end}'", sql)
    return sql.replace("$__timeFrom()", f"'{start}'").replace("$__timeTo()", f"'{end}'")
