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

