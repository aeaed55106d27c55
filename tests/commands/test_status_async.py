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
    for hostile in ('demo-project/topics/t/subscriptions/s" OR metric.type="x', "../../x/topics/t/subscriptions/sub"):
        refused = clouds.of(spec).queue_depth(spec, f"pubsub:projects/{hostile}", None)
        assert refused.problem is not None and refused.problem.startswith("the workers' MLKIT_QUEUE: ") and "\n" not in refused.problem, hostile
    bad = clouds.of(spec).queue_depth(spec, "pubsub:projects/demo-project/topics/t", None)
    assert bad.problem == (
        "the workers' MLKIT_QUEUE: 'pubsub:projects/demo-project/topics/t' is not pubsub:projects/PROJECT/topics/TOPIC/subscriptions/SUBSCRIPTION"
    )


class _Monitoring:
    """Google's side of a Cloud Monitoring read, on loopback: the OAuth token endpoint a service account key names
    (its token_uri), and projects.timeSeries.list answering in the REST API's JSON (ListTimeSeriesResponse: points
    newest first, int64Value as a string, endTime with nanoseconds), from the series a test sets per metric."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        self.series: dict[str, list[tuple[str, str]]] = {}  # metric -> [(endTime, int64Value)]
        self.status = 200
        self.asked: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _json(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # the JWT grant of a service account key
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._json(200, {"access_token": "loopback-token", "expires_in": 3600, "token_type": "Bearer"})

            def do_GET(self):
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                owner.asked.append({"path": url.path, "auth": self.headers.get("Authorization"), **query})
                if owner.status != 200:
                    return self._json(owner.status, {"error": {"code": owner.status, "message": "Permission monitoring.timeSeries.list denied"}})
                metric = query["filter"].split('metric.type="pubsub.googleapis.com/subscription/')[1].split('"')[0]
                points = [{"interval": {"startTime": end, "endTime": end}, "value": {"int64Value": value}} for end, value in owner.series.get(metric, [])]
                series = [{"metric": {"type": f"pubsub.googleapis.com/subscription/{metric}"}, "resource": {"type": "pubsub_subscription"},
                           "metricKind": "GAUGE", "valueType": "INT64", "points": points}] if points else []
                self._json(200, {"timeSeries": series, "unit": ""})

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def monitoring(tmp_path, monkeypatch):
    """A service account key (a fresh RSA key) whose token endpoint is the loopback server, as Application Default Credentials."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    server = _Monitoring()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    (tmp_path / "key.json").write_text(json.dumps({
        "type": "service_account", "project_id": "demo-project", "private_key_id": "k1", "private_key": key,
        "client_email": "status@demo-project.iam.gserviceaccount.com", "client_id": "1", "token_uri": f"{server.url}/token",
    }))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "key.json"))
    yield server
    server.server.shutdown()


SUBSCRIPTION = "pubsub:projects/demo-project/topics/async-demo-documents/subscriptions/async-demo-documents"


def test_gcp_queue_depth_reads_pubsubs_metrics_from_cloud_monitoring(monitoring):
    """The real google-auth flow (a signed JWT for a token) and the REST call, against Monitoring's documented answer."""
    pytest.importorskip("google.auth.transport.requests")
    from mlkit.clouds import gcp_queues

    now = datetime.datetime.now(datetime.timezone.utc)

    def at(minutes: int) -> str:
        return (now - datetime.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S") + ".123456789Z"

    monitoring.series = {
        "num_undelivered_messages": [(at(1), "12"), (at(2), "30")],  # newest first, as Monitoring lists them
        "oldest_unacked_message_age": [(at(1), "340"), (at(3), "200")],
        "dead_letter_message_count": [(at(5), "2"), (at(70), "1")],  # forwarded to the dead-letter topic, per minute
    }
    depth = gcp_queues.depth(SUBSCRIPTION, "pubsub:projects/demo-project/topics/async-demo-documents-dead-letter", monitoring=f"{monitoring.url}/v3")
    assert depth.as_json() == {"queued": 12, "in_flight": None, "oldest_s": 340.0, "dead_letter": 3, "problem": None}
    first = monitoring.asked[0]
    assert first["path"] == "/v3/projects/demo-project/timeSeries" and first["auth"] == "Bearer loopback-token"
    assert first["filter"] == ('metric.type="pubsub.googleapis.com/subscription/num_undelivered_messages" AND resource.type="pubsub_subscription" '
                               'AND resource.label.subscription_id="async-demo-documents"')
    assert first["interval.startTime"] < first["interval.endTime"]

    monitoring.status = 403
    denied = gcp_queues.depth(SUBSCRIPTION, None, monitoring=f"{monitoring.url}/v3")
    assert denied.queued is None and denied.problem is not None
    assert denied.problem.startswith("Cloud Monitoring, subscription async-demo-documents: num_undelivered_messages: HTTP 403:"), denied.problem
