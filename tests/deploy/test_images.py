"""Image build contexts: what goes in, the tag as a content hash, the Dockerfile per accelerator,
ECR login against moto, and `mlkit build --context-dir` for CI systems with Docker."""

from __future__ import annotations

import json
import shutil

import boto3
import pytest

from mlkit.deploy import images
from mlkit.errors import ToolError, UserError
from mlkit.spec import load
from tests.conftest import EXAMPLES, aws_env, mlkit


def example(tmp_path, name="aws-accelerators"):
    root = tmp_path / name
    shutil.copytree(EXAMPLES / name, root)
    (root / "infra").mkdir()
    (root / "infra" / "noise.tf").write_text("# not part of any image\n")
    return root, load(root / "mlkit.yaml")


def test_context_holds_code_runtime_and_dockerfile_but_not_models_or_infra(tmp_path):
    root, spec = example(tmp_path)
    ctx = images.context(root, spec, spec.apis[0])
    assert {"Dockerfile", "requirements.txt", "runtime-requirements.txt", "app/predictor.py", "mlkit_runtime/app.py"} <= set(ctx.files)
    assert not any(p.startswith(("app/infra/", "app/model/")) for p in ctx.files) and "app/mlkit.yaml" not in ctx.files
    assert b"fastapi" in ctx.files["runtime-requirements.txt"]
    dockerfile = ctx.files["Dockerfile"].decode()
    assert "FROM python:3.11-slim-bookworm" in dockerfile and "USER 10001:10001" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "mlkit_runtime"]' in dockerfile


def test_each_accelerator_gets_its_base_image(tmp_path):
    root, spec = example(tmp_path)
    bases = {api.name: images.context(root, spec, api).files["Dockerfile"].decode().split("FROM ", 1)[1].split("\n", 1)[0] for api in spec.apis}
    assert bases["sentiment"].startswith("python:")
    assert bases["sentiment-gpu"].startswith("pytorch/pytorch:") and "cuda" in bases["sentiment-gpu"]
    assert bases["sentiment-neuron"].startswith("public.ecr.aws/neuron/pytorch-inference-neuronx")
    root, spec = example(tmp_path, "gcp-tpu-v5e")
    tpu = images.context(root, spec, next(a for a in spec.apis if a.compute.tpu_chips)).files["Dockerfile"].decode()
    assert "torch_xla[tpu]" in tpu


def test_tag_is_stable_and_follows_the_code(tmp_path):
    root, spec = example(tmp_path)
    api = spec.apis[0]
    tag = images.context(root, spec, api).tag
    assert len(tag) == 12 and images.context(root, spec, api).tag == tag
    (root / "model" / "weights.json").write_text("{}")  # models travel separately
    (root / "infra" / "noise.tf").write_text("# edited\n")
    (root / "mlkit.yaml").write_text((root / "mlkit.yaml").read_text().replace("max_replicas: 3", "max_replicas: 4"))
    assert images.context(root, spec, api).tag == tag  # a spec change rolls pods through the manifests, not a rebuild
    (root / "predictor.py").write_text((root / "predictor.py").read_text() + "\n# changed\n")
    assert images.context(root, spec, api).tag != tag


def test_ecr_login_comes_from_boto3(moto, monkeypatch):
    for key, value in aws_env(moto).items():
        monkeypatch.setenv(key, value)
    user, password, endpoint = images.ecr_login("us-west-2")
    assert user == "AWS" and password and endpoint.startswith("https://")
    boto3.client("ecr", region_name="us-west-2").create_repository(repositoryName="demo")
    assert images.ecr_has("us-west-2", "demo", "api-123") is False
    assert images.ecr_has("us-west-2", "absent", "api-123") is False


def test_build_writes_contexts_for_ci_and_explains_a_missing_docker(tmp_path):
    root, spec = example(tmp_path)
    out = mlkit("build", "sentiment", "--context-dir", str(tmp_path / "ctx"), "--json", cwd=root)
    assert out.returncode == 0, out.stderr
    built = json.loads(out.stdout)["images"]
    assert [b["api"] for b in built] == ["sentiment"]
    assert (tmp_path / "ctx" / "sentiment" / "Dockerfile").is_file()
    assert built[0]["image"].endswith(f"/accel-demo:sentiment-{built[0]['tag']}")
    unknown = mlkit("build", "nope", "--context-dir", str(tmp_path / "ctx"), cwd=root)
    assert unknown.returncode == 1 and "no API named nope" in unknown.stderr
    if images.docker_problem():  # this machine has no Docker engine; CI machines neither
        no_docker = mlkit("build", "sentiment", cwd=root)
        assert no_docker.returncode == 1 and "cannot build here" in no_docker.stderr and "--context-dir" in no_docker.stderr


class FakeRegistry:
    """A Docker Registry v2 stand-in on 127.0.0.1 with the bearer-token handshake of Artifact
    Registry, ECR and Docker Hub: a manifest HEAD without a token answers 401 naming the realm."""

    def __init__(self, tags: set[str], user: str, password: str):
        import base64
        import http.server
        import threading

        registry = self
        self.tags, self.grants = tags, 0
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.startswith("/token") and self.headers.get("Authorization") == expected:
                    registry.grants += 1
                    body = json.dumps({"token": "granted"}).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                else:
                    self.send_response(401)
                    self.end_headers()

            def do_HEAD(self):
                if self.headers.get("Authorization") != "Bearer granted":
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", f'Bearer realm="http://127.0.0.1:{registry.port}/token",service="fake",scope="repository:p/r/api:pull"')
                    self.end_headers()
                    return
                tag = self.path.rsplit("/", 1)[1]
                self.send_response(200 if tag in registry.tags else 404)
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_registry_lookup_follows_the_token_handshake():
    registry = FakeRegistry({"abc123"}, "oauth2accesstoken", "ya29.token")
    try:
        host = f"127.0.0.1:{registry.port}"
        assert images.registry_has(f"{host}/p/r/api:abc123", "oauth2accesstoken", "ya29.token", scheme="http") is True
        assert images.registry_has(f"{host}/p/r/api:def456", "oauth2accesstoken", "ya29.token", scheme="http") is False
        assert registry.grants == 2
        with pytest.raises(ToolError, match="asking 127.0.0.1"):
            images.registry_has(f"{host}/p/r/api:abc123", "oauth2accesstoken", "wrong", scheme="http")
    finally:
        registry.server.shutdown()


def test_ecr_calls_without_aws_credentials_say_how_to_provide_them(tmp_path, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # earlier tests' session holds their credentials
    for call in (lambda: images.ecr_has("us-west-2", "demo", "api-123"), lambda: images.ecr_login("us-west-2")):
        with pytest.raises(UserError, match=r"^no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID"):
            call()
