"""The pod contract for a batch job: the rendered Job's pod, run as the kubelet would (tests/deploy/kubelet.py)
from the API's real build context, against moto's S3, does one shard end to end.

What the control plane adds is given as it would be: the Job controller's JOB_COMPLETION_INDEX and the
credentials the EKS identity webhook injects for the ServiceAccount (moto's here). The job's files are laid
out by the CLI's own code (`prepare_job`, what `mlkit job submit` runs) under the API's default grant.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from mlkit.clouds import jobaccess
from mlkit.commands.job_inputs import items_of, prepare_job
from mlkit.render.jobs import render_job
from mlkit.spec.schema import BatchSpec
from tests.conftest import aws_env
from tests.deploy.kubelet import Pod

# base_python, image_venvs, pod_dir: the pod contract's fixtures (a world-readable pod folder, venvs made by the contexts'
# install.sh), imported for pytest to find by name.
from tests.deploy.test_pod_contract import Deployed, base_python, fetcher, image_venvs, pod_dir  # noqa: F401

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the kubelet stand-in needs Linux users and signals")
ITEMS = 100  # the example's shard_size: one shard


def job_files(s3, bucket: str, prefix: str) -> dict[str, bytes]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"][len(prefix):]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for page in pages for o in page.get("Contents", [])}


def run_job_pod(deployed: Deployed, job: dict, index: int, venvs, pods: Path, tmp_path: Path, moto: str) -> tuple[int, str]:
    folder = "infra/k8s/reviews/"
    docs = [d for path, text in deployed.rendered.items() if path.startswith(folder) for d in yaml.safe_load_all(text) if d]
    configmaps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    context = deployed.contexts["reviews"]
    root = Path(tempfile.mkdtemp(prefix="reviews-job-", dir=pods))
    root.chmod(0o755)
    pod = Pod(job, configmaps, {}, context, venvs(context), root, tmp_path / f"job-{index}.log", fetcher("aws"),
              injected={"JOB_COMPLETION_INDEX": str(index), "AWS_REGION": "us-west-2", **aws_env(moto)})
    try:
        pod.start()
        assert pod.proc is not None
        code = pod.proc.wait(timeout=120)
        return code, pod.output()
    finally:
        pod.kill()


def test_the_rendered_job_pod_runs_one_shard_end_to_end(request, tmp_path, s3, moto):
    if os.geteuid() != 0:
        pytest.skip("the pod's user (runAsUser 10001) over root-owned files needs root; CI containers and this machine run as root")
    deployed = Deployed("batch", tmp_path)
    spec, api = deployed.spec, deployed.spec.apis[0]
    bucket = jobaccess.model_bucket(spec, deployed.facts.aws_account_id)
    assert bucket == "batch-demo-models-123456789012"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    items = tmp_path / "items.jsonl"
    items.write_text("".join((deployed.root / "reviews.jsonl").read_text().splitlines(keepends=True)[:ITEMS]))
    job_id = "reviews-20261206-120000-abcdef"
    output = f"s3://{bucket}/{jobaccess.default_prefix('reviews')}{job_id}/"
    job = prepare_job(api, api.batch or BatchSpec(), items_of(str(items)), output, None, None, False, job_id)
    assert job.shards == 1
    manifest = yaml.safe_load(render_job(spec, api, deployed.facts, job_id, output, job.shards, 1))
    assert manifest["kind"] == "Job" and manifest["spec"]["completionMode"] == "Indexed"

    code, log = run_job_pod(deployed, manifest, 0, request.getfixturevalue("image_venvs"), request.getfixturevalue("pod_dir"), tmp_path, moto)
    assert code == 0, log
    files = job_files(s3, bucket, f"jobs/reviews/{job_id}/")
    results = [json.loads(line) for line in files["results/00000.jsonl"].splitlines()]
    errors = [json.loads(line) for line in files.get("errors/00000.jsonl", b"").splitlines()]
    assert sorted(r["index"] for r in results + errors) == list(range(ITEMS)), log
    assert all(r["result"]["label"] in ("positive", "negative") for r in results)
    marker = json.loads(files["done/00000.json"])
    assert marker["shard"] == 0 and marker["ok"] == len(results) and marker["items"] == ITEMS



# The full run through the harness: the example's predictor, with one change made before its context is built, so
# that one shard is slow enough to be killed mid-shard after it committed part of its work (a pod's worker commits
# every 2 s): an item marked "slow" takes 4 ms.
SLOW_PREDICTOR = '''

import time as _time

_predict = Predictor.predict


def _slow_when_asked(self, payload):
    if isinstance(payload, dict) and payload.get("slow"):
        _time.sleep(0.004)
    return _predict(self, payload)


Predictor.predict = _slow_when_asked
'''
BIG_ITEMS, BIG_SHARDS, BIG_WORKERS = 10_000, 8, 3
KILLED = 5  # the shard whose first pod is SIGKILLed mid-shard
POISON = {"id": "poison", "text": "awful " * 300}  # math.exp overflows: the predictor raises OverflowError on it


def with_slow_items(spec_file: Path) -> None:
    predictor = spec_file.parent / "predictor.py"
    predictor.write_text(predictor.read_text() + SLOW_PREDICTOR)


class JobController:
    """What the Job controller does with an Indexed Job's pods, as far as the run needs it: at most `parallelism` pods
    at once, one per pending index; a failed pod's index runs again up to backoffLimitPerIndex times, and an exit
    code the podFailurePolicy names fails the index at once."""

    def __init__(self, start_pod, manifest: dict):
        self.start_pod = start_pod
        spec = manifest["spec"]
        self.width, self.retries = spec["parallelism"], spec["backoffLimitPerIndex"]
        self.fatal = spec["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"]
        self.pending = list(range(spec["completions"]))
        self.running: dict[int, object] = {}
        self.attempts = {i: 0 for i in self.pending}
        self.succeeded: set[int] = set()
        self.failed: set[int] = set()

    def step(self) -> None:
        for index, pod in list(self.running.items()):
            code = pod.proc.poll()
            if code is None:
                continue
            pod.kill()
            del self.running[index]
            if code == 0:
                self.succeeded.add(index)
            elif code in self.fatal or self.attempts[index] > self.retries:
                self.failed.add(index)
            else:
                self.pending.insert(0, index)
        while self.pending and len(self.running) < self.width:
            index = self.pending.pop(0)
            self.attempts[index] += 1
            self.running[index] = self.start_pod(index, self.attempts[index])

    def done(self) -> bool:
        return not self.pending and not self.running

    def status(self) -> dict:
        failed = ",".join(str(i) for i in sorted(self.failed))
        return {"succeeded": len(self.succeeded), "active": len(self.running), **({"failedIndexes": failed} if failed else {})}


def test_ten_thousand_items_in_eight_shards_three_pods_at_a_time_one_killed_and_a_poison_both_ways(request, tmp_path, s3, moto, monkeypatch):
    """The issue's run, every pod the rendered Job's pod through the kubelet harness against moto's S3: 10,000 items in
    8 shards, 3 pods at once; shard 5's first pod SIGKILLed mid-shard once it committed part of its work and run again;
    a poison item skipped under `on_error: skip` and failing its shard (after its retries) under `fail`; every item's
    result present exactly once; `mlkit job status`'s figures equal what the files hold."""
    import signal
    import time

    import boto3

    from mlkit.commands.job_status import figures

    if os.geteuid() != 0:
        pytest.skip("the pod's user (runAsUser 10001) over root-owned files needs root; CI containers and this machine run as root")
    deployed = Deployed("batch", tmp_path, edit=with_slow_items)
    spec, api = deployed.spec, deployed.spec.apis[0]
    bucket = jobaccess.model_bucket(spec, deployed.facts.aws_account_id)
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    venvs, pods = request.getfixturevalue("image_venvs"), request.getfixturevalue("pod_dir")
    configmaps = {d["metadata"]["name"]: d for path, text in deployed.rendered.items() if path.startswith("infra/k8s/reviews/")
                  for d in yaml.safe_load_all(text) if d and d["kind"] == "ConfigMap"}
    reviews = [json.loads(line) for line in (deployed.root / "reviews.jsonl").read_text().splitlines()]
    shard_size = BIG_ITEMS // BIG_SHARDS
    items = [dict(reviews[i % len(reviews)], id=f"r{i}") | ({"slow": True} if i // shard_size == KILLED else {}) for i in range(BIG_ITEMS)]
    poison_at = 2 * shard_size + 17
    items[poison_at] = POISON
    source = tmp_path / "big.jsonl"
    source.write_text("".join(json.dumps(item) + "\n" for item in items))
    for name, value in aws_env(moto).items():  # for figures(), which reads the job's files as `mlkit job status` does
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", region_name="us-west-2", endpoint_url=moto, aws_access_key_id="testing", aws_secret_access_key="testing")

    def run(job_id: str, batch: BatchSpec, path: Path, kill: int | None = None) -> tuple[dict, JobController]:
        output = f"s3://{bucket}/{jobaccess.default_prefix('reviews')}{job_id}/"
        job = prepare_job(api, batch, items_of(str(path)), output, None, None, False, job_id)
        manifest = yaml.safe_load(render_job(spec, api, deployed.facts, job_id, output, job.shards, batch.workers))
        launched: list = []

        def start_pod(index: int, attempt: int):
            root = Path(tempfile.mkdtemp(prefix=f"{job_id}-{index}-", dir=pods))
            root.chmod(0o755)
            pod = Pod(manifest, configmaps, {}, deployed.contexts["reviews"], venvs(deployed.contexts["reviews"]), root,
                      tmp_path / f"{job_id}-{index}-{attempt}.log", fetcher("aws"),
                      injected={"JOB_COMPLETION_INDEX": str(index), "AWS_REGION": "us-west-2", **aws_env(moto)})
            pod.start()
            launched.append((index, pod))
            return pod

        controller = JobController(start_pod, manifest)
        killed = False
        deadline = time.monotonic() + 240
        progress = f"jobs/reviews/{job_id}/work/{kill:05d}/progress.json" if kill is not None else ""
        while not controller.done():
            assert time.monotonic() < deadline, [pod.output() for _, pod in launched]
            controller.step()
            if kill is not None and not killed and kill in controller.running:
                if client.list_objects_v2(Bucket=bucket, Prefix=progress).get("KeyCount"):
                    controller.running[kill].proc.send_signal(signal.SIGKILL)  # mid-shard: part committed, no done marker yet
                    killed = True
            time.sleep(0.05)
        assert kill is None or killed, "the slow shard finished before it could be killed"
        return {"metadata": manifest["metadata"], "status": controller.status()}, controller

    skip = (api.batch or BatchSpec()).model_copy(update={"shard_size": shard_size, "workers": BIG_WORKERS, "on_error": "skip"})
    started = time.monotonic()
    job, controller = run("reviews-20261206-130000-aaaaaa", skip, source, kill=KILLED)
    seconds = time.monotonic() - started
    assert controller.width == BIG_WORKERS and controller.succeeded == set(range(BIG_SHARDS)) and controller.attempts[KILLED] == 2, controller.attempts
    files = job_files(s3, bucket, "jobs/reviews/reviews-20261206-130000-aaaaaa/")
    results = [json.loads(line) for key in sorted(files) if key.startswith("results/") for line in files[key].splitlines()]
    errors = [json.loads(line) for key in sorted(files) if key.startswith("errors/") for line in files[key].splitlines()]
    assert sorted(r["index"] for r in results) == [i for i in range(BIG_ITEMS) if i != poison_at], "every item's result exactly once"
    assert [(e["index"], e["line"]) for e in errors] == [(poison_at, poison_at + 1)] and "OverflowError" in errors[0]["error"]
    resumed = json.loads(files[f"done/{KILLED:05d}.json"])
    assert 0 < resumed["resumed_at"] < shard_size, "the killed shard's second pod went on from its committed part"
    shown = figures(job)
    assert (shown["shards_done"], shown["items_done"], shown["items_failed"]) == (BIG_SHARDS, len(results), len(errors)), shown

    fail = skip.model_copy(update={"shard_size": 100, "on_error": "fail"})
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps(item) + "\n" for item in items[poison_at - 50:poison_at + 150]))
    job, controller = run("reviews-20261206-130000-bbbbbb", fail, small)
    # The shard with the poison fails each of its pods: the rendered backoffLimitPerIndex (the API's batch.retries) runs it again, then gives up.
    assert controller.failed == {0} and controller.succeeded == {1} and controller.attempts[0] == controller.retries + 1 == 3, controller.attempts
    files = job_files(s3, bucket, "jobs/reviews/reviews-20261206-130000-bbbbbb/")
    assert "done/00000.json" not in files and "done/00001.json" in files
    assert json.loads(files["work/00000/progress.json"])["next"] == 50, "the failed shard kept what came before the poison"
    shown = figures(job)
    assert (shown["shards_done"], shown["shards_failed"], shown["items_done"]) == (1, 1, 100), shown
    print(f"10,000 items through the harness: {seconds:.1f} s")
