"""The fetch-model init container's copy, run as rendered with the real aws CLI against moto's S3 and the
real gcloud against the GCS emulator: killed half-way, as a restarted init container is, then run
again over the same volumes, it keeps the files the first run finished, fetches the rest, and leaves
nothing of the killed run behind (aws-cli's `<name>.<random>` part-files, gcloud's `_.gstmp` ones).

The pod contract (test_pod_contract.py) fetches with the client libraries instead, because it runs
every example and the CLIs are not packages of this project. Here the aws CLI must have the major
version of the rendered image's (aws-cli 2.17.0 there; Debian's awscli 2.9 here, which
scripts/setup.sh installs: `pip install awscli` is version 1, another program); gcloud is the one on
PATH, at least the image's release. The files include one above the rendered multipart (32 MB) and
sliced-download (64 MiB) thresholds, and when the test runs as root the CLI runs as the kubelet would
start it: the user and group the fetch container renders (the pod's 10001 for aws, the image's own
1000 for gcloud), the pod's fsGroup as a supplementary group, emptyDir volumes as the kubelet makes
them, and the image's /etc/passwd and /etc/group (IMAGE_ACCOUNTS) bind-mounted over this machine's.
A missing or wrong CLI skips, and fails where CI=true. Only the endpoint (and, for the
emulator, no credentials) is added to the rendered environment, and for aws an `--endpoint-url` flag
(Debian's 2.9 predates AWS_ENDPOINT_URL).

Not modelled: the image's own Python and libraries (the CLI comes from this machine), and Linux
capabilities beyond the user id.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import boto3
import pytest
import yaml

from mlkit.render.infra import render
from mlkit.render.runtime_view import FETCH_IMAGE, MODEL_DIR
from mlkit.spec.loader import loads
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
# One file above the rendered thresholds (cli/render/models.py): aws-cli's multipart_threshold of 32 MB and
# gcloud's sliced-download threshold of 64 MiB, so the copy of a large model's way is the one tested.
BIG = {"aws": 40 * 1024 * 1024, "gcp": 72 * 1024 * 1024}


def the_cli(cloud: str) -> str:
    """The CLI the init container runs, or a skip (a failure where CI=true) that says why not."""
    pinned = FETCH_IMAGE["s3" if cloud == "aws" else "gs"].rsplit(":", 1)[1]
    if cloud == "aws":
        candidates = [c for c in dict.fromkeys([shutil.which("aws"), "/usr/bin/aws"]) if c and os.access(c, os.X_OK)]
        versions = {c: version_of([c, "--version"], r"aws-cli/(\d+)\.") for c in candidates}
        found = [c for c, v in versions.items() if v == int(pinned.split(".")[0])]
        if found:
            return found[0]
        major = pinned.split(".")[0]
        return missing(f"no aws CLI of major version {major} (the image's {pinned}); found {versions or 'none'} (Debian: apt-get install awscli)")
    gcloud = shutil.which("gcloud")
    release = version_of([gcloud, "--version"], r"Google Cloud SDK (\d+)\.") if gcloud else None
    if release is not None and release >= int(pinned.split(".")[0]):
        return gcloud  # type: ignore[return-value]
    return missing(f"no gcloud of release {pinned} or newer (the image's); found {release}")


def version_of(argv: list[str], pattern: str) -> int | None:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    match = re.search(pattern, out.stdout + out.stderr)
    return int(match.group(1)) if match else None


def missing(why: str) -> str:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {why}")
    pytest.skip(why)


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

        server = local_server(["tests.gcs_server", "start", "--host", "127.0.0.1", "--port", "{port}", "--in-memory"], tmp_path / "gcs.log")
        port = stack.enter_context(server)
        client = storage.Client(project="test", credentials=AnonymousCredentials(), client_options={"api_endpoint": f"http://127.0.0.1:{port}"})
        target = client.create_bucket("models")
        put = lambda name, body: target.blob(f"a/v1/{name}").upload_from_string(body)  # noqa: E731
        env = {
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE": f"http://127.0.0.1:{port}/",
            "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true",
            "CLOUDSDK_CORE_PROJECT": "test",
        }
    bodies = {f"shard-{i:02d}.bin": os.urandom(SIZE) for i in range(FILES)} | {"big.bin": os.urandom(BIG[cloud])}
    for name, body in bodies.items():
        put(name, body)
    return bodies, env


POD_USER = 10001  # the rendered pods' runAsUser and fsGroup
# The accounts in each fetch image's /etc/passwd and /etc/group, which the CLI sees instead of this
# machine's. google-cloud-cli: Debian's, and `cloudsdk` (1000:1000) added by the image
# (GoogleCloudPlatform/cloud-sdk-docker debian_slim/Dockerfile, read at 00388e8f428757ffd590abe6ca641857ebe2418d:
# `groupadd -r -g 1000 cloudsdk && useradd -r -u 1000 ...`). aws-cli: the base image's accounts only, as far
# as this test knows; none of the two lists 10001. gcloud storage rsync looks up the running uid for
# every download (googlecloudsdk/command_lib/storage/posix_util.py `_get_user_groups`, `pwd.getpwuid`),
# so a uid the image does not list crashes it: that is why the rendered gs:// fetch runs as 1000.
IMAGE_ACCOUNTS = {
    "aws": ("root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:Kernel Overflow User:/:/sbin/nologin\n", "root:x:0:\nnobody:x:65534:\n"),
    "gcp": (
        "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\ncloudsdk:x:1000:1000::/home/cloudsdk:/bin/bash\n",
        "root:x:0:\nnogroup:x:65534:\ncloudsdk:x:1000:\n",
    ),
}


def run_as(cloud: str) -> tuple[int, int]:
    """The fetch container's user and group as rendered: its own securityContext, else the pod's."""
    files = render(loads(SPECS[cloud]))
    pod = yaml.safe_load(files["infra/k8s/a/deployment.yaml"])["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    own_context = init.get("securityContext", {})
    return (own_context.get("runAsUser", pod["securityContext"]["runAsUser"]), own_context.get("runAsGroup", pod["securityContext"]["runAsGroup"]))


def start(command: list[str], env: dict[str, str], dest: Path, cli: str, cloud: str) -> subprocess.Popen:
    argv = [str(dest) if arg == MODEL_DIR else arg for arg in command]
    assert argv[0] == os.path.basename(cli), argv  # the rendered command names the CLI; run the one chosen
    argv[0] = cli
    if "AWS_ENDPOINT_URL" in env:
        # aws-cli reads AWS_ENDPOINT_URL from 2.13 (the image has 2.17; Debian's is 2.9): the flag reaches moto on both.
        argv.insert(1, f"--endpoint-url={env['AWS_ENDPOINT_URL']}")
    if os.geteuid() == 0:
        # As the kubelet runs it: the rendered user and group, the pod's fsGroup as a supplementary group,
        # and the image's /etc/passwd and /etc/group (bind-mounted in a mount namespace of its own).
        uid, gid = run_as(cloud)
        accounts = dest.parent / f"accounts-{cloud}"
        accounts.mkdir(exist_ok=True)
        (accounts / "passwd").write_text(IMAGE_ACCOUNTS[cloud][0])
        (accounts / "group").write_text(IMAGE_ACCOUNTS[cloud][1])
        script = 'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec setpriv --reuid="$1" --regid="$2" --groups="$3" -- "${@:4}"'
        argv = ["unshare", "--mount", "--propagation", "private", "bash", "-c", script, "fetch",
                str(accounts / "passwd"), str(accounts / "group"), str(uid), str(gid), str(POD_USER), *argv]
    return subprocess.Popen(argv, env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def part_files(dest: Path, sizes: dict[str, int]) -> set[str]:
    """Names in `dest` that are none of the objects': the CLI's files for downloads under way."""
    return {p.name for p in dest.iterdir()} - set(sizes)


def complete(dest: Path, sizes: dict[str, int]) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in dest.iterdir() if p.name in sizes and p.stat().st_size == sizes[p.name]}


@pytest.fixture
def pod():
    """A folder the pod's user can reach (pytest's tmp_path is root's alone): its volumes and HOME live here."""
    root = Path(tempfile.mkdtemp(prefix="mlkit-fetch-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def empty_dir(path: Path) -> Path:
    """An emptyDir volume as the kubelet makes it for a pod with fsGroup: root's, the fsGroup's group,
    writable by all, setgid (so what the fetch writes belongs to the group the runtime reads with)."""
    path.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path, 0, POD_USER)
        path.chmod(0o2777)
    return path


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_a_killed_fetch_resumes_with_the_files_it_had_and_leaves_no_part_files(cloud, bucket, pod):
    cli = the_cli(cloud)
    bodies, endpoint = bucket
    sizes = {name: len(body) for name, body in bodies.items()}
    command, env = rendered_fetch(cloud, pod)
    empty_dir(pod)  # HOME of the aws fetch (the tmp volume in the pod)
    empty_dir(pod / "tmp-volume")  # gcloud's CLOUDSDK_CONFIG is under it
    env |= endpoint

    # A kill that lands after the last file, between files, or before two were done proves less: try again on a fresh volume.
    for attempt in range(5):
        dest = pod / f"models-{attempt}"
        empty_dir(dest)
        began = time.time()
        first = start(command, env, dest, cli, cloud)
        deadline = time.monotonic() + 120
        # Killed once two files are whole and a part-file is there: on a loaded machine the CLI can have two
        # files done and the next not begun yet for a while (CI once hit that gap in all five tries).
        while not (len(complete(dest, sizes)) >= 2 and part_files(dest, sizes)) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)  # what the kubelet does to a container past its memory limit
        elif first.returncode != 0:
            pytest.fail(f"{cli} as uid {run_as(cloud)[0]} failed before the kill: {first.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        first.wait()
        had = complete(dest, sizes)
        # Settled: whole and with the object's time set (before this fetch began), which the CLI does after
        # renaming a file into place; a kill between the two leaves a whole file the next sync may not trust.
        settled = {name for name in had if (dest / name).stat().st_mtime < began}
        left = {p.name for p in dest.iterdir()} - set(had)  # part-files, and files begun but not finished
        if settled and len(had) < FILES and left - set(bodies):
            break
    else:
        pytest.fail(f"could not kill the fetch in the middle of a file ({len(had)} of {FILES} done, {sorted(left)[:3]})")
    print(f"{cli} killed with {len(had)} of {FILES} files complete; also there: {sorted(left)[:4]}")

    second = start(command, env, dest, cli, cloud)
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    assert {p.name for p in dest.iterdir()} == set(bodies)  # nothing the killed run left half-written stays
    for name, body in bodies.items():
        assert (dest / name).read_bytes() == body, name
    # The settled files the first run finished were kept, not fetched again (a new download is a new file);
    # whole files without their time may be (seen with gcloud, and with aws-cli 2 for two files at once).
    again = [name for name, inode in had.items() if (dest / name).stat().st_ino != inode]
    assert not set(again) & settled, (again, sorted(settled))
