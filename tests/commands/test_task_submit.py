"""`mlkit job submit` for a `kind: task` API, on the Kubernetes API emulator: one Job, the config in its command."""

from __future__ import annotations

import json

import pytest

from tests.conftest import assert_one_line_error, emulator_kubeconfig, mlkit

SPEC = """\
project: etl-demo
cloud: aws
region: us-west-2
cluster: {existing: {name: prod-eks, context: emulator}}
apis:
  - name: nightly
    kind: task
    predictor: tasks.py:Refresh
    model: s3://team-models/refresh/v1/
    config: {table: reviews}
"""


@pytest.fixture
def proj(tmp_path, k8s):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "mlkit.yaml").write_text(SPEC)
    (root / "tasks.py").write_text("class Refresh:\n    def __init__(self, config, model_dir):\n        pass\n\n    def run(self):\n        pass\n")
    (root / ".mlkit").mkdir()
    (root / ".mlkit/deploy.json").write_text(json.dumps(
        {"aws_account_id": "123456789012", "images": {"nightly": "0123abcd"}, "models": {}, "revisions": {}, "pins": {}}
    ))
    return root, {"KUBECONFIG": str(emulator_kubeconfig(tmp_path / "kubeconfig", k8s.url))}


def test_a_task_is_submitted_as_one_job_with_its_config(proj, k8s):
    root, env = proj
    submitted = mlkit("job", "submit", "--config", '{"table": "orders"}', "--json", cwd=root, env=env)
    assert submitted.returncode == 0, submitted.stderr
    answer = json.loads(submitted.stdout)
    assert answer["kind"] == "task" and answer["id"].startswith("nightly-")
    [job] = k8s.objects("jobs")
    assert job["metadata"]["name"] == answer["id"] and job["metadata"]["labels"]["mlkit.dev/api"] == "nightly"
    assert job["spec"]["completions"] == 1 and job["spec"]["backoffLimit"] == 0
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "mlkit_runtime.jobs.task", "--config", '{"table":"orders"}']
    assert container["image"] == "123456789012.dkr.ecr.us-west-2.amazonaws.com/etl-demo:nightly-0123abcd"
    listed = mlkit("job", "list", "nightly", "--json", cwd=root, env=env)
    assert listed.returncode == 0 and [r["id"] for r in json.loads(listed.stdout)] == [answer["id"]], listed.stderr


def test_a_tasks_batch_flags_and_bad_config_are_one_line_before_any_job(proj, k8s):
    root, env = proj
    assert_one_line_error(mlkit("job", "submit", "--input", "x.jsonl", cwd=root, env=env), "--input: nightly is a task", "give only --config")
    assert_one_line_error(mlkit("job", "submit", "--workers", "3", cwd=root, env=env), "--workers: nightly is a task")
    assert_one_line_error(mlkit("job", "submit", "--config", "[1]", cwd=root, env=env), "--config: must be a JSON object")
    big = json.dumps({"rows": "x" * 70_000})
    assert_one_line_error(mlkit("job", "submit", "--config", big, cwd=root, env=env), "a task's config travels in its Job, at most 65536 bytes")
    assert k8s.objects("jobs") == []


def unschedulable_pod(job_id: str) -> dict:
    """A pod of the run as the scheduler leaves it on a pool at zero: Pending, PodScheduled False."""
    message = "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/2 nodes are available.\x1b[2J"
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{job_id}-x7k2p", "namespace": "etl-demo", "labels": {"mlkit.dev/api": "nightly", "mlkit.dev/job": job_id}},
        "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]},
    }


def test_status_says_why_a_run_waits_and_watch_follows_it_to_the_end(proj, k8s):
    import os
    import subprocess
    import time

    from mlkit.cluster.client import Cluster, Credentials
    from mlkit.cluster.kinds import JOB
    from tests.conftest import REPO

    root, env = proj
    job_id = mlkit("job", "submit", cwd=root, env=env).stdout.strip()
    cluster = Cluster(Credentials(server=k8s.url, name="emulator"))
    try:
        cluster.http.post("/api/v1/namespaces/etl-demo/pods", json=unschedulable_pod(job_id))
        status = mlkit("job", "status", "nightly", job_id, "--json", cwd=root, env=env)
        assert status.returncode == 0, status.stderr
        shown = json.loads(status.stdout)
        assert shown["state"] == "running" and shown["pending_reason"].startswith(f"pod {job_id}-x7k2p cannot be scheduled yet: 0/2 nodes are available")
        assert "\x1b" not in shown["pending_reason"] and "autoscaler" in shown["pending_reason"]

        # --watch: one JSON line per change, until the Job says it is complete.
        watching = subprocess.Popen([str(REPO / ".venv/bin/python"), "-m", "mlkit", "job", "status", "nightly", job_id, "--watch", "--json",
                                     "--interval", "0.2"], cwd=root, env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        done = {"status": {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}}  # what the Job controller writes
        answer = cluster.http.patch(f"{JOB.path('etl-demo', job_id)}/status", json=done, headers={"Content-Type": "application/merge-patch+json"})
        assert answer.status_code < 300, answer.text
        out, err = watching.communicate(timeout=30)
    finally:
        cluster.close()
    assert watching.returncode == 0, err
    states = [json.loads(text)["state"] for text in out.splitlines()]
    assert states[0] == "running" and states[-1] == "complete" and len(states) == 2, out


def test_list_shows_the_schedules_runs_and_logs_finds_their_pods(proj, k8s):
    """A run of `task.schedule` as the CronJob controller makes it: the jobTemplate's labels, the CronJob as owner,
    a name of the controller's choosing, and pods labelled by the Job controller, not with an mlkit job id."""
    import httpx
    import yaml

    from mlkit.render.facts import Facts
    from mlkit.render.k8s import render
    from mlkit.spec.loader import loads

    root, env = proj
    submitted = mlkit("job", "submit", cwd=root, env=env).stdout.strip()
    spec = loads(SPEC + "    task: {schedule: '0 3 * * *'}\n")
    cron = yaml.safe_load(render(spec, Facts())["infra/k8s/nightly/cronjob.yaml"])
    template = cron["spec"]["jobTemplate"]
    run = "nightly-29412345"
    owner = {"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly", "uid": "1b2c", "controller": True}
    answer = httpx.post(f"{k8s.url}/apis/batch/v1/namespaces/etl-demo/jobs", json={
        "apiVersion": "batch/v1", "kind": "Job", "spec": template["spec"],
        "metadata": {"name": run, "namespace": "etl-demo", "labels": template["metadata"]["labels"], "ownerReferences": [owner],
                     "creationTimestamp": "2099-01-01T03:00:00Z"}})
    assert answer.status_code < 300, answer.text
    pod_name = f"{run}-q8x2z"
    pod_labels = template["spec"]["template"]["metadata"]["labels"] | {"batch.kubernetes.io/job-name": run}
    httpx.post(f"{k8s.url}/api/v1/namespaces/etl-demo/pods", json={
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod_name, "namespace": "etl-demo", "labels": pod_labels}})
    k8s.emulator[f"get /api/v1/namespaces/etl-demo/pods/{pod_name}/log"] << b"refreshed 1200 rows\n"

    listed = mlkit("job", "list", "nightly", "--json", cwd=root, env=env)
    assert listed.returncode == 0, listed.stderr
    assert [(r["id"], r["scheduled"]) for r in json.loads(listed.stdout)] == [(run, True), (submitted, False)]
    table = mlkit("job", "list", "nightly", cwd=root, env=env).stdout.splitlines()
    assert table[0].startswith(run) and table[0].endswith("(scheduled)") and not table[1].endswith("(scheduled)")
    logs = mlkit("job", "logs", "nightly", run, cwd=root, env=env)
    assert logs.returncode == 0 and logs.stdout.splitlines() == ["[shard ?] refreshed 1200 rows"], (logs.stdout, logs.stderr)
