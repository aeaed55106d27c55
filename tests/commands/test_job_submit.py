"""`mlkit job submit | status | list | cancel` as a user runs them: the real CLI, the Kubernetes API
emulator as the cluster, moto as S3. The test plays the Job controller: it runs each shard's worker as
the Job's pod would (`python -m mlkit_runtime.jobs` with the pod's command and environment), one of
them SIGKILLed mid-shard and run again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import boto3
import httpx
import kubernetes_validate
import pytest

from mlkit.spec.loader import load
from tests.conftest import assert_one_line_error, aws_env, emulator_kubeconfig, mlkit
from tests.render.test_k8s import KUBERNETES_VERSION
from tests.runtime.conftest import PREDICTORS

SPEC = """\
project: jobs-demo
cloud: aws
region: us-west-2
cluster: {existing: {name: prod-eks, context: emulator}}
apis:
  - name: scorer
    kind: batch
    predictor: predictor.py:Predictor
    model: s3://team-models/scorer/v1/
    config: {poison: [777]}
    batch: {shard_size: 125, batch_size: 16, workers: 3, on_error: skip, retries: 2, fatal_errors: [MemoryError], output: "s3://team-jobs/runs/"}
"""
NS = "jobs-demo"
RUNS = "runs/"  # the API's batch.output in team-jobs: what its pods may write
ITEMS = 1000


@pytest.fixture
def proj(tmp_path, k8s, moto):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "mlkit.yaml").write_text(SPEC)
    shutil.copy(PREDICTORS / "scorer.py", root / "predictor.py")
    (root / "requirements.txt").write_text("")
    (root / "items.jsonl").write_text("".join(json.dumps({"x": i}) + "\n" for i in range(ITEMS)))
    (root / ".mlkit").mkdir()
    # What `mlkit apply --only apis` records once it has pushed the API's image.
    (root / ".mlkit/deploy.json").write_text(json.dumps(
        {"aws_account_id": "123456789012", "images": {"scorer": "0123abcd"}, "models": {}, "revisions": {}, "pins": {}}
    ))
    env = aws_env(moto) | {"KUBECONFIG": str(emulator_kubeconfig(tmp_path / "kubeconfig", k8s.url))}
    boto3.client("s3", region_name="us-west-2", endpoint_url=moto, aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(
        Bucket="team-jobs", CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    return root, env


def pod(root, env, job: dict, index: int, **more_config) -> subprocess.Popen:
    """The Job's pod for one index, as a process: its command and environment, the project as /app; `more_config`
    is added to the API's config for this pod only."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    pod_env = {e["name"]: e["value"] for e in container["env"]}
    config = load(root / "mlkit.yaml").apis[0].config | more_config  # what the API's ConfigMap holds, mounted where MLKIT_CONFIG points
    pod_env |= {"MLKIT_PREDICTOR": str(root / pod_env["MLKIT_PREDICTOR"]), "MLKIT_MODEL_DIR": str(root), "MLKIT_CONFIG": json.dumps(config),
                "JOB_COMPLETION_INDEX": str(index), "HOME": str(root)}
    command = [sys.executable if c == "python" else c for c in container["command"]] + ["--checkpoint-s", "0"]
    return subprocess.Popen(command, env=os.environ | env | pod_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def s3_objects(env, prefix: str) -> dict[str, bytes]:
    """The objects under runs/<prefix> (the spec's batch.output), keyed without runs/."""
    s3 = boto3.client("s3", region_name="us-west-2", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing", aws_secret_access_key="testing")
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="team-jobs", Prefix=RUNS + prefix)
    return {o["Key"][len(RUNS):]: s3.get_object(Bucket="team-jobs", Key=o["Key"])["Body"].read() for page in pages for o in page.get("Contents", [])}


def test_submit_runs_shards_with_workers_survives_a_kill_and_status_matches_the_outputs(proj, k8s):
    root, env = proj
    submitted = mlkit("job", "submit", "scorer", "--input", "@items.jsonl", "--output", "s3://team-jobs/runs/run1", "--json", cwd=root, env=env)
    assert submitted.returncode == 0, submitted.stderr
    out = json.loads(submitted.stdout)
    assert (out["items"], out["shards"]) == (ITEMS, 8)
    [job] = [j for j in k8s.objects("jobs") if j["metadata"]["name"] == out["id"]]
    kubernetes_validate.validate({"apiVersion": "batch/v1", "kind": "Job", **{k: v for k, v in job.items() if k not in ("apiVersion", "kind", "status")},
                                  "metadata": {k: v for k, v in job["metadata"].items() if k in ("name", "namespace", "labels", "annotations")}},
                                 KUBERNETES_VERSION, strict=True)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"]) == ("Indexed", 8, 3, 2)
    assert spec["template"]["spec"]["containers"][0]["image"] == "123456789012.dkr.ecr.us-west-2.amazonaws.com/jobs-demo:scorer-0123abcd"
    assert sorted(k for k in s3_objects(env, "run1/shards/")) == [f"run1/shards/{i:05d}.jsonl" for i in range(8)]

    # Three workers at a time, as parallelism says; shard 2's pod is SIGKILLed mid-shard and replaced.
    # The victim sleeps 0.2 s a batch (eight batches) so that the kill lands mid-shard: at full speed a shard of
    # 125 items could finish between two looks at its progress (a CI run saw progress.json listed, then gone).
    victim = pod(root, env, job, 2, sleep_s=0.2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not s3_objects(env, "run1/work/00002/progress.json"):
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not s3_objects(env, "run1/done/00002.json")
    for wave in ([0, 1, 2], [3, 4, 5], [6, 7]):
        procs = [pod(root, env, job, i) for i in wave]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err

    results = [json.loads(line) for key, body in s3_objects(env, "run1/results/").items() for line in body.splitlines()]
    errors = [json.loads(line) for key, body in s3_objects(env, "run1/errors/").items() for line in body.splitlines()]
    assert sorted(r["index"] for r in results) == [i for i in range(ITEMS) if i != 777], "every item's result exactly once"
    assert errors == [{"index": 777, "line": 778, "error": "ValueError: x=777 is poison"}]

    status = mlkit("job", "status", "scorer", out["id"], "--json", cwd=root, env=env)
    assert status.returncode == 0, status.stderr
    figures = json.loads(status.stdout)
    assert (figures["shards_done"], figures["shards_failed"], figures["shards_pending"]) == (8, 0, 0)
    assert (figures["items_done"], figures["items_failed"]) == (len(results), len(errors)) == (ITEMS - 1, 1)
    listed = mlkit("job", "list", "scorer", "--json", cwd=root, env=env)
    assert [r["id"] for r in json.loads(listed.stdout)] == [out["id"]]


def test_a_fatal_item_fails_its_shard_with_the_exit_code_the_job_fails_the_index_on(proj, k8s):
    root, env = proj
    spec = root / "mlkit.yaml"
    spec.write_text(spec.read_text().replace("config: {poison: [777]}", "config: {fatal: [5]}"))
    submitted = mlkit("job", "submit", "--input", "items.jsonl", "--output", "s3://team-jobs/runs/fatal", cwd=root, env=env)
    assert submitted.returncode == 0, submitted.stderr
    [job] = k8s.objects("jobs")
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    p = pod(root, env, job, 0)
    _, err = p.communicate(timeout=120)
    assert rule["action"] == "FailIndex" and p.returncode in rule["onExitCodes"]["values"], err
    assert "MemoryError: x=5 does not fit" in err


def test_cancel_deletes_the_job_and_keeps_finished_shards(proj, k8s):
    root, env = proj
    job_id = mlkit("job", "submit", "--input", "items.jsonl", "--output", "s3://team-jobs/runs/c", cwd=root, env=env).stdout.strip()
    [job] = k8s.objects("jobs")
    done = pod(root, env, job, 0)
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    # The Job controller's pod for index 0, with what the worker wrote to stderr as its log.
    name = f"{job_id}-0-abcde"
    httpx.post(f"{k8s.url}/api/v1/namespaces/{NS}/pods", json={"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": NS, "labels": job["spec"]["template"]["metadata"]["labels"],
        "annotations": {"batch.kubernetes.io/job-completion-index": "0"}}})
    k8s.emulator[f"get /api/v1/namespaces/{NS}/pods/{name}/log"] << err.encode()
    logs = mlkit("job", "logs", "scorer", job_id, cwd=root, env=env)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines()[-1].startswith("[shard 0] shard 0: done, 125 results, 0 skipped"), logs.stdout
    cancelled = mlkit("job", "cancel", "scorer", job_id, cwd=root, env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "1 of 8 shards were done and stay in s3://team-jobs/runs/c/results/" in cancelled.stderr
    assert k8s.objects("jobs") == []
    assert list(s3_objects(env, "c/results/")) == ["c/results/00000.jsonl"]
    assert_one_line_error(mlkit("job", "status", "scorer", job_id, cwd=root, env=env), f"no job {job_id} of scorer")


def test_bad_input_is_one_line_before_any_job_is_created(proj, k8s):
    root, env = proj
    assert_one_line_error(mlkit("job", "submit", "--input", "nope.jsonl", "--output", "s3://team-jobs/runs/x", cwd=root, env=env), "no such file or folder")
    assert_one_line_error(mlkit("job", "submit", "--input", "s3://team-jobs/none.jsonl", "--output", "s3://team-jobs/runs/x", cwd=root, env=env),
                          "--input s3://team-jobs/none.jsonl: no such file")
    assert_one_line_error(mlkit("job", "submit", "--input", "items.jsonl", "--output", "/tmp/out", cwd=root, env=env), "give s3://BUCKET/PREFIX")
    assert_one_line_error(mlkit("job", "submit", "--input", "items.jsonl", "--output", "gs://b/p", cwd=root, env=env), "write to s3:// buckets")
    assert_one_line_error(mlkit("job", "submit", "--input", str(root), "--output", "s3://team-jobs/runs/x", cwd=root, env=env), "upload it to a bucket")
    assert k8s.objects("jobs") == [] and not s3_objects(env, "x/")
    first = mlkit("job", "submit", "--input", "items.jsonl", "--output", "s3://team-jobs/runs/x", cwd=root, env=env)
    assert first.returncode == 0, first.stderr
    assert_one_line_error(mlkit("job", "submit", "--input", "items.jsonl", "--output", "s3://team-jobs/runs/x", cwd=root, env=env),
                          f"already holds job {first.stdout.strip()}'s results", "--overwrite")
    assert len(k8s.objects("jobs")) == 1
    (root / ".mlkit/deploy.json").unlink()
    assert_one_line_error(mlkit("job", "submit", "--input", "items.jsonl", "--output", "s3://team-jobs/runs/y", cwd=root, env=env), "has no image yet")


def test_without_output_the_job_goes_under_the_apis_grant_and_one_outside_it_is_refused(proj, k8s):
    root, env = proj
    submitted = mlkit("job", "submit", "--input", "items.jsonl", "--json", cwd=root, env=env)
    assert submitted.returncode == 0, submitted.stderr
    answer = json.loads(submitted.stdout)
    assert answer["output"] == f"s3://team-jobs/runs/{answer['id']}/"
    assert f"{answer['id']}/job.json" in s3_objects(env, f"{answer['id']}/")
    job = k8s.objects("jobs")[0]
    assert job["metadata"]["annotations"]["mlkit.dev/job-output"] == answer["output"]
    # Outside batch.output the pods would meet AccessDenied on a real cluster: refused before anything is written.
    for outside in ("s3://team-jobs/other/x", "s3://team-jobs/runsX/x", "s3://elsewhere/runs/x", "s3://team-jobs/runs/../x"):
        assert_one_line_error(mlkit("job", "submit", "--input", "items.jsonl", "--output", outside, cwd=root, env=env),
                              f"--output {outside}: scorer's pods may write only under s3://team-jobs/runs/", "batch.output")
    # A prefix of files is read by the pods themselves: outside what they may read, refused too.
    assert_one_line_error(mlkit("job", "submit", "--input", "s3://team-jobs/images/", cwd=root, env=env),
                          "--input s3://team-jobs/images: scorer's pods may read only the model bucket and s3://team-jobs/runs/")
    assert len(k8s.objects("jobs")) == 1 and set(s3_objects(env, "")) == set(s3_objects(env, f"{answer['id']}/"))


def test_the_default_grant_is_the_model_buckets_jobs_prefix(proj, k8s):
    root, env = proj
    spec = root / "mlkit.yaml"
    spec.write_text(spec.read_text().replace(', output: "s3://team-jobs/runs/"', ""))
    assert_one_line_error(mlkit("job", "submit", "--input", "items.jsonl", "--output", "s3://team-jobs/runs/x", cwd=root, env=env),
                          "may write only under s3://jobs-demo-models-123456789012/jobs/scorer/")
    assert k8s.objects("jobs") == []


def test_an_item_the_predictors_input_refuses_is_one_line_before_any_job_or_shard(proj, k8s):
    root, env = proj
    form = "\n\nfrom pydantic import BaseModel as _Model\n\n\nclass _Input(_Model):\n    x: int\n\n\nPredictor.Input = _Input\n"
    (root / "predictor.py").write_text((root / "predictor.py").read_text() + form)
    lines = (root / "items.jsonl").read_text().splitlines()
    lines[500] = '{"x": "five hundred"}'
    (root / "items.jsonl").write_text("\n".join(lines) + "\n")
    result = mlkit("job", "submit", "--input", "items.jsonl", "--output", "s3://team-jobs/runs/f", cwd=root, env=env)
    assert_one_line_error(result, "line 501 (item 500) does not fit predictor.py:Predictor's Input: x: Input should be a valid integer")
    assert k8s.objects("jobs") == [] and s3_objects(env, "f") == {}
    # Where the predictor cannot be imported on this machine (its packages live in the image), the items go unchecked, said once.
    (root / "predictor.py").write_text("import package_only_in_the_image\n" + (root / "predictor.py").read_text())
    result = mlkit("job", "submit", "--input", "items.jsonl", "--output", "s3://team-jobs/runs/f", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    assert "note: the items are not checked against the predictor's Input here (each pod checks them): " in result.stderr
    assert len(k8s.objects("jobs")) == 1
    assert json.loads(s3_objects(env, "f/job.json")["f/job.json"])["checked"] is False  # so the pods' workers check each item
