"""Applying, pruning, rolling out and removing APIs against a local Kubernetes API emulator."""

from __future__ import annotations

import base64
import threading
import time

import pytest

from mlkit.cluster import rollout
from mlkit.cluster.kinds import by_name
from mlkit.errors import ToolError
from mlkit.render import wake
from mlkit.render.infra import render
from mlkit.spec.loader import loads

SPEC = """
project: ops-demo
cloud: aws
region: us-east-1
cluster: {existing: {name: prod, context: test}}
apis:
  - {name: sentiment, predictor: predictor.py:Predictor, model: s3://models-m/sentiment/, api_keys: true}
  - {name: spam, predictor: predictor.py:Predictor, model: s3://models-m/spam/}
"""


def project(tmp_path, text=SPEC):
    spec = loads(text)
    for rel, content in render(spec).items():
        if rel.startswith("infra/k8s/"):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(content)
    return spec


def lines():
    out: list[str] = []
    return out, out.append


def test_apply_creates_every_object_labelled_and_reports_changed_deployments(tmp_path, cluster, k8s):
    spec = project(tmp_path)
    log, say = lines()
    applied = rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), say)
    assert sorted(d["metadata"]["name"] for d in applied.changed_deployments) == ["sentiment", "spam"]
    deployments = k8s.objects("deployments")
    assert {d["metadata"]["name"] for d in deployments} == {"sentiment", "spam"}
    assert all(d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlkit" for d in deployments)
    assert {o["metadata"]["name"] for o in k8s.objects("scaledobjects")} == {"sentiment", "spam"}
    assert [o["metadata"]["name"] for o in k8s.objects("namespaces")] == ["ops-demo"]

    again = rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), say)
    assert again.changed_deployments == [], "an unchanged Deployment must not wait for a rollout"

    changed = project(tmp_path, SPEC.replace("s3://models-m/spam/", "s3://models-m/spam-v2/"))
    third = rollout.apply(cluster, changed, rollout.load_manifests(tmp_path, changed), say)
    assert [d["metadata"]["name"] for d in third.changed_deployments] == ["spam"]


def test_api_key_secret_is_made_once_and_never_overwritten(tmp_path, cluster, k8s):
    spec = project(tmp_path)
    _, say = lines()
    first = rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), say)
    key = first.new_keys["sentiment"]
    secret = cluster.get(by_name("Secret"), "ops-demo", "sentiment-api-keys")
    assert base64.b64decode(secret["data"]["keys"]).decode().split() == [key]
    second = rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), say)
    assert second.new_keys == {}
    assert cluster.get(by_name("Secret"), "ops-demo", "sentiment-api-keys")["data"] == secret["data"]


def test_objects_of_an_api_removed_from_the_spec_are_pruned(tmp_path, cluster, k8s):
    spec = project(tmp_path)
    _, say = lines()
    rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), say)
    # Someone else's object in the namespace, without mlkit's labels, is never touched.
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "team-notes", "namespace": "ops-demo"}, "data": {}})
    smaller = SPEC.replace("  - {name: spam, predictor: predictor.py:Predictor, model: s3://models-m/spam/}\n", "")
    import shutil

    shutil.rmtree(tmp_path / "infra")
    spec2 = project(tmp_path, smaller)
    log, say = lines()
    applied = rollout.apply(cluster, spec2, rollout.load_manifests(tmp_path, spec2), say)
    pruned = {(kind, name) for kind, _, name in applied.pruned}
    assert {("Deployment", "spam"), ("ScaledObject", "spam"), ("Service", "spam"), ("ConfigMap", "spam")} <= pruned
    assert {d["metadata"]["name"] for d in k8s.objects("deployments")} == {"sentiment"}
    assert "team-notes" in {c["metadata"]["name"] for c in k8s.objects("configmaps")}
    assert any("pruned Deployment spam" in line for line in log)


def play_deployment_controller(cluster, namespace, name, replicas=2, steps=3, delay=0.3):
    """What the Deployment controller and kubelets would do: bring the new version up step by step."""
    kind = by_name("Deployment")

    def patch(body):
        cluster.http.patch(kind.path(namespace, name), json=body, headers={"Content-Type": "application/merge-patch+json"})

    def run():
        patch({"spec": {"replicas": replicas}})  # what KEDA's HPA would set
        generation = cluster.get(kind, namespace, name)["metadata"]["generation"]
        for ready in range(steps):
            time.sleep(delay)
            available = min(ready + 1, replicas)
            patch(
                {
                    "status": {
                        "observedGeneration": generation,
                        "replicas": replicas,
                        "updatedReplicas": replicas,
                        "availableReplicas": available,
                        "readyReplicas": available,
                    }
                }
            )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_wait_follows_the_rollout_to_the_end(tmp_path, cluster, k8s):
    spec = project(tmp_path)
    _, quiet = lines()
    applied = rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), quiet)
    threads = [play_deployment_controller(cluster, "ops-demo", n) for n in ("sentiment", "spam")]
    log, say = lines()
    rollout.wait(cluster, spec, applied.changed_deployments, timeout_s=20, say=say, poll_s=0.1)
    for t in threads:
        t.join()
    assert any("sentiment: 1/2 updated replicas available" in line for line in log)
    assert any("sentiment: 2/2 ready" in line for line in log) and any("spam: 2/2 ready" in line for line in log)


def test_a_stuck_rollout_shows_the_pods_events_and_last_log_lines(tmp_path, cluster, k8s):
    spec = project(tmp_path)
    _, quiet = lines()
    applied = rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), quiet)
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sentiment-7d9f-x2", "namespace": "ops-demo", "labels": {"mlkit.dev/api": "sentiment", "mlkit.dev/track": "stable"}},
        "status": {"phase": "Running", "containerStatuses": [{"name": "predictor", "ready": False}]},
    }
    k8s.emulator["post /api/v1/namespaces/ops-demo/pods"]  # declare nothing; create through the API like a ReplicaSet would
    cluster.http.post("/api/v1/namespaces/ops-demo/pods", json=pod)
    cluster.http.post(
        "/api/v1/namespaces/ops-demo/events",
        json={
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": "e1", "namespace": "ops-demo"},
            "involvedObject": {"kind": "Pod", "name": "sentiment-7d9f-x2"},
            "type": "Warning",
            "reason": "Unhealthy",
            "message": "Readiness probe failed\x1b[2J: HTTP probe failed with statuscode: 503",  # an escape: shown, not obeyed
        },
    )
    (
        k8s.emulator["get /api/v1/namespaces/ops-demo/pods/sentiment-7d9f-x2/log"]
        << b'{"level":"error","msg":"predictor.py: Predictor(config, model_dir) failed: FileNotFoundError: weights.json"}\n\x1b]0;owned\x07\n'
    )
    with pytest.raises(ToolError) as caught:
        rollout.wait(
            cluster, spec, [d for d in applied.changed_deployments if d["metadata"]["name"] == "sentiment"], timeout_s=0.5, say=lambda _: None, poll_s=0.1
        )
    message = str(caught.value)
    assert "rollout of sentiment did not finish in 0.5 s" in message
    assert "pod sentiment-7d9f-x2 (Running)" in message
    assert "Readiness probe failed\\x1b[2J: HTTP probe failed" in message
    assert "FileNotFoundError: weights.json" in message and "\\x1b]0;owned\\x07" in message and "\x1b" not in message


def test_remove_one_api_leaves_the_others(tmp_path, cluster, k8s):
    spec = project(tmp_path)
    _, say = lines()
    rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), say)
    removed = rollout.remove(cluster, spec, say, api="sentiment")
    assert ("Secret", "sentiment-api-keys") in removed and ("Deployment", "sentiment") in removed
    assert {d["metadata"]["name"] for d in k8s.objects("deployments")} == {"spam"}
    assert [o["metadata"]["name"] for o in k8s.objects("namespaces")] == ["ops-demo"]


def test_a_scale_to_zero_api_applies_its_route_and_front_and_prunes_them_when_it_stops(tmp_path, cluster, k8s):
    """The InterceptorRoute goes before the ScaledObject that names it; the API's Service leads to the
    project's wake nginx, and the route and nginx go again once min_replicas is 1."""
    zero = SPEC.replace("model: s3://models-m/spam/}", "model: s3://models-m/spam/, autoscaling: {min_replicas: 0}}")
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "mlkit-system"}})
    spec = project(tmp_path, zero)
    _, say = lines()
    rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), say)
    assert [o["metadata"]["name"] for o in k8s.objects("interceptorroutes")] == ["spam"]
    spam = next(s for s in k8s.objects("services") if s["metadata"]["name"] == "spam")
    assert spam["spec"]["selector"]["app.kubernetes.io/name"] == wake.FALLBACK  # its front, which names it to the interceptor
    assert [s for s in k8s.objects("services") if s["metadata"]["namespace"] == "mlkit-system"] == []
    assert wake.FALLBACK in {d["metadata"]["name"] for d in k8s.objects("deployments")}  # the answer past the cold-start bound
    order = [r.split("?")[0] for r in k8s.requests() if r.startswith("PATCH ") and ("/interceptorroutes/" in r or "/scaledobjects/spam" in r)]
    assert order[0].endswith("/interceptorroutes/spam") and order[1].endswith("/scaledobjects/spam"), order

    import shutil

    shutil.rmtree(tmp_path / "infra")
    back = project(tmp_path)
    rollout.apply(cluster, back, rollout.load_manifests(tmp_path, back), say)
    assert k8s.objects("interceptorroutes") == []
    assert [s for s in k8s.objects("services") if s["metadata"]["namespace"] == "mlkit-system"] == []
    assert {s["metadata"]["name"] for s in k8s.objects("services")} == {"sentiment", "spam"}
    assert {d["metadata"]["name"] for d in k8s.objects("deployments")} == {"sentiment", "spam"}  # the fallback went too
