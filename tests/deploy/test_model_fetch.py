"""The fetch-model init container's copy, run as rendered with the real aws CLI against moto's S3: killed
half-way, as a restarted init container is, then run again over the same volume, it fetches only
what the first run had not finished and leaves nothing of the killed run behind.

The pod contract (test_pod_contract.py) fetches with boto3 instead, because it runs every example and
the aws CLI is not a package of this project; here the CLI is the one on PATH, skipped where there is
none. gcloud cannot be pointed at the GCS emulator here, so its resume (tracker files) is not run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest
import yaml

from mlkit.render.infra import render
from mlkit.render.k8s import MODEL_DIR
from mlkit.spec import loads
from tests.conftest import aws_env

SPEC = """
project: fetch-demo
cloud: aws
region: us-west-2
cluster: {node_pools: [{name: cpu, instance_type: m6i.large}]}
apis: [{name: a, predictor: p.py:P, model: "s3://models/a/v1/"}]
"""
FILES = 40  # more than the rendered max_concurrent_requests (32): a kill after the first file leaves most undone
SIZE = 2 * 1024 * 1024


def rendered_fetch(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """The init container's command and environment, with its config file where AWS_CONFIG_FILE says (moved under tmp_path)."""
    files = render(loads(SPEC))
    deployment = yaml.safe_load(files["infra/k8s/a/deployment.yaml"])
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    env = {e["name"]: e["value"] for e in init["env"]}
    config_map = yaml.safe_load(files["infra/k8s/a/model-fetch.yaml"])
    config = tmp_path / "fetch-config"
    config.write_text(config_map["data"]["config"])
    assert env["AWS_CONFIG_FILE"].endswith("/config")
    return init["command"], env | {"AWS_CONFIG_FILE": str(config), "HOME": str(tmp_path)}


def start(command: list[str], env: dict[str, str], dest: Path) -> subprocess.Popen:
    argv = [str(dest) if arg == MODEL_DIR else arg for arg in command]
    return subprocess.Popen(argv, env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def complete(dest: Path, names: set[str]) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in dest.iterdir() if p.name in names and p.stat().st_size == SIZE}


def test_a_killed_s3_fetch_resumes_with_the_files_it_had_and_leaves_no_part_files(moto, tmp_path):
    if shutil.which("aws") is None:
        pytest.skip("no aws CLI on PATH (the fetch-model image's CLI)")
    endpoint = aws_env(moto)
    s3 = boto3.client("s3", region_name="us-west-2", endpoint_url=moto, aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="models", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    bodies = {f"shard-{i:02d}.bin": os.urandom(SIZE) for i in range(FILES)}
    for name, body in bodies.items():
        s3.put_object(Bucket="models", Key=f"a/v1/{name}", Body=body)
    command, env = rendered_fetch(tmp_path)
    env |= endpoint

    # A kill that lands after the last file, or between files, proves less: try again on a fresh volume.
    for attempt in range(5):
        dest = tmp_path / f"models-{attempt}"
        dest.mkdir()
        first = start(command, env, dest)
        deadline = time.monotonic() + 120
        while not complete(dest, set(bodies)) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.killpg(first.pid, signal.SIGKILL)  # what the kubelet does to a container past its memory limit
        first.wait()
        had = complete(dest, set(bodies))
        left = {p.name for p in dest.iterdir()} - set(had)  # aws-cli's part-files (<name>.<8 random characters>)
        if 0 < len(had) < FILES and left:
            break
    else:
        pytest.fail(f"could not kill the fetch in the middle of a file ({len(had)} of {FILES} done, {len(left)} part-files)")
    print(f"killed with {len(had)} of {FILES} files complete and {len(left)} part-files: {sorted(left)[:3]}")

    second = start(command, env, dest)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert {p.name for p in dest.iterdir()} == set(bodies)  # --delete took what the killed run left half-written
    for name, body in bodies.items():
        assert (dest / name).read_bytes() == body, name
    # The files the first run finished were kept, not fetched again (a new download is a new file).
    assert {name: (dest / name).stat().st_ino for name in had} == had
