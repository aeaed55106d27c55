"""The dashboard and the autoscaling queries against a real Prometheus.

Prometheus (Debian's package) scrapes `mlkit serve` of the sentiment example as a cluster's would
(tests/scraped.py, the session's `scraped_runtime`), and an exposition of vLLM's series for the llm
example's engine API through the same relabelling. Every query of the rendered dashboard and of the
rendered ScaledObjects must return series from it.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
import yaml

from mlkit.spec.loader import load
from tests import scraped
from tests.conftest import EXAMPLE_NAMES, REPO, mlkit
from tests.scraped import rendered

# vLLM's metrics at the version mlkit pins (vllm/vllm-openai:v0.31.0, cli/spec/engines.py), read from vLLM's
# own wheel (vllm==0.31.0 on PyPI) by tests/render/data/vllm_metrics/extract.py, which records the wheel's
# file name, sha256 and the files each name is made in; the API server's HTTP metrics are
# prometheus_fastapi_instrumentator's defaults, which vLLM adds. Name -> Prometheus type; a counter is
# exported as <name>_total, a histogram as _bucket, _sum and _count, a summary as _sum and _count.
VLLM_DATA = json.loads((Path(__file__).resolve().parent / "data/vllm_metrics/metrics-0.31.0.json").read_text())
VLLM_METRICS: dict[str, str] = VLLM_DATA["metrics"] | VLLM_DATA["http_metrics"]
SERIES_SUFFIXES = {"gauge": ("",), "counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
VLLM_EXPORTED = {name + suffix for name, kind in VLLM_METRICS.items() for suffix in SERIES_SUFFIXES[kind]}
# The KEDA operator's metrics at the version the add-ons stack pins, with the chart values that expose them
# (read from KEDA's source and chart; the file names repository, tag, commit and path).
KEDA_DATA = json.loads((Path(__file__).resolve().parent / "data/keda/metrics-2.20.2.json").read_text())
METRIC = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{|\[)")
PROMQL_WORDS = {"sum", "rate", "count", "avg", "by", "histogram_quantile", "vector", "le"}


def test_vllm_metric_names_are_read_at_the_version_the_nvidia_image_pins():
    """The names come from the wheel of the vLLM release whose image the templates pin: when the pin moves,
    extract.py must run again (its README says how) or this fails."""
    from mlkit.spec.engines import VLLM

    tag = VLLM.images["nvidia"].split(":")[1]  # v0.31.0-cu129
    assert VLLM_DATA["source"]["vllm_wheel"].startswith(f"vllm-{tag[1:].split('-')[0]}-"), (tag, VLLM_DATA["source"])
    # the names the rendered templates rely on are vLLM's own, with the kind the queries assume
    assert VLLM_METRICS["vllm:num_requests_waiting"] == "gauge" and VLLM_METRICS["vllm:request_success"] == "counter"
    assert VLLM_METRICS["http_requests"] == "counter"


def meta_label(name: str) -> str:
    """How Kubernetes service discovery names a pod label or annotation (invalid characters become _)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def metric_names(expr: str) -> set[str]:
    return {m for m in METRIC.findall(expr) if m not in PROMQL_WORDS}


def exported_names(exposition: str) -> set[str]:
    """Every series name a /metrics page exports (histograms as _bucket, _sum and _count)."""
    return {line.split("{")[0].split(" ")[0] for line in exposition.splitlines() if line and not line.startswith("#")}


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def queries_by_api(dashboard: dict) -> dict[str, list[tuple[str, str]]]:
    """Each API's row (a row panel "API <name>" and the panels after it) and its panels' queries."""
    rows: dict[str, list[tuple[str, str]]] = {}
    current = None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            current = rows.setdefault(panel["title"].removeprefix("API "), [])
        else:
            assert current is not None, panel
            current += [(panel["title"], target["expr"]) for target in panel.get("targets", [])]
    return rows


def unknown_metrics(dashboard: dict, engine_apis: set[str], runtime_exported: set[str]) -> list[str]:
    """Panels naming a series their API's server does not export: vLLM's list for engine APIs, the runtime's page for the rest."""
    from mlkit.render.dashboard import EXTERNAL_METRICS

    found = []
    for api, queries in queries_by_api(dashboard).items():
        exported = VLLM_EXPORTED if api in engine_apis else runtime_exported
        for title, expr in queries:
            if unknown := metric_names(expr) - exported - EXTERNAL_METRICS:
                found.append(f"API {api}, panel {title!r} queries {sorted(unknown)}, which its server does not export: {expr}")
    return found


def runtime_exported() -> set[str]:
    """Every series name the runtime's real /metrics page holds once it has served and monitored."""
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
    return exported


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_panel_names_a_metric_its_server_exports(project, name):
    """A renamed runtime metric, a vLLM name the pinned engine does not export, or a panel typo fails here:
    runtime rows are checked against a real /metrics page, engine rows against vLLM's list above."""
    proj = project(name)
    assert mlkit("render", cwd=proj).returncode == 0
    if all(api.kind not in ("realtime", "async") for api in load(proj / "mlkit.yaml").apis):
        assert not (proj / "infra/dashboards").exists(), "batch and task APIs serve no metrics: no dashboard"
        return
    board = json.loads(next((proj / "infra/dashboards").glob("*.json")).read_text())
    assert dashboard_queries(board)
    engine_apis = {api.name for api in load(proj / "mlkit.yaml").apis if api.engine is not None}
    assert not unknown_metrics(board, engine_apis, runtime_exported())


def test_the_metric_check_catches_a_name_nothing_exports():
    assert metric_names('sum(rate(mlkit_requests_totl{namespace="x"}[2m]))') == {"mlkit_requests_totl"}
    assert "mlkit_requests_totl" not in exported_names("mlkit_requests_total{route=\"p\",status=\"200\"} 1.0\n")
    assert metric_names('sum(vllm:num_requests_running{a="b"}) / count(up{a="b"} == 1)') == {"vllm:num_requests_running", "up"}


def test_engine_rows_plot_vllms_metrics_and_are_checked_against_vllms_list(project):
    """The llm example's vLLM API: its row asks vLLM's series only; a runtime name there, or a vLLM name
    vLLM does not export (its older `gpu_cache_usage_perc`), or a vLLM name in a runtime row, is caught."""
    proj = project("llm")
    assert mlkit("render", cwd=proj).returncode == 0
    board = json.loads((proj / "infra/dashboards/llm-demo.json").read_text())
    rows = queries_by_api(board)
    engine = rows["chat-gpu"]
    assert [t for t, _ in engine][:1] == ["Requests by finish reason and status"]
    assert {t for t, _ in engine} >= {
        "Latency p50 / p99", "Time to first token p50 / p99", "Running and waiting per replica vs targets", "Tokens/s", "KV cache usage",
        "Replicas", "GPU utilisation",
    }
    names = {n for _, expr in engine for n in metric_names(expr)}
    assert not {n for n in names if n.startswith("mlkit_")} and "vllm:time_to_first_token_seconds_bucket" in names
    assert not {n for _, expr in rows["chat"] for n in metric_names(expr) if n.startswith("vllm:")}
    # The targets drawn are the ScaledObject's thresholds.
    scaled = yaml.safe_load((proj / "infra/k8s/chat-gpu/scaledobject.yaml").read_text())
    thresholds = {t["name"]: t["metadata"]["threshold"] for t in scaled["spec"]["triggers"]}
    targets = {e for t, e in engine if t.startswith("Running and waiting")}
    assert {f"vector({thresholds['running']})", f"vector({thresholds['waiting']})"} <= targets
    runtime = runtime_exported()
    assert not unknown_metrics(board, {"chat-gpu"}, runtime)
    for bad in ("vllm:gpu_cache_usage_perc", "mlkit_requests_in_flight"):
        broken = json.loads(json.dumps(board).replace("vllm:kv_cache_usage_perc", bad))
        assert any(bad in line and "chat-gpu" in line for line in unknown_metrics(broken, {"chat-gpu"}, runtime)), bad
    swapped = json.loads(json.dumps(board).replace("mlkit_batch_size_bucket", "vllm:request_generation_tokens_bucket"))
    assert any("API chat," in line for line in unknown_metrics(swapped, {"chat-gpu"}, runtime))


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


@pytest.fixture
def prometheus_bin() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.skip("no prometheus binary on PATH (Debian: apt-get install prometheus; scripts/setup.sh installs it as root)")
    return found


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


def vllm_exposition(n: int, model: str) -> str:
    """A /metrics page with every series of VLLM_METRICS as vLLM labels it (model_name, engine; finished_reason;
    the HTTP counter's handler, method and status), values growing with `n` so that rate() sees traffic."""
    base = f'model_name="{model}",engine="0"'
    lines = []
    for name, kind in VLLM_METRICS.items():
        if name == "http_requests":
            classes = (("2xx", 3), ("4xx", 1), ("5xx", 1))
            lines += [f'http_requests_total{{handler="/v1/chat/completions",method="POST",status="{s}"}} {n * w}' for s, w in classes]
        elif name == "vllm:request_success":
            lines += [f'{name}_total{{{base},finished_reason="{r}"}} {n * w}' for r, w in (("stop", 2), ("length", 1), ("abort", 1))]
        elif kind == "gauge":
            lines.append(f"{name}{{{base}}} {n % 7 + 1}")
        elif kind == "counter":
            lines.append(f"{name}_total{{{base}}} {n * 5}")
        elif kind == "summary":
            lines += [f"{name}_sum{{{base}}} {n * 1.7}", f"{name}_count{{{base}}} {n * 4}"]
        else:
            lines += [f'{name}_bucket{{{base},le="{le}"}} {n * c}' for le, c in (("0.1", 1), ("1.0", 3), ("+Inf", 4))]
            lines += [f"{name}_sum{{{base}}} {n * 1.7}", f"{name}_count{{{base}}} {n * 4}"]
    return "\n".join(lines) + "\n"


def test_prometheus_answers_every_engine_query_over_vllms_series_as_the_pod_is_scraped(project, prometheus_bin, tmp_path):
    """The llm example's vLLM API: its dashboard row and its ScaledObject queried on a real Prometheus that scrapes
    an exposition of vLLM's series (VLLM_METRICS, labelled as vLLM labels them) through the rendered pod's labels.
    Catches a query that does not parse, a selector label the scrape does not add, a suffix vLLM does not export."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    proj = project("llm")
    assert mlkit("render", cwd=proj).returncode == 0
    board = json.loads((proj / "infra/dashboards/llm-demo.json").read_text())
    deployment = next(d for d in yaml.safe_load_all((proj / "infra/k8s/chat-gpu/deployment.yaml").read_text()) if d)
    scaled = yaml.safe_load((proj / "infra/k8s/chat-gpu/scaledobject.yaml").read_text())
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    scrapes = [0]

    class Metrics(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            scrapes[0] += 1
            body = vllm_exposition(scrapes[0], "chat-gpu").encode() if self.path == "/metrics" else b""
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    exporter = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    prom = None
    try:
        prom, base = scraped.start_prometheus(prometheus_bin, tmp_path, deployment, exporter.server_address[1], "chat-gpu-7c9d4-xyz12")
        api = f"{base}/api/v1/query"
        scraped.wait(lambda: len(scraped.series(api, "rate(vllm:generation_tokens_total[1m])")) > 0, prom, tmp_path / "prometheus.log", 30)
        time.sleep(3)
        queries = [(f"panel {title!r}", expr) for title, expr in queries_by_api(board)["chat-gpu"] if "DCGM_FI_DEV_GPU_UTIL" not in expr]
        queries += [(f"trigger {tr['name']}", tr["metadata"]["query"]) for tr in scaled["spec"]["triggers"]]
        empty = [f"{where}: {expr}" for where, expr in queries if not scraped.series(api, expr)]
        assert not empty, "queries that returned no series:\n" + "\n".join(empty)
        reasons = next(e for w, e in queries if "finish reason" in w and "finished_reason" in e)
        assert {s["metric"]["finished_reason"] for s in scraped.series(api, reasons)} == {"stop", "length", "abort"}
    finally:
        exporter.shutdown()
        if prom is not None:
            prom.terminate()
            prom.wait(timeout=15)



def test_the_gpu_panel_of_an_api_selects_its_own_pods_and_no_other_apis(tmp_path):
    """`pod=~"chat-.*"` also summed API chat-gpu's pods. Pod names are <deployment>-<ReplicaSet hash>-<suffix>
    (k8s.io/apimachinery pkg/util/rand alphabet); PromQL anchors its regexes and runs them with RE2, as here."""
    import re2

    from mlkit.render import dashboard
    from mlkit.spec.loader import loads

    spec = loads(
        "project: gpu-demo\ncloud: aws\nregion: us-west-2\ncluster: {existing: {name: prod}}\napis:\n"
        "  - {name: chat, predictor: p.py:P, compute: {gpu: 1}, expose: public, canary: {weight: 10}}\n"
        "  - {name: chat-gpu, predictor: p.py:P, compute: {gpu: 1}}\n"
        "  - {name: chat-b2, predictor: p.py:P, compute: {gpu: 1}}\n"  # a name drawn from the hash alphabet itself
    )
    pods = {
        "chat": ["chat-7d9f8b6c5d-x2x7k", "chat-5bd4f9c7-8kzq2", "chat-canary-6c8f7d9b4-2rt5w"],
        "chat-gpu": ["chat-gpu-7d9f8b6c5d-x2x7k", "chat-gpu-canary-5bd4f9c7-8kzq2"],
        "chat-b2": ["chat-b2-7d9f8b6c5d-x2x7k"],
    }
    for api in spec.apis:
        query = next(q.expr for p in dashboard.panels(spec, api) if p.title == "GPU utilisation" for q in p.queries)
        pattern = re.search(r'pod=~"([^"]+)"', query).group(1)
        selected = sorted(pod for names in pods.values() for pod in names if re2.fullmatch(pattern, pod))
        expected = sorted(pods[api.name]) if api.canary else sorted(p for p in pods[api.name] if "-canary-" not in p)
        assert selected == expected, (api.name, pattern)


def test_async_rows_plot_the_queue_from_kedas_metric_and_the_workers_own(project):
    """The async example's row: its front's panels plus the queue's depth (the KEDA operator's value of the
    worker ScaledObject's trigger), the time requests waited, the workers up, and what failed for good. Every
    name is one the runtime exports or KEDA 2.20 does, with labels it has, selecting the rendered ScaledObject."""
    from mlkit.render.dashboard import KEDA_METRIC

    proj = project("async")
    assert mlkit("render", cwd=proj).returncode == 0
    board = json.loads((proj / "infra/dashboards/async-demo.json").read_text())
    row = queries_by_api(board)["documents"]
    titles = [t for t, _ in row]
    assert {"Queue depth", "Time queued before a worker took it", "Workers", "Async requests", "Failed for good (dead-lettered)"} <= set(titles)
    assert not unknown_metrics(board, set(), runtime_exported())
    # The KEDA series: a name and labels KEDA's operator has, picking the worker ScaledObject as rendered.
    assert KEDA_METRIC in KEDA_DATA["metrics"]
    scaled = yaml.safe_load_all((proj / "infra/k8s/documents/scaledobject.yaml").read_text())
    worker = next(o for o in scaled if o and o["metadata"]["name"].endswith("-worker"))
    (depth,) = [e for t, e in row if t == "Queue depth" and KEDA_METRIC in e]
    selected = dict(re.findall(r'(\w+)="([^"]*)"', depth))
    assert set(selected) <= set(KEDA_DATA["metrics"][KEDA_METRIC]["labels"])
    assert selected == {"namespace": worker["metadata"]["namespace"], "scaledObject": worker["metadata"]["name"]}
    # The front's in-flight ratio is over the front's pods only: the workers hold no HTTP requests.
    (in_flight,) = [e for t, e in row if t == "In flight per replica vs target" and "mlkit_requests_in_flight" in e]
    assert in_flight.count('mlkit_dev_track="front"') == 2
    # The add-ons stack turns the operator's metrics on, with the chart's own keys, and has the pod scraped.
    serving = (proj / "infra/terraform/addons/serving.tf").read_text()
    keda = serving[serving.index('resource "helm_release" "keda"'):serving.index('resource "helm_release" "prometheus"')]
    assert set(KEDA_DATA["chart"]["values"]) == {"prometheus.operator.enabled", "prometheus.operator.port", "podAnnotations.keda"}
    assert "prometheus     = { operator = { enabled = true, port = 8080 } }" in keda
    assert '"prometheus.io/scrape" = "true", "prometheus.io/port" = "8080"' in keda
    # A realtime-only project leaves KEDA's values alone (its golden, which test_infra renders).
    realtime = (REPO / "tests/golden/sentiment/infra/terraform/addons/serving.tf").read_text()
    assert "podAnnotations" not in realtime and "operator = { enabled" not in realtime


def test_prometheus_answers_every_async_query_from_a_real_runtime_and_kedas_series(project, prometheus_bin, tmp_path):
    """The async example's row on a real Prometheus: a real runtime in async mode (front and worker in one process, on
    the embedded queue) that queued, completed, retried and failed requests, scraped as the rendered front pod and as
    the rendered worker pod, and the KEDA operator's pod exporting its series for the worker ScaledObject (KEDA 2.20's
    name and labels). Every panel must answer: a query that does not parse, a selector label the scrape does not add,
    or a name nothing exports, fails here."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    from tests.runtime.conftest import start, stop

    proj = project("async")
    assert mlkit("render", cwd=proj).returncode == 0
    board = json.loads((proj / "infra/dashboards/async-demo.json").read_text())
    front, worker = (d for d in yaml.safe_load_all((proj / "infra/k8s/documents/deployment.yaml").read_text()) if d)
    assert (front["metadata"]["name"], worker["metadata"]["name"]) == ("documents", "documents-worker")
    labels = KEDA_DATA["metrics"]["keda_scaler_metrics_value"]["labels"]
    keda = dict(zip(labels, ["async-demo", "s0-aws-sqs-async-demo-documents", "documents-worker", "awsSqsQueueScaler", "0", "scaledobject"], strict=True))
    keda_line = "keda_scaler_metrics_value{" + ",".join(f'{k}="{v}"' for k, v in keda.items()) + "} 7\n"

    runtime = start(tmp_path, "queued.py:Predictor", "--mode", "async", "--queue", "local", "--results", f"file:{tmp_path / 'results'}",
                    "--max-attempts", "2", "--visibility-timeout-s", "5")
    exporter = prom = None
    try:
        with httpx.Client(base_url=runtime.url, timeout=10) as client:
            ids = [client.post("/predict", json=p).json()["id"] for p in ({"x": 1}, {"x": 2, "sleep_s": 0.3}, {"x": 0, "poison": True})]
            scraped.wait(lambda: all(client.get(f"/predict/{i}").json()["status"] in ("completed", "failed") for i in ids), runtime.proc, runtime.log, 30)

        class Metrics(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if self.path == "/metrics?keda=1":  # the KEDA operator's pod
                    body = keda_line.encode()
                else:
                    body = httpx.get(runtime.url + "/metrics").content if self.path == "/metrics" else b""
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        exporter = ThreadingHTTPServer(("127.0.0.1", 0), Metrics)
        threading.Thread(target=exporter.serve_forever, daemon=True).start()
        port = exporter.server_address[1]
        # The KEDA operator's pod as the add-ons stack annotates it (serving.tf.j2), in the namespace the chart is
        # installed in; the scrape keeps its series' own `namespace` (honor_labels), the ScaledObject's.
        operator = {"metadata": {"namespace": "keda"}, "spec": {"template": {"metadata": {
            "labels": {"app": "keda-operator"}, "annotations": {"prometheus.io/scrape": "true", "prometheus.io/param_keda": "1"},
        }}}}
        pods = ((worker, "documents-worker-5b6f8-abc45"), (operator, "keda-operator-6d9f7-k2b4c"))
        prom, base = scraped.start_prometheus(prometheus_bin, tmp_path, front, port, "documents-7c9d4-xyz12", pods)
        api = f"{base}/api/v1/query"
        scraped.wait(lambda: len(scraped.series(api, "up == 1")) == 3, prom, tmp_path / "prometheus.log", 30)
        with httpx.Client(base_url=runtime.url, timeout=10) as client:  # traffic inside the rate window
            more = [client.post("/predict", json={"x": n}).json()["id"] for n in range(5)]
            scraped.wait(lambda: all(client.get(f"/predict/{i}").json()["status"] == "completed" for i in more), runtime.proc, runtime.log, 30)
        time.sleep(3)
        row = queries_by_api(board)["documents"]
        # Every query parses (series() checks Prometheus' status); each returns series, but the 5xx one: nothing answered 5xx.
        empty = [f"{title}: {expr}" for title, expr in row if not scraped.series(api, expr) and 'status=~"5.."' not in expr]
        assert not empty, "queries that returned no series:\n" + "\n".join(empty)
        depth = next(e for t, e in row if t == "Queue depth" and "keda_" in e)
        assert [s["value"][1] for s in scraped.series(api, depth)] == ["7"]
    finally:
        if exporter is not None:
            exporter.shutdown()
        if prom is not None:
            prom.terminate()
            prom.wait(timeout=15)
        stop(runtime)
