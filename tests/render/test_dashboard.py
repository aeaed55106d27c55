"""The dashboard and the autoscaling query against a real Prometheus scraping a real runtime.

Prometheus (Debian's package) scrapes `mlkit serve` of the sentiment example as a cluster's would
(tests/scraped.py, the session's `scraped_runtime`). Every query of the rendered dashboard and of the
rendered ScaledObjects must return series from it.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import yaml

from tests.conftest import EXAMPLE_NAMES, mlkit
from tests.scraped import rendered

METRIC = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{|\[)")
PROMQL_WORDS = {"sum", "rate", "count", "avg", "by", "histogram_quantile", "vector", "le"}


def metric_names(expr: str) -> set[str]:
    return {m for m in METRIC.findall(expr) if m not in PROMQL_WORDS}


def exported_names(exposition: str) -> set[str]:
    """Every series name a /metrics page exports (histograms as _bucket, _sum and _count)."""
    return {line.split("{")[0].split(" ")[0] for line in exposition.splitlines() if line and not line.startswith("#")}


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_panel_names_a_metric_the_runtime_exports(project, name):
    """A renamed runtime metric, or a panel typo, fails here: names are checked against a real /metrics page."""
    from prometheus_client import CollectorRegistry, generate_latest

    from mlkit_runtime.metrics import Metrics, PredictionMonitor

    class Idle:
        admitted = queued = 0

    metrics = Metrics(Idle())
    metrics.observe("predict", 200, 0.01)
    metrics.batch_size.observe(1)
    exported = exported_names(metrics.render().decode())
    # Prediction monitoring, both kinds (the runtime registers one when the API's spec asks).
    for key, kind, value in (("label", "classification", "positive"), ("score", "regression", 0.5)):
        registry = CollectorRegistry()
        PredictionMonitor(registry, key, kind).observe({key: value})
        exported |= exported_names(generate_latest(registry).decode())
    from mlkit.render.dashboard import EXTERNAL_METRICS

    proj = project(name)
    assert mlkit("render", cwd=proj).returncode == 0
    board = json.loads(next((proj / "infra/dashboards").glob("*.json")).read_text())
    queries = dashboard_queries(board)
    assert queries
    for title, expr in queries:
        unknown = metric_names(expr) - exported - EXTERNAL_METRICS
        assert not unknown, f"panel {title!r} queries {unknown}, which nothing exports: {expr}"


def test_the_metric_check_catches_a_name_nothing_exports():
    assert metric_names('sum(rate(mlkit_requests_totl{namespace="x"}[2m]))') == {"mlkit_requests_totl"}
    assert "mlkit_requests_totl" not in exported_names("mlkit_requests_total{route=\"p\",status=\"200\"} 1.0\n")


def test_dashboard_configmap_carries_the_same_json_for_grafanas_sidecar(project):
    proj = project("sentiment")
    assert mlkit("render", cwd=proj).returncode == 0
    cm = yaml.safe_load((proj / "infra/k8s/_shared/dashboard.yaml").read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlkit"  # applied and pruned with the project
    (key, text), = cm["data"].items()
    assert json.loads(text) == json.loads((proj / "infra/dashboards" / key).read_text())
    board = json.loads(text)
    assert board["uid"] == "mlkit-sentiment-demo"
    assert [p["title"] for p in board["panels"] if p["type"] == "row"] == ["API sentiment"]
    assert all(p["datasource"]["uid"] == "${datasource}" for p in board["panels"] if p["type"] != "row")
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    assert "null" not in text


def test_gpu_apis_get_a_dcgm_panel_and_cpu_apis_do_not(project):
    proj = project("aws-accelerators")
    assert mlkit("render", cwd=proj).returncode == 0
    board = json.loads(next((proj / "infra/dashboards").glob("*.json")).read_text())
    rows, current = {}, None
    for panel in board["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
            rows[current] = []
        else:
            rows[current].append(panel["title"])
    gpu = [row for row, titles in rows.items() if "GPU utilisation" in titles]
    assert gpu and len(gpu) < len(rows), rows


def test_prometheus_scraping_the_runtime_answers_every_rendered_query(scraped_runtime):
    board, scaled, _ = rendered(scraped_runtime.proj)
    with scraped_runtime.load():  # queries are asked while the load runs, so in-flight and rates are live
        time.sleep(4)
        empty = []
        for title, expr in dashboard_queries(board):
            if "DCGM_FI_DEV_GPU_UTIL" in expr:
                continue
            if not scraped_runtime.series(expr):
                empty.append(f"{title}: {expr}")
        for obj in scaled:
            for trigger in obj["spec"]["triggers"]:
                if trigger["type"] == "prometheus":
                    assert trigger["metadata"]["serverAddress"].startswith("http://prometheus-server.")
                    if not scraped_runtime.series(trigger["metadata"]["query"]):
                        empty.append(f"ScaledObject {obj['metadata']['name']}: {trigger['metadata']['query']}")
        assert not empty, "queries that returned no series:\n" + "\n".join(empty)
        statuses = {s["metric"]["status"] for s in scraped_runtime.series(next(e for t, e in dashboard_queries(board) if t == "Requests by status"))}
        assert {"200", "400", "500"} <= statuses, statuses
