"""`mlkit status --watch`: the real CLI in a subprocess, the Kubernetes API emulator as the cluster, and
behind the emulator's service proxy a real Prometheus scraping a real runtime under load (the session's
`scraped_runtime`, tests/scraped.py). The watch knows no Prometheus URL: everything it shows comes
through the API server, as on a cluster."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime

import httpx
import pytest

from tests.conftest import EXAMPLE_NAMES, EXAMPLES, assert_one_line_error, emulator_kubeconfig, free_port, mlkit

NS = "sentiment-demo"  # the example's project, so the namespace the scraped series carry
PROXY = ("mlkit-system", "prometheus-server:http")
SPEC = f"""\
project: {NS}
cloud: aws
region: us-west-2
cluster: {{existing: {{name: prod-eks, context: emulator}}}}
apis:
  - name: sentiment
    predictor: predictor.py:Predictor
    model: model/
    config: {{threshold: 0.5}}
    autoscaling: {{min_replicas: 1, max_replicas: 5, target_in_flight: 4}}
    monitoring: {{key: label, type: classification}}
  - name: idle
    predictor: predictor.py:Predictor
    model: model/
"""


@pytest.fixture
def watched(scraped_runtime, k8s, tmp_path):
    """A project on the emulator whose `sentiment` Deployment wants 3 replicas and has 2 ready; `idle` is not deployed."""
    root = tmp_path / "proj"
    shutil.copytree(scraped_runtime.proj, root, ignore=shutil.ignore_patterns("infra", ".mlkit"))
    (root / "mlkit.yaml").write_text(SPEC)
    env = {"KUBECONFIG": str(emulator_kubeconfig(tmp_path / "kubeconfig", k8s.url))}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "sentiment", "namespace": NS},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"mlkit.dev/api": "sentiment"}},
            "template": {"spec": {"containers": [{"name": "predictor", "image": "x"}]}},
        },
        "status": {"replicas": 3, "readyReplicas": 2},
    }
    assert httpx.post(f"{k8s.url}/apis/apps/v1/namespaces/{NS}/deployments", json=deployment).status_code < 300
    return root, env


def test_watch_json_and_table_show_the_api_under_load(watched, scraped_runtime, k8s):
    root, env = watched
    k8s.proxy(*PROXY, scraped_runtime.prometheus)
    with scraped_runtime.load():
        started = time.monotonic()
        result = mlkit("status", "--watch", "--count", "2", "--interval", "1", "--json", cwd=root, env=env)
        took = time.monotonic() - started
        table = mlkit("status", "--watch", "--count", "2", "--interval", "1", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    snaps = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(snaps) == 2 and {s["type"] for s in snaps} == {"mlkit_status_watch"}
    assert took >= 1  # the second refresh waited for the interval
    first, second = (datetime.fromisoformat(s["time"].replace("Z", "+00:00")) for s in snaps)
    assert (second - first).total_seconds() >= 1  # a refresh is stamped when it begins, on the beat
    for snap in snaps:
        rows = {r["api"]: r for r in snap["apis"]}
        live = rows["sentiment"]
        assert (live["ready"], live["desired"]) == (2, 3)
        assert live["requests_per_s"] > 1, live
        assert 0 < live["p99_s"] < 5, live
        assert live["errors_5xx_per_s"] > 0 and 0 < live["errors_percent"] < 50, live  # the load's 500s (1 in 92)
        # Nothing scraped, nothing deployed: every cell empty, no crash.
        assert rows["idle"] == {
            "api": "idle",
            "ready": None,
            "desired": None,
            "requests_per_s": None,
            "p99_s": None,
            "errors_5xx_per_s": None,
            "errors_percent": None,
        }

    assert table.returncode == 0, table.stderr
    assert "\x1b" not in table.stdout  # not a terminal: plain tables, one per refresh
    headers = [i for i, line in enumerate(table.stdout.splitlines()) if line.split()[:2] == ["API", "REPLICAS"]]
    assert len(headers) == 2, table.stdout
    lines = table.stdout.splitlines()
    sentiment = lines[headers[-1] + 1].split()
    assert sentiment[:2] == ["sentiment", "2/3"] and float(sentiment[2]) > 1 and sentiment[4] == "ms", table.stdout
    assert lines[headers[-1] + 2].split() == ["idle", "-", "-", "-", "-", "-"], table.stdout


def test_watch_on_a_terminal_redraws_in_place_and_ctrl_c_ends_it(watched, scraped_runtime, k8s):
    root, env = watched
    k8s.proxy(*PROXY, scraped_runtime.prometheus)
    primary, secondary = pty.openpty()
    # As a shell starts a foreground command: SIGINT at its default. A suite run in the background (`cmd &` with
    # no job control, as CI scripts may be) ignores SIGINT, an ignored signal stays ignored across exec, and a
    # Python started so never turns Ctrl-C into KeyboardInterrupt: the watch would run on. A Python handler in
    # this process is reset to the default in the child.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlkit", "status", "--watch", "--interval", "0.5"],
            cwd=root,
            env=os.environ | env,
            stdin=subprocess.DEVNULL,
            stdout=secondary,
            stderr=subprocess.PIPE,
        )
    finally:
        signal.signal(signal.SIGINT, inherited)
    os.close(secondary)
    seen = b""
    deadline = time.monotonic() + 60
    try:
        while seen.count(b"\x1b[J") < 3 and time.monotonic() < deadline and proc.poll() is None:
            if select.select([primary], [], [], 0.5)[0]:
                seen += os.read(primary, 65536)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
        while select.select([primary], [], [], 0.2)[0]:
            try:
                chunk = os.read(primary, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    text = seen.decode()
    assert text.startswith("\x1b[?25l") and text.rstrip().endswith("\x1b[?25h"), repr(text[-200:])  # cursor hidden, then restored
    # From the second refresh on: back up over the 4 lines drawn (title, header, two APIs), clear, draw again.
    assert re.search(r"\x1b\[4F\x1b\[J", text), repr(text)
    assert "Ctrl-C to stop" in text and "sentiment" in text and "Traceback" not in text


def test_prometheus_stopped_or_missing_is_one_line(watched, k8s, tmp_path):
    root, env = watched
    k8s.proxy(*PROXY, f"http://127.0.0.1:{free_port()}")  # the Service's pod gone: nothing listens where it pointed
    stopped = mlkit("status", "--watch", "--count", "1", cwd=root, env=env)
    assert_one_line_error(stopped, "Prometheus does not answer through the Kubernetes API (503", "mlkit apply --only addons")
    assert len(stopped.stderr.strip().splitlines()) == 1 and stopped.stdout == ""

    k8s.proxy(*PROXY, None)  # no Service at all: the add-ons were never installed
    missing = mlkit("status", "--watch", "--count", "1", "--json", cwd=root, env=env)
    where = 'prometheus-server in namespace mlkit-system (404: services "prometheus-server" not found)'
    assert_one_line_error(missing, "Prometheus is not installed", where, "`mlkit apply --only addons`")
    assert len(missing.stderr.strip().splitlines()) == 1 and missing.stdout == ""


def test_interval_and_count_need_watch(watched):
    root, env = watched
    result = mlkit("status", "--count", "2", cwd=root, env=env)
    assert result.returncode == 2 and "--watch" in result.stderr and "Traceback" not in result.stderr
    too_fast = mlkit("status", "--watch", "--interval", "0", cwd=root, env=env)
    assert too_fast.returncode == 2 and "--interval" in too_fast.stderr


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_watched_column_is_a_query_of_the_dashboard(name):
    """The table reads the dashboard's own queries: a panel renamed or dropped fails here, not in front of a user."""
    from mlkit.commands.status import watched_queries
    from mlkit.render.dashboard import dashboard
    from mlkit.spec.loader import load

    spec = load(EXAMPLES / name / "mlkit.yaml")
    on_board = {target["expr"] for panel in dashboard(spec).get("panels", []) for target in panel.get("targets", [])}
    for api in [a for a in spec.apis if a.kind == "realtime"]:  # the runtime's metrics, or for an engine API vLLM's (jobs have no row)
        queries = watched_queries(spec, api)
        assert None not in queries.values() and set(queries.values()) <= on_board, (api.name, queries)
        assert all(("vllm:" in q or "http_requests_total" in q) == (api.engine is not None) for q in queries.values()), (api.name, queries)
