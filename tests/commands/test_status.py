"""`mlkit status` shows each API's last cold start from what the cluster recorded of its newest pod,
run as a user runs it: the real CLI in a subprocess, the Kubernetes API emulator as the cluster
(through a kubeconfig context), pods and events written as a scheduler and kubelet write them."""

from __future__ import annotations

import json

import httpx
import pytest

from mlkit.cluster import rollout
from mlkit.cluster.client import Cluster, Credentials
from mlkit.spec.loader import load
from tests.commands import test_operate
from tests.conftest import mlkit

proj = test_operate.proj  # the fixture, shared: pytest finds it by this module-level name

NS = "ops-demo"
IMAGE = "123456789012.dkr.ecr.us-west-2.amazonaws.com/ops-demo:sentiment-0a1b2c"


@pytest.fixture
def deployed(proj, k8s):
    """test_operate's project (sentiment and spam, reached through a kubeconfig context), its manifests on the emulator."""
    root, env = proj
    spec = load(root / "mlkit.yaml")
    cluster = Cluster(Credentials(server=k8s.url))
    try:
        rollout.apply(cluster, spec, rollout.load_manifests(root, spec), lambda _: None)
    finally:
        cluster.close()
    return root, env


def selector(k8s, api: str) -> dict:
    return next(d for d in k8s.objects("deployments") if d["metadata"]["name"] == api)["spec"]["selector"]["matchLabels"]


def pod(name: str, labels: dict, created: str, conditions: dict, init: dict, predictor: dict) -> dict:
    """A pod as the API server, scheduler and kubelet leave it (the fields of a Kubernetes 1.30 pod's status)."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels, "creationTimestamp": created, "uid": f"uid-{name}"},
        "spec": {"nodeName": "ip-10-0-1-23.us-west-2.compute.internal", "containers": [{"name": "predictor", "image": IMAGE}]},
        "status": {
            "phase": "Running" if conditions.get("Initialized", (None, "False"))[1] == "True" else "Pending",
            "conditions": [
                {"type": kind, "status": state, "lastProbeTime": None, "lastTransitionTime": when}
                | ({} if state == "True" else {"reason": "ContainersNotReady"})
                for kind, (when, state) in conditions.items()
            ],
            "hostIP": "10.0.1.23", "podIP": "10.0.1.77", "startTime": conditions["PodScheduled"][0], "qosClass": "Burstable",
            "initContainerStatuses": [
                {"name": "fetch-model", "image": "amazon/aws-cli:2", "imageID": "", "ready": init.get("ready", False), "restartCount": 0, "started": False,
                 "state": init["state"]},
            ],
            "containerStatuses": [
                {"name": "predictor", "image": IMAGE, "imageID": "", "ready": predictor.get("ready", False), "restartCount": 0,
                 "started": predictor.get("ready", False), "state": predictor["state"]},
            ],
        },
    }


def event(name: str, pod_name: str, reason: str, field_path: str, when: str, message: str) -> dict:
    """A kubelet event as the core/v1 Event it writes (eventTime empty, first/lastTimestamp set)."""
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": NS},
        "involvedObject": {"kind": "Pod", "namespace": NS, "name": pod_name, "uid": f"uid-{pod_name}", "apiVersion": "v1", "fieldPath": field_path},
        "reason": reason, "message": message, "type": "Normal", "count": 1,
        "source": {"component": "kubelet", "host": "ip-10-0-1-23.us-west-2.compute.internal"},
        "firstTimestamp": when, "lastTimestamp": when, "eventTime": None, "reportingComponent": "kubelet", "reportingInstance": "ip-10-0-1-23",
    }


def post(k8s, plural: str, body: dict) -> None:
    response = httpx.post(f"{k8s.url}/api/v1/namespaces/{NS}/{plural}", json=body)
    assert response.status_code < 300, response.text


READY = {"ready": True, "state": {"running": {"startedAt": "2026-11-29T12:00:58Z"}}}
DONE = {"ready": True, "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2026-11-29T12:00:05Z",
                                                 "finishedAt": "2026-11-29T12:00:40Z"}}}


def test_status_shows_the_newest_pods_cold_start(deployed, k8s):
    root, env = deployed
    labels = selector(k8s, "sentiment")
    # An older pod of sentiment, long ready: not the last cold start.
    post(k8s, "pods", pod("sentiment-5d8c-old", labels, "2026-11-29T09:00:00Z", {
        "PodScheduled": ("2026-11-29T09:00:01Z", "True"), "Initialized": ("2026-11-29T09:00:20Z", "True"), "Ready": ("2026-11-29T09:00:30Z", "True"),
    }, DONE, READY))
    post(k8s, "pods", pod("sentiment-7f9b-x2", labels, "2026-11-29T12:00:00Z", {
        "PodReadyToStartContainers": ("2026-11-29T12:00:04Z", "True"),
        "Initialized": ("2026-11-29T12:00:41Z", "True"),
        "Ready": ("2026-11-29T12:01:12Z", "True"),
        "ContainersReady": ("2026-11-29T12:01:12Z", "True"),
        "PodScheduled": ("2026-11-29T12:00:01Z", "True"),
    }, DONE, READY))
    for i, (reason, path, when, message) in enumerate([
        ("Scheduled", "", "2026-11-29T12:00:01Z", "Successfully assigned ops-demo/sentiment-7f9b-x2 to ip-10-0-1-23"),
        ("Pulled", "spec.initContainers{fetch-model}", "2026-11-29T12:00:04Z", 'Successfully pulled image "amazon/aws-cli:2" in 2.9s (2.9s including waiting)'),
        ("Pulling", "spec.containers{predictor}", "2026-11-29T12:00:41Z", f'Pulling image "{IMAGE}"'),
        ("Pulled", "spec.containers{predictor}", "2026-11-29T12:00:57Z", f'Successfully pulled image "{IMAGE}" in 15.6s (15.6s '
                                                                         'including waiting). Image size: 912345678 bytes.'),
        ("Started", "spec.containers{predictor}", "2026-11-29T12:00:58Z", "Started container predictor"),
    ]):
        post(k8s, "events", event(f"sentiment-7f9b-x2.{i}", "sentiment-7f9b-x2", reason, path, when, message))
    # spam's newest pod is still fetching its model: scheduled, nothing after.
    post(k8s, "pods", pod("spam-66f1-a1", selector(k8s, "spam"), "2026-11-29T12:05:00Z", {
        "PodReadyToStartContainers": ("2026-11-29T12:05:03Z", "True"),
        "Initialized": ("2026-11-29T12:05:00Z", "False"),
        "Ready": ("2026-11-29T12:05:00Z", "False"),
        "ContainersReady": ("2026-11-29T12:05:00Z", "False"),
        "PodScheduled": ("2026-11-29T12:05:02Z", "True"),
    }, {"state": {"running": {"startedAt": "2026-11-29T12:05:04Z"}}}, {"state": {"waiting": {"reason": "PodInitializing"}}}))

    result = mlkit("status", "--json", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    rows = {r["api"]: r for r in json.loads(result.stdout)["apis"]}
    assert rows["sentiment"]["cold_start"] == {
        "pod": "sentiment-7f9b-x2", "created": "2026-11-29T12:00:00Z",
        "scheduled_s": 1.0, "initialized_s": 41.0, "image_pulled_s": 57.0, "started_s": 58.0, "ready_s": 72.0,
    }
    assert rows["spam"]["cold_start"] == {
        "pod": "spam-66f1-a1", "created": "2026-11-29T12:05:00Z",
        "scheduled_s": 2.0, "initialized_s": None, "image_pulled_s": None, "started_s": None, "ready_s": None,
    }

    table = mlkit("status", cwd=root, env=env)
    assert table.returncode == 0, table.stderr
    lines = {line.split()[0]: line for line in table.stdout.splitlines()}
    assert "LAST COLD START" in lines["API"]
    assert "ready in 72s (scheduled 1.0s, init done 41s, image pulled 57s, started 58s)" in lines["sentiment"]
    assert "not ready yet (scheduled 2.0s)" in lines["spam"]


def test_a_pod_whose_events_expired_shows_what_its_status_keeps(deployed, k8s):
    root, env = deployed
    post(k8s, "pods", pod("sentiment-7f9b-x3", selector(k8s, "sentiment"), "2026-11-29T12:00:00Z", {
        "Initialized": ("2026-11-29T12:00:41Z", "True"), "Ready": ("2026-11-29T12:01:12Z", "True"), "PodScheduled": ("not a time", "True"),
    }, DONE, READY))
    result = mlkit("status", "--json", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    rows = {r["api"]: r for r in json.loads(result.stdout)["apis"]}
    assert rows["spam"]["cold_start"] is None, "no pods: no cold start to show"
    start = rows["sentiment"]["cold_start"]
    assert (start["scheduled_s"], start["initialized_s"], start["image_pulled_s"], start["started_s"], start["ready_s"]) == (None, 41.0, None, 58.0, 72.0)


def test_status_shows_what_the_cluster_holds_escaped(deployed, k8s):
    """A Deployment's condition time or a Service's hostname is the cluster's text: an ESC sequence in it is shown, not obeyed."""
    root, env = deployed
    status = {"status": {"conditions": [{"type": "Progressing", "status": "True", "lastUpdateTime": "2026\x1b]0;owned\x07"}]}}
    response = httpx.patch(
        f"{k8s.url}/apis/apps/v1/namespaces/{NS}/deployments/sentiment/status", json=status, headers={"Content-Type": "application/merge-patch+json"}
    )
    assert response.status_code < 300, response.text
    table = mlkit("status", cwd=root, env=env)
    assert table.returncode == 0, table.stderr
    assert "2026\\x1b]0;owned\\x07" in table.stdout and "\x1b" not in table.stdout
