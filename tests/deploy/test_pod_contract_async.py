"""The pod contract of an async API: its front and worker Deployments, run as rendered by the kubelet
stand-in (tests/deploy/kubelet.py) from the API's real build context, against moto's SQS and S3 (AWS) or
the Pub/Sub emulator and gcp-storage-emulator (GCP), with the queue, dead-letter queue or topic, and
bucket named as the cluster stack names them.

A request posted through the API's Service is answered 202 by the front, taken from the queue by the
worker, and its result read back through the front; both pods then stop on SIGTERM within their grace.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from mlkit.render import asyncapi
from mlkit.spec.loader import load
from tests.conftest import EXAMPLES, aws_env
from tests.deploy.kubelet import ContractError, Pod
from tests.deploy.test_pod_contract import Deployed, base_python, fetcher, image_venvs, pod_dir  # noqa: F401 (fixtures)
from tests.runtime.test_async_clouds import pubsub_emulator  # noqa: F401 (fixture)

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the kubelet stand-in needs Linux users and signals")
ACCOUNT = "123456789012"  # moto's account, and the one the test's deploy facts name
RESULT_WAIT_S = 60


class IrsaPod(Pod):
    """A pod whose ServiceAccount has an IRSA role: EKS's webhook gives it AWS credentials; here, moto's."""

    aws: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        return super().env() | self.aws


class WorkloadIdentityPod(Pod):
    """A pod whose ServiceAccount names a Google service account: GKE's metadata server gives it credentials;
    here the Google clients reach the emulators instead, which take none."""

    emulators: dict[str, str] = {}

    def env(self) -> dict[str, str]:
        return super().env() | self.emulators


def deployments(deployed: Deployed, api: str) -> dict[str, dict]:
    docs = yaml.safe_load_all(deployed.rendered[f"infra/k8s/{api}/deployment.yaml"])
    return {d["metadata"]["labels"]["mlkit.dev/track"]: d for d in docs if d}


def get(pod: Pod, service: dict, path: str) -> tuple[int, dict]:
    port = pod._port(service["spec"]["ports"][0]["targetPort"], "Service targetPort")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def wait_for(front: Pod, service: dict, request_id: str) -> dict:
    """The request's record once it is completed or failed, or as it stands after RESULT_WAIT_S."""
    deadline = time.monotonic() + RESULT_WAIT_S
    while True:
        status, record = get(front, service, f"/predict/{request_id}")
        assert status == 200, (status, record)
        if record["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return record
        time.sleep(0.2)


@pytest.fixture
def aws_queue(s3, moto):
    """The async example's queue, dead-letter queue and results bucket, as modules/async-queue and the model bucket make them."""
    import boto3

    sqs = boto3.client("sqs", region_name="us-west-2")
    name = asyncapi.queue_name(load(EXAMPLES / "async" / "mlkit.yaml"), "documents")
    dead = sqs.create_queue(QueueName=name + asyncapi.DEAD_LETTER_SUFFIX)["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": "3"})})
    s3.create_bucket(Bucket=f"async-demo-models-{ACCOUNT}", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    return aws_env(moto)


def test_async_front_and_worker_serve_as_their_pods_are_rendered(aws_queue, tmp_path, request):
    IrsaPod.aws = aws_queue
    serve_through_the_pods(Deployed("async", tmp_path), IrsaPod, "aws", tmp_path, request)


GCP_PROJECT = "test-project"  # the emulators' project, and the spec's gcp_project


def on_gcp(spec: Path) -> None:
    """The async example on GKE: the same API, with the settings GCP takes (Pub/Sub's fewest attempts are 5)."""
    text = spec.read_text().replace("cloud: aws\nregion: us-west-2", f"cloud: gcp\nregion: us-central1\ngcp_project: {GCP_PROJECT}")
    spec.write_text(text.replace("instance_type: m6i.large", "instance_type: e2-standard-4").replace("max_attempts: 3 ", "max_attempts: 5 "))


@pytest.fixture
def gcp_queue(gcs, pubsub_emulator, monkeypatch):  # noqa: F811 (the fixture imported above)
    """The example's topic, subscription (dead-lettering after 5 deliveries), dead-letter topic and results bucket,
    named from the rendered pods' own settings, as modules/async-queue and the model bucket make them."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator)
    from google.cloud import pubsub_v1, storage

    spec = load(EXAMPLES / "async" / "mlkit.yaml")
    name = asyncapi.queue_name(spec, "documents")
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.create_topic(name=f"projects/{GCP_PROJECT}/topics/{name}").name
    dead = publisher.create_topic(name=f"projects/{GCP_PROJECT}/topics/{name}-dead-letter").name
    subscriber.create_subscription(request={
        "name": f"projects/{GCP_PROJECT}/subscriptions/{name}", "topic": topic, "ack_deadline_seconds": 60,
        "dead_letter_policy": {"dead_letter_topic": dead, "max_delivery_attempts": 5},
    })
    # The module's subscription on the dead-letter topic, which keeps what lands there.
    kept = subscriber.create_subscription(request={"name": f"projects/{GCP_PROJECT}/subscriptions/{name}-dead-letter", "topic": dead}).name
    storage.Client().create_bucket(f"{spec.project}-models-{GCP_PROJECT}")

    def dead_ids() -> list[str]:
        got = subscriber.pull(subscription=kept, max_messages=10, timeout=10).received_messages
        return [json.loads(m.message.data)["id"] for m in got]

    return {"PUBSUB_EMULATOR_HOST": pubsub_emulator, "STORAGE_EMULATOR_HOST": os.environ["STORAGE_EMULATOR_HOST"]}, dead_ids


def test_async_front_and_worker_serve_on_gcp_as_their_pods_are_rendered(gcp_queue, tmp_path, request):
    deployed = Deployed("async", tmp_path, edit=on_gcp)
    for deployment in deployments(deployed, "documents").values():
        env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["MLKIT_QUEUE"] == f"pubsub:projects/{GCP_PROJECT}/topics/async-demo-documents/subscriptions/async-demo-documents"
        assert env["MLKIT_RESULTS"] == f"gs://async-demo-models-{GCP_PROJECT}/async/documents"
    WorkloadIdentityPod.emulators, dead_ids = gcp_queue
    serve_through_the_pods(deployed, WorkloadIdentityPod, "gcp", tmp_path, request, dead_ids)


def serve_through_the_pods(deployed: Deployed, pod_class: type[Pod], cloud: str, tmp_path: Path, request, dead_ids=None) -> None:
    """Start the API's front and worker as rendered; a request is answered 202, completed by the worker, read back
    through the front; with `dead_ids` (what the dead-letter queue holds), a request the predictor refuses ends
    `failed` after the set attempts and is there; both pods stop on SIGTERM within their grace."""
    if os.geteuid() != 0:
        pytest.skip("the pod's user (runAsUser 10001) over root-owned files needs root; CI containers and this machine run as root")
    pods_root, venvs = request.getfixturevalue("pod_dir"), request.getfixturevalue("image_venvs")
    api = "documents"
    docs = [d for path, text in deployed.rendered.items() if path.startswith(f"infra/k8s/{api}/") for d in yaml.safe_load_all(text) if d]
    objects = {kind + "s": {d["metadata"]["name"]: d for d in docs if d["kind"] == kind} for kind in ("ConfigMap", "PersistentVolume", "PersistentVolumeClaim")}
    service = next(d for d in yaml.safe_load_all(deployed.rendered[f"infra/k8s/{api}/service.yaml"]) if d)
    by_track = deployments(deployed, api)
    assert set(by_track) == {"front", "worker"}
    assert service["spec"]["selector"]["mlkit.dev/track"] == "front"
    # Each side runs as a ServiceAccount of its own, rendered beside it, with an identity of its own. (The stand-in
    # kubelet gives both pods the same emulator credentials; tests/runtime/test_async_identities.py runs each
    # side on its own grants against IAM enforced by moto.)
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    used = {track: d["spec"]["template"]["spec"]["serviceAccountName"] for track, d in by_track.items()}
    assert used == {"front": api, "worker": f"{api}-worker"} and set(used.values()) <= set(accounts)
    identities = {track: accounts[name]["metadata"]["annotations"] for track, name in used.items()}
    assert identities["front"] != identities["worker"] and all(len(a) == 1 for a in identities.values())
    context = deployed.contexts[api]
    pods = {}
    try:
        for track, deployment in by_track.items():
            root = Path(tempfile.mkdtemp(prefix=f"{api}-{track}-", dir=pods_root))
            root.chmod(0o755)
            pods[track] = pod_class(deployment, objects["ConfigMaps"], {}, context, venvs(context), root, tmp_path / f"{track}.log",
                                    fetcher(cloud), claims=objects["PersistentVolumeClaims"], persistent_volumes=objects["PersistentVolumes"])
            pods[track].start()
        for pod in pods.values():
            pod.wait_started()
            pod.check_probe("readinessProbe")
            pod.check_probe("livenessProbe")
        front = pods["front"]
        status, body = front.request(service, "/predict", {"text": "a document"})
        if status != 202:
            raise ContractError(f"front: POST /predict answered {status}: {body[:300]!r}\n{front.output()}")
        record = wait_for(front, service, json.loads(body)["id"])
        assert record["status"] == "completed", (record, pods["worker"].output())
        assert record["result"], record
        if dead_ids is not None:
            status, body = front.request(service, "/predict", {"no": "text"})  # the predictor raises on every attempt
            assert status == 202, body
            poison = json.loads(body)["id"]
            record = wait_for(front, service, poison)
            assert record["status"] == "failed" and '"text" string' in record["error"], (record, pods["worker"].output())
            assert record["attempt"] == deployed.spec.apis[0].queue.max_attempts
            assert poison in dead_ids(), pods["worker"].output()
        for pod in pods.values():
            time.sleep(pod.pre_stop_seconds())
            pod.terminate()
    finally:
        for pod in pods.values():
            pod.kill()
        shutil.rmtree(tmp_path / "contexts", ignore_errors=True)
