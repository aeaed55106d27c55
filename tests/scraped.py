"""A real runtime scraped by a real Prometheus, as a cluster's Prometheus scrapes an API's pods.

`mlkit serve` of the sentiment example, and Prometheus (Debian's package) scraping it through the
relabelling of the Prometheus chart's `kubernetes-pods` job, fed with the labels and annotations of
the pod template exactly as rendered, so the series carry the labels they carry in a cluster. The
`scraped_runtime` fixture of tests/conftest.py starts one for the session: the dashboard's queries
(tests/render) and `mlkit status --watch` (tests/commands) read the same one.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from tests.conftest import free_port, mlkit

# The `kubernetes-pods` scrape job of prometheus-community/helm-charts, charts/prometheus/values.yaml
# at tag prometheus-29.27.0 (the chart version the add-ons stack pins), written out as our own data.
# The IPv6 rule is left out: the test target is 127.0.0.1.
KUBERNETES_PODS_RELABEL = [
    {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "action": "keep", "regex": "true"},
    {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape_slow"], "action": "drop", "regex": "true"},
    {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scheme"], "action": "replace", "regex": "(https?)", "target_label": "__scheme__"},
    {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_path"], "action": "replace", "target_label": "__metrics_path__", "regex": "(.+)"},
    {
        "source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_port", "__meta_kubernetes_pod_ip"],
        "action": "replace",
        "regex": r"(\d+);((([0-9]+?)(\.|$)){4})",
        "replacement": "$2:$1",
        "target_label": "__address__",
    },
    {"action": "labelmap", "regex": "__meta_kubernetes_pod_annotation_prometheus_io_param_(.+)", "replacement": "__param_$1"},
    {"action": "labelmap", "regex": "__meta_kubernetes_pod_label_(.+)"},
    {"source_labels": ["__meta_kubernetes_namespace"], "action": "replace", "target_label": "namespace"},
    {"source_labels": ["__meta_kubernetes_pod_name"], "action": "replace", "target_label": "pod"},
    {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Pending|Succeeded|Failed|Completed", "action": "drop"},
    {"source_labels": ["__meta_kubernetes_pod_node_name"], "action": "replace", "target_label": "node"},
]


def meta_label(name: str) -> str:
    """How Kubernetes service discovery names a pod label or annotation (invalid characters become _)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def rendered(proj: Path) -> tuple[dict, list[dict], dict]:
    """The dashboard, the ScaledObjects and the first Deployment of a rendered project."""
    board = json.loads(next((proj / "infra/dashboards").glob("*.json")).read_text())
    scaled = [doc for p in sorted((proj / "infra/k8s").glob("*/scaledobject.yaml")) for doc in yaml.safe_load_all(p.read_text()) if doc]
    deployment = next(doc for doc in yaml.safe_load_all((proj / "infra/k8s/sentiment/deployment.yaml").read_text()) if doc)
    return board, scaled, deployment


@dataclass
class Scraped:
    """The running pair: `proj` (the rendered sentiment project), the runtime's and Prometheus' URLs."""

    proj: Path
    url: str
    prometheus: str
    logs: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def query_api(self) -> str:
        return f"{self.prometheus}/api/v1/query"

    def series(self, expr: str) -> list[dict]:
        """The non-NaN series of an instant query."""
        return series(self.query_api, expr)

    @contextlib.contextmanager
    def load(self) -> Iterator[None]:
        """Requests from 4 threads while the block runs, until Prometheus has scraped some of them."""
        stop = threading.Event()
        threads = [threading.Thread(target=_drive, args=(self.url, stop, i)) for i in range(4)]
        for t in threads:
            t.start()
        try:
            time.sleep(2)
            wait(lambda: self.series("mlkit_batch_size_count") != [], self.procs[1], self.logs / "prometheus.log", 30)
            yield
        finally:
            stop.set()
            for t in threads:
                t.join()

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            proc.wait(timeout=15)


def start(prometheus_bin: str, workdir: Path) -> Scraped:
    """Render the sentiment example, serve it, and start Prometheus scraping it every second."""
    assert mlkit("init", "proj", "--example", "sentiment", cwd=workdir).returncode == 0
    proj = workdir / "proj"
    assert mlkit("render", cwd=proj).returncode == 0
    _, _, deployment = rendered(proj)
    template = deployment["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    container = template["spec"]["containers"][0]
    assert annotations["prometheus.io/port"] == str(container["ports"][0]["containerPort"])

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlkit", "serve", "--port", str(port)], cwd=proj, stdout=subprocess.DEVNULL, stderr=open(workdir / "serve.log", "w")
    )
    scraped = Scraped(proj, f"http://127.0.0.1:{port}", "", workdir, [server])
    try:
        wait(lambda: httpx.get(scraped.url + "/readyz", timeout=1).status_code == 200, server, workdir / "serve.log")
        prom, scraped.prometheus = start_prometheus(prometheus_bin, workdir, deployment, port, "sentiment-5d9f7c-abcde")
        scraped.procs.append(prom)
        wait(lambda: scraped.series('up{job="kubernetes-pods"}') != [], prom, workdir / "prometheus.log")  # scraped once
    except BaseException:
        scraped.close()
        raise
    return scraped


def start_prometheus(
    prometheus_bin: str, workdir: Path, deployment: dict, port: int, pod_name: str, more: tuple[tuple[dict, str], ...] = ()
) -> tuple[subprocess.Popen, str]:
    """A real Prometheus scraping 127.0.0.1:`port` every second as the `kubernetes-pods` job would scrape a pod
    named `pod_name` of `deployment` (its template's labels and annotations, the port mapped to the local one),
    and a pod of each (deployment, pod name) of `more` on the same port; the process and its base URL, once it is ready."""

    def pod(deployment: dict, pod_name: str) -> dict[str, str]:
        template = deployment["spec"]["template"]
        # The pod as Kubernetes service discovery describes it.
        target = {f"__meta_kubernetes_pod_label_{meta_label(k)}": v for k, v in template["metadata"]["labels"].items()}
        target |= {f"__meta_kubernetes_pod_annotation_{meta_label(k)}": v for k, v in template["metadata"]["annotations"].items()}
        return target | {
            "__meta_kubernetes_pod_annotation_prometheus_io_port": str(port),
            "__meta_kubernetes_pod_ip": "127.0.0.1",
            "__meta_kubernetes_namespace": deployment["metadata"]["namespace"],
            "__meta_kubernetes_pod_name": pod_name,
            "__meta_kubernetes_pod_phase": "Running",
            "__meta_kubernetes_pod_node_name": "node-1",
        }

    pods = [pod(deployment, pod_name), *(pod(d, name) for d, name in more)]
    (workdir / "targets.json").write_text(json.dumps([{"targets": ["127.0.0.1:1"], "labels": target} for target in pods]))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "kubernetes-pods",
                "honor_labels": True,
                "file_sd_configs": [{"files": [str(workdir / "targets.json")]}],
                "relabel_configs": KUBERNETES_PODS_RELABEL,
            }
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom_port = free_port()
    prom = subprocess.Popen(
        [
            prometheus_bin,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(workdir / "prometheus.log", "w"),
    )
    base = f"http://127.0.0.1:{prom_port}"
    try:
        wait(lambda: httpx.get(f"{base}/-/ready", timeout=1).status_code == 200, prom, workdir / "prometheus.log")
    except BaseException:
        prom.kill()
        raise
    return prom, base


def series(query_api: str, expr: str) -> list[dict]:
    """The non-NaN series of an instant query."""
    body = httpx.get(query_api, params={"query": expr}, timeout=5).json()
    assert body["status"] == "success", (expr, body)
    return [s for s in body["data"]["result"] if s["value"][1] not in ("NaN",)]


def _drive(url: str, stop: threading.Event, worker: int) -> None:
    """Good requests, malformed ones (400) and ones the predictor raises on (500), until stopped."""
    with httpx.Client(timeout=5) as client:
        n = 0
        while not stop.is_set():
            n += 1
            if n % 17 == 0:
                client.post(url + "/predict", content=b"{not json", headers={"Content-Type": "application/json"})
            elif n % 23 == 0 and worker == 0:
                client.post(url + "/predict", json={"text": 5})  # the example's predictor calls .lower() on it
            else:
                client.post(url + "/predict", json={"text": "I love how fast this is"})


def wait(ready, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready in {timeout} s:\n{log.read_text()}")
