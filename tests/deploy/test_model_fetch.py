"""The fetch-model init container's copy, run as rendered with the real aws CLI against moto's S3 and the
real gcloud against the GCS emulator: killed half-way, as a restarted init container is, then run
again over the same volumes, it keeps the files the first run finished, fetches the rest, and leaves
nothing of the killed run behind (aws-cli's `<name>.<random>` part-files, gcloud's `_.gstmp` ones).

The pod contract (test_pod_contract.py) fetches with the client libraries instead, because it runs
every example and the CLIs are not packages of this project; here they are the ones on PATH, skipped
where there are none. Only the endpoint (and, for the emulator, no credentials) is added to the
rendered environment.
"""

from __future__ import annotations

import contextlib
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
from tests.conftest import aws_env, local_server

SPECS = {
    "aws": 'project: fetch-demo\ncloud: aws\nregion: us-west-2\ncluster: {node_pools: [{name: cpu, instance_type: m6i.large}]}\n'
           'apis: [{name: a, predictor: p.py:P, model: "s3://models/a/v1/"}]\n',
    "gcp": 'project: fetch-demo\ncloud: gcp\nregion: us-central1\ngcp_project: acme-ml\n'
           'cluster: {node_pools: [{name: cpu, instance_type: n2-standard-4}]}\napis: [{name: a, predictor: p.py:P, model: "gs://models/a/v1/"}]\n',
}
CLI = {"aws": "aws", "gcp": "gcloud"}
FILES = 40  # more than the rendered concurrency (32 either way): a kill after the first file leaves most undone
SIZE = 2 * 1024 * 1024


def rendered_fetch(cloud: str, tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """The init container's command and environment, its files moved under tmp_path: the aws config
    where AWS_CONFIG_FILE says, gcloud's configuration (and tracker files) in a folder standing for the tmp volume."""
    files = render(loads(SPECS[cloud]))
    deployment = yaml.safe_load(files["infra/k8s/a/deployment.yaml"])
    (init,) = deployment["spec"]["template"]["spec"]["initContainers"]
    env = {e["name"]: e["value"] for e in init["env"]}
    if cloud == "aws":
        config_map = yaml.safe_load(files["infra/k8s/a/model-fetch.yaml"])
        config = tmp_path / "fetch-config"
        config.write_text(config_map["data"]["config"])
        assert env["AWS_CONFIG_FILE"].endswith("/config")
        return init["command"], env | {"AWS_CONFIG_FILE": str(config), "HOME": str(tmp_path)}
    assert env["CLOUDSDK_CONFIG"].startswith("/tmp/")
    return init["command"], env | {"CLOUDSDK_CONFIG": str(tmp_path / "tmp-volume" / "gcloud")}


@pytest.fixture
def bucket(request, cloud, tmp_path):
    """The emulated bucket `models` holding FILES random files under a/v1/, and the environment that reaches it."""
    with contextlib.ExitStack() as stack:
        yield fill(request, stack, cloud, tmp_path)


def fill(request, stack: contextlib.ExitStack, cloud: str, tmp_path: Path) -> tuple[dict[str, bytes], dict[str, str]]:
    if cloud == "aws":
        endpoint = request.getfixturevalue("moto")
        client = boto3.client("s3", region_name="us-west-2", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket="models", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        put = lambda name, body: client.put_object(Bucket="models", Key=f"a/v1/{name}", Body=body)  # noqa: E731
        env = aws_env(endpoint)
    else:
        pytest.importorskip("gcp_storage_emulator", reason="gcp-storage-emulator is not installed")
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        server = local_server(["gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port", "{port}", "--in-memory"], tmp_path / "gcs.log")
        port = stack.enter_context(server)
        client = storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": f"http://127.0.0.1:{port}"})
        target = client.create_bucket("models")
        put = lambda name, body: target.blob(f"a/v1/{name}").upload_from_string(body)  # noqa: E731
        env = {
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE": f"http://127.0.0.1:{port}/",
            "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
            "CLOUDSDK_CORE_PROJECT": "test",
        }
    bodies = {f"shard-{i:02d}.bin": os.urandom(SIZE) for i in range(FILES)}
    for name, body in bodies.items():
        put(name, body)
    return bodies, env


def start(command: list[str], env: dict[str, str], dest: Path) -> subprocess.Popen:
    argv = [str(dest) if arg == MODEL_DIR else arg for arg in command]
    return subprocess.Popen(argv, env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def complete(dest: Path, names: set[str]) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in dest.iterdir() if p.name in names and p.stat().st_size == SIZE}


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_a_killed_fetch_resumes_with_the_files_it_had_and_leaves_no_part_files(cloud, bucket, tmp_path):
    if shutil.which(CLI[cloud]) is None:
        pytest.skip(f"no {CLI[cloud]} on PATH (the fetch-model image's CLI)")
    bodies, endpoint = bucket
    command, env = rendered_fetch(cloud, tmp_path)
    env |= endpoint

    # A kill that lands after the last file, between files, or before two were done proves less: try again on a fresh volume.
    for attempt in range(5):
        dest = tmp_path / f"models-{attempt}"
        dest.mkdir()
        first = start(command, env, dest)
        deadline = time.monotonic() + 120
        while len(complete(dest, set(bodies))) < 2 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.killpg(first.pid, signal.SIGKILL)  # what the kubelet does to a container past its memory limit
        first.wait()
        had = complete(dest, set(bodies))
        left = {p.name for p in dest.iterdir()} - set(had)  # part-files, and files begun but not finished
        if 1 < len(had) < FILES and left - set(bodies):  # two or more done: one kept at least, as said below
            break
    else:
        pytest.fail(f"could not kill the fetch in the middle of a file ({len(had)} of {FILES} done, {sorted(left)[:3]})")
    print(f"{CLI[cloud]} killed with {len(had)} of {FILES} files complete; also there: {sorted(left)[:4]}")

    second = start(command, env, dest)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert {p.name for p in dest.iterdir()} == set(bodies)  # nothing the killed run left half-written stays
    for name, body in bodies.items():
        assert (dest / name).read_bytes() == body, name
    # The files the first run finished were kept, not fetched again (a new download is a new file). One may
    # be fetched again: the CLI renames a file into place and then sets its time, and a kill between the
    # two leaves a whole file whose time the next sync does not trust (seen with gcloud on a loaded machine).
    again = [name for name, inode in had.items() if (dest / name).stat().st_ino != inode]
    assert len(again) <= 1, (again, had)
