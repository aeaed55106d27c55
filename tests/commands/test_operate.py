"""`mlkit apply --only apis`, `status`, `predict`, `logs` and `delete` as a user runs them: the real
CLI in a subprocess, a local Kubernetes API emulator as the cluster (reached through a kubeconfig
context, as `cluster.existing.context` says), moto as AWS (STS, ECR), and a real runtime server
behind the emulator's service proxy. The test plays the Deployment controller."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import threading

import httpx
import pytest

from tests.conftest import EXAMPLES, aws_env, emulator_kubeconfig, mlkit
from tests.runtime.conftest import start as start_runtime

SPEC = """\
project: ops-demo
cloud: aws
region: us-west-2
cluster: {existing: {name: prod-eks, context: emulator}}
apis:
  - name: sentiment
    predictor: predictor.py:Predictor
    model: s3://team-models/sentiment/v3/
    config: {threshold: 0.5}
  - name: spam
    predictor: predictor.py:Predictor
    model: s3://team-models/spam/v1/
"""
NS = "ops-demo"


@pytest.fixture
def proj(tmp_path, k8s, moto):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "mlkit.yaml").write_text(SPEC)
    shutil.copy(EXAMPLES / "sentiment" / "predictor.py", root / "predictor.py")
    (root / "requirements.txt").write_text("")
    kubeconfig = emulator_kubeconfig(tmp_path / "kubeconfig", k8s.url)
    env = aws_env(moto) | {"KUBECONFIG": str(kubeconfig)}
    assert mlkit("render", cwd=root, env=env).returncode == 0
    return root, env


def push_images(root, moto):
    """What a CI build would have pushed: each API's image under its content-hash tag."""
    import boto3

    from mlkit.deploy.images import context
    from mlkit.spec.loader import load

    spec = load(root / "mlkit.yaml")
    ecr = boto3.client("ecr", region_name="us-west-2", endpoint_url=moto, aws_access_key_id="testing", aws_secret_access_key="testing")
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):  # a second deploy pushes again
        ecr.create_repository(repositoryName="ops-demo")
    tags = {}
    for api in spec.apis:
        tags[api.name] = context(root, spec, api).tag
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "layers": [],
                "config": {"digest": "sha256:" + "0" * 64, "size": 0, "mediaType": "application/vnd.docker.container.image.v1+json"},
            }
        )
        ecr.put_image(repositoryName="ops-demo", imageManifest=manifest, imageTag=f"{api.name}-{tags[api.name]}")
    return tags


class Controller:
    """The Deployment controller and kubelet, reduced to what rollouts show: each new version becomes ready."""

    def __init__(self, url: str):
        self.http = httpx.Client(base_url=url)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(0.2):
            for d in self.http.get(f"/apis/apps/v1/namespaces/{NS}/deployments").json().get("items", []):
                generation = d["metadata"].get("generation", 1)
                if d.get("status", {}).get("observedGeneration") != generation:
                    status = {"observedGeneration": generation, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1, "readyReplicas": 1}
                    self.http.patch(
                        f"/apis/apps/v1/namespaces/{NS}/deployments/{d['metadata']['name']}",
                        json={"status": status},
                        headers={"Content-Type": "application/merge-patch+json"},
                    )

    def close(self):
        self.stop.set()
        self.thread.join(5)


def controlled(url: str, *args: str, cwd, env) -> subprocess.CompletedProcess:
    """Run the CLI while the Controller plays the Deployment controller, so that rollouts finish."""
    controller = Controller(url)
    try:
        return mlkit(*args, cwd=cwd, env=env)
    finally:
        controller.close()


def test_apply_status_predict_logs_delete(proj, k8s, moto, tmp_path):
    root, env = proj
    tags = push_images(root, moto)
    applied = controlled(k8s.url, "apply", "--only", "apis", "--timeout", "30", "--json", cwd=root, env=env)
    assert applied.returncode == 0, applied.stderr[-3000:]
    assert f"image of sentiment: 123456789012.dkr.ecr.us-west-2.amazonaws.com/ops-demo:sentiment-{tags['sentiment']} is in the registry" in applied.stderr
    assert "~ infra/k8s/sentiment/deployment.yaml" in applied.stderr  # the deploy, as a reviewable diff
    assert "sentiment: 1/1 ready" in applied.stderr and "spam: 1/1 ready" in applied.stderr
    report = json.loads(applied.stdout)["apis"]
    assert sorted(report["rolled_out"]) == ["sentiment", "spam"]
    facts = json.loads((root / ".mlkit/deploy.json").read_text())
    assert facts["aws_account_id"] == "123456789012" and facts["images"] == tags
    on_cluster = {d["metadata"]["name"]: d for d in k8s.objects("deployments")}
    image = on_cluster["sentiment"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"123456789012.dkr.ecr.us-west-2.amazonaws.com/ops-demo:sentiment-{tags['sentiment']}"
    sa = next(s for s in k8s.objects("serviceaccounts") if s["metadata"]["name"] == "sentiment")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == "arn:aws:iam::123456789012:role/ops-demo-sentiment"

    again = mlkit("apply", "--only", "apis", "--timeout", "5", cwd=root, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "no Deployment changed: nothing to roll out" in again.stderr

    status = mlkit("status", "--json", cwd=root, env=env)
    assert status.returncode == 0, status.stderr
    rows = {r["api"]: r for r in json.loads(status.stdout)["apis"]}
    assert rows["sentiment"]["ready"] == 1 and rows["sentiment"]["rollout"] == "1/1 ready"
    assert rows["sentiment"]["endpoint"] == "in-cluster: http://sentiment.ops-demo.svc/predict"
    table = mlkit("status", cwd=root, env=env)
    assert table.stdout.splitlines()[0].split()[:3] == ["API", "READY", "ENDPOINT"]

    runtime = start_runtime(tmp_path, f"{EXAMPLES / 'sentiment' / 'predictor.py'}:Predictor", "--model-dir", str(EXAMPLES / "sentiment" / "model"))
    try:
        # The API server's service proxy, as the emulator plays it (Running.proxy: method, path, headers,
        # status and body passed through) to the real runtime on loopback; a hand-written handler here
        # forwarded only the body and answered 200 with whatever JSON came back.
        k8s.proxy(NS, "sentiment:http", runtime.url)
        answer = mlkit("predict", "sentiment", '{"text": "a great, wonderful film"}', cwd=root, env=env)
        assert answer.returncode == 0, answer.stderr
        assert json.loads(answer.stdout)["label"] == "positive"
    finally:
        runtime.proc.terminate()
        runtime.proc.wait(10)
    bad = mlkit("predict", "sentiment", "{text: great}", cwd=root, env=env)
    assert bad.returncode == 1 and "PAYLOAD: not valid JSON" in bad.stderr
    unknown = mlkit("predict", "nope", "{}", cwd=root, env=env)
    assert unknown.returncode == 1 and "no API named 'nope' (APIs: sentiment, spam)" in unknown.stderr

    httpx.post(
        f"{k8s.url}/api/v1/namespaces/{NS}/pods",
        json={"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sentiment-abc", "namespace": NS, "labels": {"mlkit.dev/api": "sentiment"}}},
    )
    k8s.emulator[f"get /api/v1/namespaces/{NS}/pods/sentiment-abc/log"] << b'{"route": "/predict", "status": 200}\n'
    logs = mlkit("logs", "sentiment", cwd=root, env=env)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == '[sentiment-abc] {"route": "/predict", "status": 200}\n'
    no_pods = mlkit("logs", "spam", cwd=root, env=env)
    assert no_pods.returncode == 1 and "API spam has no pods" in no_pods.stderr

    refused = mlkit("delete", "sentiment", cwd=root, env=env, input="n\n")
    assert refused.returncode == 1 and "delete cancelled; nothing was changed" in refused.stderr
    assert {d["metadata"]["name"] for d in k8s.objects("deployments")} == {"sentiment", "spam"}
    deleted = mlkit("delete", "sentiment", "--yes", cwd=root, env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert {d["metadata"]["name"] for d in k8s.objects("deployments")} == {"spam"}
    assert "still in mlkit.yaml" in deleted.stderr

    # destroy starts with the APIs: everything of the project goes, the namespace last.
    gone = mlkit("destroy", "--only", "apis", "--auto-approve", "--json", cwd=root, env=env)
    assert gone.returncode == 0, gone.stderr
    assert json.loads(gone.stdout)["apis"]["deleted"] > 5
    assert k8s.objects("deployments") == [] and k8s.objects("namespaces") == []


def test_apply_without_the_image_and_without_docker_says_how_to_build(proj, k8s, moto, monkeypatch):
    root, env = proj
    env = env | {"PATH": "/usr/bin:/bin"}  # no docker here, whatever the machine has
    result = mlkit("apply", "--only", "apis", cwd=root, env=env)
    assert result.returncode == 1, result.stderr
    assert "the image of sentiment" in result.stderr and "is not in the registry and cannot be built here" in result.stderr
    assert "mlkit build --context-dir" in result.stderr
    assert k8s.objects("deployments") == []


def test_an_unknown_kubeconfig_context_is_named(proj):
    root, env = proj
    (root / "mlkit.yaml").write_text(SPEC.replace("context: emulator", "context: staging"))
    result = mlkit("status", cwd=root, env=env)
    assert result.returncode == 1
    assert "has no context 'staging' (contexts: emulator); fix cluster.existing.context in mlkit.yaml" in result.stderr
