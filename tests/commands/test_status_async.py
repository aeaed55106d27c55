"""`mlkit status` of an async API, as a user runs it: the real CLI in a subprocess, the Kubernetes API
emulator holding the front and worker Deployments and the worker ScaledObject exactly as rendered
(tests/golden/async, the account filled in as `mlkit apply` does), and moto as AWS: a real SQS queue and
dead-letter queue with messages waiting, held and failed, and CloudWatch holding the point SQS publishes
for the oldest message's age (moto does not publish SQS's metrics itself, so the test writes the one
point, as the test plays the Deployment controller)."""

from __future__ import annotations

import datetime
import json
import shutil

import httpx
import pytest
import yaml

from tests.conftest import EXAMPLES, REPO, aws_env, emulator_kubeconfig, mlkit

NS = "async-demo"
ACCOUNT = "123456789012"
GOLDEN = REPO / "tests" / "golden" / "async" / "infra" / "k8s" / "documents"
SPEC = """\
project: async-demo
cloud: aws
region: us-west-2
cluster: {existing: {name: prod-eks, context: emulator}}
apis:
  - name: documents
    kind: async
    predictor: predictor.py:Predictor
    model: s3://team-models/documents/v1/
    autoscaling: {min_replicas: 0, max_replicas: 5}
"""


def objects(file: str) -> list[dict]:
    return [o for o in yaml.safe_load_all((GOLDEN / file).read_text().replace("ACCOUNT-ID", ACCOUNT)) if o]


def create(k8s, body: dict) -> None:
    group = "api/v1" if body["apiVersion"] == "v1" else f"apis/{body['apiVersion']}"
    plural = {"Deployment": "deployments", "ScaledObject": "scaledobjects", "TriggerAuthentication": "triggerauthentications"}[body["kind"]]
    response = httpx.post(f"{k8s.url}/{group}/namespaces/{NS}/{plural}", json=body)
    assert response.status_code < 300, response.text


@pytest.fixture
def project(tmp_path, k8s, moto):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "mlkit.yaml").write_text(SPEC)
    shutil.copy(EXAMPLES / "async" / "predictor.py", root / "predictor.py")
    env = aws_env(moto) | {"KUBECONFIG": str(emulator_kubeconfig(tmp_path / "kubeconfig", k8s.url))}
    for body in objects("deployment.yaml") + objects("scaledobject.yaml"):
        if body["kind"] == "Deployment":  # as the Deployment controller reports them: the front up, 2 of 3 workers ready
            body["spec"]["replicas"] = 3 if body["metadata"]["name"] == "documents-worker" else 1
            body["status"] = {"readyReplicas": 2 if body["metadata"]["name"] == "documents-worker" else 1}
        create(k8s, body)
    return root, env


def sqs_with_messages(moto: str, waiting: int, held: int, failed: int):
    import boto3

    kw = {"region_name": "us-west-2", "endpoint_url": moto, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    sqs = boto3.client("sqs", **kw)
    queue = sqs.create_queue(QueueName="async-demo-documents")["QueueUrl"]
    dead = sqs.create_queue(QueueName="async-demo-documents-dead-letter")["QueueUrl"]
    for n in range(waiting + held):
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"n": n}))
    if held:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=held, VisibilityTimeout=600)["Messages"]  # a worker holds these
        assert len(got) == held
    for n in range(failed):
        sqs.send_message(QueueUrl=dead, MessageBody=json.dumps({"n": n}))
    return boto3.client("cloudwatch", **kw)


def test_status_shows_an_async_apis_queue_workers_and_failures(project, moto):
    root, env = project
    cloudwatch = sqs_with_messages(moto, waiting=7, held=2, failed=1)
    now = datetime.datetime.now(datetime.timezone.utc)
    for minutes, age in ((3, 30.0), (1, 95.0)):  # two one-minute points: the newer one is the queue's oldest age now
        cloudwatch.put_metric_data(Namespace="AWS/SQS", MetricData=[{
            "MetricName": "ApproximateAgeOfOldestMessage", "Dimensions": [{"Name": "QueueName", "Value": "async-demo-documents"}],
            "Timestamp": now - datetime.timedelta(minutes=minutes), "Value": age, "Unit": "Seconds",
        }])

    out = mlkit("status", "--json", cwd=root, env=env)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert [r["api"] for r in got["apis"]] == ["documents"]  # the front, as a realtime API's row
    assert (got["apis"][0]["ready"], got["apis"][0]["desired"]) == (1, 1)
    (row,) = got["async"]
    assert row["api"] == "documents" and row["problem"] is None, row
    assert row["queue"] == {"queued": 7, "in_flight": 2, "oldest_s": 95.0, "dead_letter": 1, "problem": None}
    assert (row["workers"], row["max_workers"]) == ({"ready": 2, "desired": 3}, 5)

    table = mlkit("status", cwd=root, env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("ASYNC API"))
    assert lines[header].split() == ["ASYNC", "API", "QUEUED", "IN", "FLIGHT", "OLDEST", "WORKERS", "FAILED", "PROBLEM"]
    assert lines[header + 1].split() == ["documents", "7", "2", "95", "s", "2/3", "(max", "5)", "1"]


def test_a_queue_with_no_recent_age_point_shows_the_rest(project, moto):
    """SQS publishes the age only for active queues: without a point the age is unknown, the counts still show."""
    root, env = project
    sqs_with_messages(moto, waiting=0, held=0, failed=0)
    got = json.loads(mlkit("status", "--json", cwd=root, env=env).stdout)
    assert got["async"][0]["queue"] == {"queued": 0, "in_flight": 0, "oldest_s": None, "dead_letter": 0, "problem": None}


def test_an_unreachable_or_missing_queue_is_one_line_in_the_row(project, moto):
    root, env = project
    missing = mlkit("status", cwd=root, env=env)  # no queue was made on moto
    assert missing.returncode == 0, missing.stderr
    assert "Traceback" not in missing.stderr + missing.stdout
    row = next(line for line in missing.stdout.splitlines() if line.startswith("documents") and "SQS queue" in line)
    assert "SQS queue async-demo-documents:" in row and "NonExistentQueue" in row, row

    closed = env | {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}  # nothing listens: the connection is refused
    down = mlkit("status", "--json", cwd=root, env=closed)
    assert down.returncode == 0, down.stderr
    row = json.loads(down.stdout)["async"][0]
    assert row["queue"]["queued"] is None and row["problem"].startswith("SQS queue async-demo-documents: Could not connect"), row
    assert "\n" not in row["problem"]


def test_an_async_api_not_deployed_says_so(tmp_path, k8s, moto):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "mlkit.yaml").write_text(SPEC)
    shutil.copy(EXAMPLES / "async" / "predictor.py", root / "predictor.py")
    env = aws_env(moto) | {"KUBECONFIG": str(emulator_kubeconfig(tmp_path / "kubeconfig", k8s.url))}
    got = json.loads(mlkit("status", "--json", cwd=root, env=env).stdout)
    assert got["async"] == [{"api": "documents", "workers": None, "max_workers": None, "queue": None, "problem": "not deployed: run `mlkit apply`"}]


def test_gcp_queue_depth_without_credentials_is_one_unavailable_line(tmp_path, monkeypatch):
    """Pub/Sub's depth is read from Cloud Monitoring with Application Default Credentials: none here (a missing
    key file, no metadata server), so the row says unavailable and why, and the call returns."""
    pytest.importorskip("google.auth")
    from mlkit import clouds
    from mlkit.spec.loader import load

    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "absent.json"))
    monkeypatch.setenv("NO_GCE_CHECK", "True")
    (tmp_path / "predictor.py").write_text("class Predictor:\n    def predict(self, payload):\n        return payload\n")
    (tmp_path / "mlkit.yaml").write_text(SPEC.replace("cloud: aws\nregion: us-west-2", "cloud: gcp\nregion: us-central1\ngcp_project: demo-project")
                                         .replace("s3://", "gs://"))
    spec = load(tmp_path / "mlkit.yaml")
    depth = clouds.of(spec).queue_depth(spec, "pubsub:projects/demo-project/topics/async-demo-documents/subscriptions/async-demo-documents", None)
    assert depth.queued is None and depth.problem is not None
    assert depth.problem.startswith("unavailable: no Google credentials to read Cloud Monitoring (") and "absent.json" in depth.problem
    bad = clouds.of(spec).queue_depth(spec, "pubsub:projects/demo-project/topics/t", None)
    assert bad.problem == (
        "the workers' MLKIT_QUEUE: 'pubsub:projects/demo-project/topics/t' is not pubsub:projects/PROJECT/topics/TOPIC/subscriptions/SUBSCRIPTION"
    )
