"""Prediction monitoring through a real runtime: two distributions of predictions in, the shift seen
in /metrics; the bound on classes; what it cannot read is counted, not dropped silently; off is off."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.runtime.conftest import start, stop

# The prediction is whatever the payload's "out" holds: the test decides the distribution exactly.
MIRROR = '''
class Mirror:
    def __init__(self, config, model_dir):
        pass

    def predict(self, payload):
        return payload["out"]

    def predict_batch(self, payloads):
        return [p["out"] for p in payloads]
'''


@pytest.fixture
def mirror(tmp_path):
    path = tmp_path / "mirror.py"
    path.write_text(MIRROR)
    servers = []

    def run(*flags: str):
        server = start(tmp_path, f"{path}:Mirror", "--no-access-log", *flags)
        servers.append(server)
        return server

    yield run
    for server in servers:
        stop(server)


def samples(url: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(url + "/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


def class_counts(url: str) -> Counter:
    return Counter({dict(labels)["class"]: v for (name, labels), v in samples(url).items() if name == "mlkit_predicted_class_total"})


def send(client: httpx.Client, url: str, outs: list) -> None:
    for out in outs:
        assert client.post(url + "/predict", json={"out": out}).status_code == 200


def test_a_shift_in_predicted_classes_shows_in_the_counter(mirror):
    server = mirror("--monitor-key", "label", "--monitor-type", "classification")
    rng = random.Random(1)
    before = [{"label": rng.choices(["cat", "dog"], [0.8, 0.2])[0], "score": 1} for _ in range(300)]
    after = [{"label": rng.choices(["cat", "dog"], [0.2, 0.8])[0], "score": 1} for _ in range(300)]
    with httpx.Client() as client:
        send(client, server.url, before)
        first = class_counts(server.url)
        send(client, server.url, after)
        second = class_counts(server.url)
    # Exact counts: every prediction counted once, under its class.
    assert first == Counter(p["label"] for p in before)
    assert second - first == Counter(p["label"] for p in after)
    share_before = first["dog"] / sum(first.values())
    share_after = (second["dog"] - first["dog"]) / (sum(second.values()) - sum(first.values()))
    assert share_before < 0.3 and share_after > 0.7  # the drift the dashboard's share panel shows


def test_a_shift_in_predicted_values_shows_in_the_histogram(mirror):
    server = mirror("--monitor-key", "score", "--monitor-type", "regression", "--monitor-buckets", "0,0.25,0.5,0.75,1")
    rng = random.Random(2)
    with httpx.Client() as client:
        send(client, server.url, [{"score": rng.gauss(0.2, 0.05)} for _ in range(200)])
        first = samples(server.url)
        send(client, server.url, [{"score": rng.gauss(0.8, 0.05)} for _ in range(200)])
        second = samples(server.url)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return second[key] - first.get(key, 0.0)

    assert first[("mlkit_predicted_value_count", ())] == 200
    assert first[("mlkit_predicted_value_sum", ())] / 200 == pytest.approx(0.2, abs=0.02)
    assert delta("mlkit_predicted_value_sum") / delta("mlkit_predicted_value_count") == pytest.approx(0.8, abs=0.02)
    # Almost all of the first lot at or below 0.5, almost none of the second.
    assert first[("mlkit_predicted_value_bucket", (("le", "0.5"),))] >= 195
    assert delta("mlkit_predicted_value_bucket", le="0.5") <= 5


def test_batched_and_kserve_predictions_are_counted_each(mirror):
    server = mirror("--monitor-key", "label", "--monitor-type", "classification", "--max-batch-size", "8")
    with httpx.Client() as client:
        r = client.post(server.url + "/v1/models/echo:predict", json={"instances": [{"out": {"label": "a"}}] * 3 + [{"out": {"label": "b"}}]})
        assert r.status_code == 200, r.text
    assert class_counts(server.url) == Counter({"a": 3, "b": 1})


def test_classes_are_bounded_and_the_unreadable_counted(mirror):
    server = mirror("--monitor-key", "label", "--monitor-type", "classification")
    with httpx.Client() as client:
        send(client, server.url, [{"label": f"class-{i}"} for i in range(150)])
        send(client, server.url, [{"label": "x" * 65}, {"label": True}, {"label": 3}])
        # Not an object, no such key, a value that is not a class: counted apart.
        send(client, server.url, ["positive", {"other": "a"}, {"label": None}, {"label": [1]}, {"label": {"a": 1}}])
    counts = class_counts(server.url)
    # 100 classes, then one "other" series: the 50 later classes, the overlong one, and true and 3
    # (read as the classes "true" and "3", but past the bound too).
    assert len(counts) == 101 and counts["other"] == 50 + 3 and "true" not in counts
    assert samples(server.url)[("mlkit_predictions_unmonitored_total", ())] == 5


def test_off_exports_nothing_of_it(mirror):
    server = mirror()
    with httpx.Client() as client:
        send(client, server.url, [{"label": "a"}])
    names = {name for name, _ in samples(server.url)}
    assert "mlkit_requests_total" in names
    assert not {n for n in names if n.startswith(("mlkit_predicted_", "mlkit_predictions_unmonitored"))}


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--monitor-key", "label"], "MLKIT_MONITOR_TYPE go together"),
        (["--monitor-key", "label", "--monitor-type", "ranking"], "classification or regression"),
        (["--monitor-key", "v", "--monitor-type", "regression", "--monitor-buckets", "1,0"], "increasing order"),
        (["--monitor-key", "v", "--monitor-type", "regression", "--monitor-buckets", "a"], "not a comma-separated list"),
    ],
)
def test_bad_monitoring_settings_stop_start_up(tmp_path: Path, flags, fragment):
    (tmp_path / "mirror.py").write_text(MIRROR)
    server = start(tmp_path, f"{tmp_path / 'mirror.py'}:Mirror", *flags, wait=False)
    assert server.proc.wait(timeout=30) == 2
    out = server.output()
    assert fragment in out and "Traceback" not in out and len(out.strip().splitlines()) == 1, out


REGRESSION_SPEC = """
project: demo
cloud: aws
region: us-west-2
cluster: {node_pools: [{name: cpu, instance_type: m6i.large}]}
apis:
  - name: scorer
    predictor: mirror.py:Mirror
    monitoring: {key: score, type: regression, buckets: [0, 0.25, 0.5, 0.75, 1]}
"""


def test_the_regression_panel_reads_the_runtime_through_a_real_prometheus(mirror, tmp_path):
    """The sentiment example covers the classification panel in tests/render/test_dashboard.py; this
    runs the regression panel's queries against a real Prometheus scraping a runtime that monitors a
    regression, with the labels the cluster's scrape job adds."""
    import shutil
    import subprocess
    import time

    import yaml

    from mlkit.render.dashboard import panels
    from mlkit.spec.loader import loads
    from tests.conftest import free_port

    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("no prometheus binary on PATH (Debian: apt-get install prometheus)")
    spec = loads(REGRESSION_SPEC)
    api = spec.apis[0]
    assert api.monitoring is not None
    server = mirror(*(f"--{k.replace('_', '-')}={v}" for k, v in api.monitoring.runtime_settings().items()))
    queries = [(p.title, q.expr) for p in panels(spec, api) for q in p.queries if "score" in p.title or "unmonitored" in q.expr]
    assert {t for t, _ in queries} == {"Predicted score", "Errors"}, queries

    port = free_port()
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": "kubernetes-pods",
                "static_configs": [{"targets": [server.url.removeprefix("http://")], "labels": {"namespace": "demo", "mlkit_dev_api": "scorer"}}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = open(tmp_path / "prometheus.log", "w")
    prom = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        rng = random.Random(3)
        empty: list[str] = []
        # Prometheus answers 503 "Service Unavailable" (not JSON) until its TSDB is open: wait for /-/ready,
        # as tests/scraped.py does, before any query (CI on a loaded machine caught the gap).
        from tests import scraped

        scraped.wait(lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200, prom, tmp_path / "prometheus.log")
        with httpx.Client() as client:
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                send(client, server.url, [{"score": rng.gauss(0.5, 0.1)} for _ in range(20)])
                send(client, server.url, ["not an object"])
                empty = []
                for title, expr in queries:
                    try:
                        answer = client.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr}, timeout=5)
                    except httpx.HTTPError:
                        empty.append(title)
                        continue
                    if answer.status_code == 503:  # still starting
                        empty.append(title)
                        continue
                    try:
                        body = answer.json()
                    except ValueError:
                        empty.append(title)
                        continue
                    assert body["status"] == "success", (expr, body)
                    if not [s for s in body["data"]["result"] if s["value"][1] != "NaN"]:
                        empty.append(f"{title}: {expr}")
                if not empty:
                    break
                time.sleep(0.5)
        assert not empty, "queries that returned no series:\n" + "\n".join(empty) + "\n" + (tmp_path / "prometheus.log").read_text()[-2000:]
    finally:
        prom.terminate()
        prom.wait(timeout=15)
        log.close()
