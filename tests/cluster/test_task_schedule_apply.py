"""A `kind: task` API's schedule on the Kubernetes API emulator: `mlkit apply`'s rollout creates its CronJob,
updates it when the schedule changes, prunes it when the schedule goes, and `remove` deletes it with the API."""

from __future__ import annotations

import shutil

from mlkit.cluster import rollout
from mlkit.render.infra import render
from mlkit.spec.loader import loads

SPEC = """
project: etl-demo
cloud: aws
region: us-east-1
cluster: {existing: {name: prod, context: test}}
apis:
  - name: nightly
    kind: task
    predictor: tasks.py:Refresh
    model: s3://models-m/refresh/
    task: {schedule: '0 3 * * *'}
  - {name: spam, predictor: predictor.py:Predictor, model: s3://models-m/spam/}
"""


def project(tmp_path, text=SPEC):
    """infra/k8s as `mlkit render` writes it, afresh (a dropped file must not linger)."""
    spec = loads(text)
    shutil.rmtree(tmp_path / "infra", ignore_errors=True)
    for rel, content in render(spec).items():
        if rel.startswith("infra/k8s/"):
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(content)
    return spec


def apply(cluster, tmp_path, text=SPEC) -> list[str]:
    spec = project(tmp_path, text)
    log: list[str] = []
    rollout.apply(cluster, spec, rollout.load_manifests(tmp_path, spec), log.append)
    return log


def cronjobs(k8s) -> dict[str, dict]:
    return {c["metadata"]["name"]: c for c in k8s.objects("cronjobs")}


def test_apply_creates_updates_and_prunes_the_schedule(tmp_path, cluster, k8s):
    apply(cluster, tmp_path)
    [job] = cronjobs(k8s).values()
    assert job["spec"]["schedule"] == "0 3 * * *" and job["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "mlkit"
    assert job["spec"]["jobTemplate"]["metadata"]["labels"]["mlkit.dev/api"] == "nightly"

    apply(cluster, tmp_path, SPEC.replace("task: {schedule: '0 3 * * *'}", "task: {schedule: '@hourly', overlap: replace, time_zone: Europe/Berlin}"))
    job = cronjobs(k8s)["nightly"]
    assert (job["spec"]["schedule"], job["spec"]["concurrencyPolicy"], job["spec"]["timeZone"]) == ("@hourly", "Replace", "Europe/Berlin")

    log = apply(cluster, tmp_path, SPEC.replace("    task: {schedule: '0 3 * * *'}\n", ""))
    assert cronjobs(k8s) == {} and "pruned CronJob nightly: no longer under infra/k8s" in log
    # The task itself stays: its identity and settings, for `mlkit job submit`.
    assert "nightly" in {s["metadata"]["name"] for s in k8s.objects("serviceaccounts")}


def test_removing_the_api_deletes_its_schedule_and_leaves_the_others(tmp_path, cluster, k8s):
    apply(cluster, tmp_path)
    spec = loads(SPEC)
    removed = rollout.remove(cluster, spec, lambda line: None, api="nightly")
    assert ("CronJob", "nightly") in removed and cronjobs(k8s) == {}
    assert {d["metadata"]["name"] for d in k8s.objects("deployments")} == {"spam"}

    apply(cluster, tmp_path)
    smaller = SPEC.replace(SPEC[SPEC.index("  - name: nightly"):SPEC.index("  - {name: spam")], "")
    log = apply(cluster, tmp_path, smaller)
    assert cronjobs(k8s) == {} and "pruned CronJob nightly: no longer under infra/k8s" in log
