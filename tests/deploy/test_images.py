"""Image build contexts: what goes in, the tag as a content hash, the Dockerfile per accelerator,
ECR login against moto, and `mlkit build --context-dir` for CI systems with Docker."""

from __future__ import annotations

import json
import shutil

import boto3
import pytest

from mlkit import clouds
from mlkit.clouds import aws
from mlkit.clouds.registry import registry_has
from mlkit.deploy import images, runtime_wheel
from mlkit.errors import ToolError, UserError
from mlkit.spec.loader import load
from tests.conftest import EXAMPLES, REPO, assert_one_line_error, aws_env, mlkit


def example(tmp_path, name="aws-accelerators"):
    root = tmp_path / name
    shutil.copytree(EXAMPLES / name, root)
    (root / "infra").mkdir()
    (root / "infra" / "noise.tf").write_text("# not part of any image\n")
    return root, load(root / "mlkit.yaml")


def test_context_holds_code_runtime_and_dockerfile_but_not_models_or_infra(tmp_path):
    root, spec = example(tmp_path)
    ctx = images.context(root, spec, spec.apis[0])
    wheel = f"build/{runtime_wheel.filename()}"
    assert {"Dockerfile", "build/install.sh", "build/requirements.txt", "build/accelerator-requirements.txt", wheel, "app/predictor.py"} <= set(ctx.files)
    assert not any(p.startswith(("app/infra/", "app/model/")) for p in ctx.files) and "app/mlkit.yaml" not in ctx.files
    assert not any(p.endswith(".py") and not p.startswith("app/") for p in ctx.files)  # the runtime travels only inside its wheel
    dockerfile = ctx.files["Dockerfile"].decode()
    assert "FROM python:3.11-slim-bookworm" in dockerfile and "USER 10001:10001" in dockerfile
    assert "RUN sh /tmp/build/install.sh" in dockerfile and "COPY build/ /tmp/build/" in dockerfile
    assert 'ENTRYPOINT ["python", "-m", "mlkit_runtime"]' in dockerfile


def test_the_runtime_wheel_holds_every_runtime_file_with_its_hash_and_the_runtime_extra(tmp_path):
    import base64
    import hashlib
    import io
    import zipfile

    root, spec = example(tmp_path)
    data = images.context(root, spec, spec.apis[0]).files[f"build/{runtime_wheel.filename()}"]
    assert data == runtime_wheel.build()  # byte for byte: the tag depends on it
    whl = zipfile.ZipFile(io.BytesIO(data))
    source = {f"mlkit_runtime/{p.relative_to(REPO / 'runtime').as_posix()}" for p in (REPO / "runtime").rglob("*.py")}
    assert source <= set(whl.namelist()) and "mlkit_runtime/routes/health.py" in source
    info = f"mlkit_runtime-{runtime_wheel.__version__}.dist-info"
    record = [line.split(",") for line in whl.read(f"{info}/RECORD").decode().splitlines()]
    for path, digest, size in record:
        if path.endswith("RECORD"):
            continue
        body = whl.read(path)
        assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode() and int(size) == len(body)
    assert {r[0] for r in record} == set(whl.namelist())
    metadata = whl.read(f"{info}/METADATA").decode()
    assert "Requires-Dist: fastapi" in metadata and "Requires-Dist: uvicorn[standard]" in metadata


def test_each_accelerator_gets_its_base_image(tmp_path):
    root, spec = example(tmp_path)
    bases = {api.name: images.context(root, spec, api).files["Dockerfile"].decode().split("FROM ", 1)[1].split("\n", 1)[0] for api in spec.apis}
    assert bases["sentiment"].startswith("python:")
    assert bases["sentiment-gpu"].startswith("pytorch/pytorch:") and "cuda" in bases["sentiment-gpu"]
    assert bases["sentiment-neuron"].startswith("public.ecr.aws/neuron/pytorch-inference-neuronx")
    root, spec = example(tmp_path, "gcp-tpu-v5e")
    tpu = images.context(root, spec, next(a for a in spec.apis if a.compute.tpu_chips)).files
    assert "torch_xla[tpu]" in tpu["build/accelerator-requirements.txt"].decode() and "libtpu-releases" in tpu["Dockerfile"].decode()


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
    user, password, endpoint = aws.ecr_login("us-west-2")
    assert user == "AWS" and password and endpoint.startswith("https://")
    boto3.client("ecr", region_name="us-west-2").create_repository(repositoryName="demo")
    assert aws.ecr_has("us-west-2", "demo", "api-123") is False
    assert aws.ecr_has("us-west-2", "absent", "api-123") is False


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
        assert registry_has(f"{host}/p/r/api:abc123", "oauth2accesstoken", "ya29.token", scheme="http") is True
        assert registry_has(f"{host}/p/r/api:def456", "oauth2accesstoken", "ya29.token", scheme="http") is False
        assert registry.grants == 2
        with pytest.raises(ToolError, match="asking 127.0.0.1"):
            registry_has(f"{host}/p/r/api:abc123", "oauth2accesstoken", "wrong", scheme="http")
    finally:
        registry.server.shutdown()


def test_ecr_calls_without_aws_credentials_say_how_to_provide_them(tmp_path, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # earlier tests' session holds their credentials
    for call in (lambda: aws.ecr_has("us-west-2", "demo", "api-123"), lambda: aws.ecr_login("us-west-2")):
        with pytest.raises(UserError, match=r"^no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID"):
            call()


def plant_secrets(root):
    """What lies around in real project folders and must never reach an image or a bucket."""
    (root / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (root / ".env").write_text("AWS_SECRET_ACCESS_KEY=planted\n")
    (root / ".env.prod").write_text("TOKEN=planted\n")
    (root / "certs").mkdir()
    (root / "certs" / "server.pem").write_text("planted\n")
    (root / "certs" / "server.key").write_text("planted\n")
    (root / "credentials.json").write_text("{}\n")
    (root / "terraform.tfstate.backup").write_text("{}\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    (root / "lib" / ".terraform").mkdir(parents=True)
    (root / "lib" / ".terraform" / "plugin").write_text("x\n")
    (root / "lib" / "util.py").write_text("X = 1\n")
    (root / ".mlkit").mkdir(exist_ok=True)
    (root / ".mlkit" / "deploy.json").write_text("{}\n")
    (root / ".streamlit").mkdir()
    (root / ".streamlit" / "config.toml").write_text("[server]\n")
    (root / "notebooks").mkdir()
    (root / "notebooks" / "scratch.ipynb").write_text("{}\n")
    # The project's own rules: leave notebooks out, bring one hidden folder in, and try (in vain) to bring secrets in.
    (root / ".mlkitignore").write_text("# ours\nnotebooks/\n!.streamlit/\n!.env\n!id_rsa\n")


def test_secrets_and_state_stay_out_of_the_context_whatever_mlkitignore_says(tmp_path):
    root, spec = example(tmp_path)
    plant_secrets(root)
    app = {p.removeprefix("app/") for p in images.context(root, spec, spec.apis[0]).files if p.startswith("app/")}
    assert app == {"README.md", "predictor.py", "requirements.txt", "lib/util.py", ".streamlit/config.toml"}


def test_build_context_dir_says_what_each_context_holds_and_warns_of_large_files(tmp_path):
    root, spec = example(tmp_path)
    plant_secrets(root)
    with open(root / "lib" / "big.bin", "wb") as f:  # sparse: 101 MB on paper, nothing on disk
        f.truncate(101 * 1024 * 1024)
    out = mlkit("build", "sentiment", "--context-dir", str(tmp_path / "ctx"), "--json", cwd=root)
    assert out.returncode == 0, out.stderr
    built = json.loads(out.stdout)["images"][0]
    written = [p for p in (tmp_path / "ctx" / "sentiment").rglob("*") if p.is_file() and p.name != images.CONTEXT_MARKER]
    assert built["files"] == len(written) and built["bytes"] == sum(p.stat().st_size for p in written)
    assert f"sentiment: context in {tmp_path / 'ctx' / 'sentiment'}: {built['files']} files, {built['bytes']:,} bytes" in out.stderr
    assert "warning: sentiment: app/lib/big.bin is 106 MB" in out.stderr
    names = {p.name for p in written}
    secrets = {"id_rsa", ".env", ".env.prod", "server.pem", "server.key", "credentials.json", "terraform.tfstate.backup", "deploy.json", "scratch.ipynb"}
    assert not names & secrets


def test_a_symlink_leading_outside_the_project_is_refused_naming_it(tmp_path, sentinel):
    root, _ = example(tmp_path)
    (root / "leak").symlink_to(sentinel.root / "secrets")
    out = mlkit("build", "--context-dir", str(tmp_path / "ctx"), cwd=root)
    assert_one_line_error(out, f"{root / 'leak'}: a symlink to {sentinel.root / 'secrets'}, outside {root}")
    assert not (tmp_path / "ctx").exists()
    (root / "leak").unlink()
    (root / "notes.txt").symlink_to(sentinel.root / "notes.txt")  # a file link as well as a folder link
    out = mlkit("build", "--context-dir", str(tmp_path / "ctx"), cwd=root)
    assert_one_line_error(out, f"{root / 'notes.txt'}: a symlink to {sentinel.root / 'notes.txt'}")
    (root / "notes.txt").unlink()
    (root / "lib").mkdir()
    (root / "lib" / "util.py").write_text("X = 1\n")
    (root / "shared").symlink_to(root / "lib")  # a link inside the project is followed
    (root / ".mlkitignore").write_text("")
    out = mlkit("build", "sentiment", "--context-dir", str(tmp_path / "ctx"), cwd=root)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "ctx" / "sentiment" / "app" / "shared" / "util.py").read_text() == "X = 1\n"
    sentinel.assert_untouched()


@pytest.mark.parametrize(("link", "target", "is_dir", "shown"), [
    ("app/settings.txt", ".env", False, "a symlink to .env"),
    ("app/repo_meta/config", ".git/config", False, "a symlink to .git/config"),
    ("app/meta", ".git", True, "a symlink to .git"),
    ("app/record.json", ".mlkit/deploy.json", False, "a symlink to .mlkit/deploy.json"),
    ("app/notebook.json", "notebooks/scratch.ipynb", False, "a symlink to notebooks/scratch.ipynb"),  # .mlkitignore's own rule
])
def test_a_link_inside_the_project_ships_only_what_the_rules_let_through_under_its_own_path(tmp_path, link, target, is_dir, shown):
    """The rules once matched a link's own path only: `app/settings.txt -> .env` shipped the .env. A link whose
    target the rules leave out is refused, naming both (a model or app silently missing a file is worse)."""
    root, _ = example(tmp_path)
    plant_secrets(root)  # .env, .git/config, .mlkit/deploy.json, notebooks/ (which .mlkitignore leaves out), ...
    (root / link).parent.mkdir(parents=True, exist_ok=True)
    (root / link).symlink_to(root / target, target_is_directory=is_dir)
    out = mlkit("build", "sentiment", "--context-dir", str(tmp_path / "ctx"), cwd=root)
    assert_one_line_error(out, f"{root / link}: {shown}, which mlkit leaves out", ".mlkitignore")
    assert not (tmp_path / "ctx").exists()
    (root / ".mlkitignore").write_text((root / ".mlkitignore").read_text() + f"{link}\n")  # the way out the line names
    out = mlkit("build", "sentiment", "--context-dir", str(tmp_path / "ctx"), "--json", cwd=root)
    assert out.returncode == 0, out.stderr
    shipped = {p.relative_to(tmp_path / "ctx" / "sentiment").as_posix() for p in (tmp_path / "ctx" / "sentiment").rglob("*")}
    assert not any(p.startswith(f"app/{link.removeprefix('app/')}") for p in shipped)


def test_a_file_reached_through_a_linked_folder_is_checked_under_its_own_path(tmp_path):
    """`lib -> conf` where conf/ holds `secrets/` that .mlkitignore leaves out by its anchored path."""
    root, _ = example(tmp_path)
    (root / "conf" / "secrets").mkdir(parents=True)
    (root / "conf" / "secrets" / "token.txt").write_text("planted\n")
    (root / "conf" / "ok.txt").write_text("fine\n")
    (root / ".mlkitignore").write_text("/conf/secrets/\n")
    (root / "lib").symlink_to(root / "conf")
    out = mlkit("build", "sentiment", "--context-dir", str(tmp_path / "ctx"), cwd=root)
    assert_one_line_error(out, f"{root / 'lib' / 'secrets'}: through a symlinked folder, conf/secrets, which mlkit leaves out")
    (root / "conf" / "secrets" / "token.txt").unlink()
    (root / "conf" / "secrets").rmdir()
    out = mlkit("build", "sentiment", "--context-dir", str(tmp_path / "ctx"), cwd=root)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "ctx" / "sentiment" / "app" / "lib" / "ok.txt").read_text() == "fine\n"


def test_a_backtracking_ignore_pattern_costs_milliseconds(tmp_path):
    """`*a*a*a*a*a*a*a*a*b` against a 60-character name took 51 s of CPU with Python's re; RE2 is linear."""
    import time

    from mlkit.deploy import files

    root, _ = example(tmp_path)
    (root / ".mlkitignore").write_text("*a*a*a*a*a*a*a*a*b\n" * 20 + "**/*a*a*a*a*a*a*a*a*a*a*a*a*c/**\n")
    (root / ("a" * 60)).write_text("x\n")
    (root / ("a" * 60 + "b")).write_text("left out\n")
    started = time.process_time()
    rules = files.rules(root)
    assert not rules.match_file("a" * 60) and rules.match_file("a" * 60 + "b") and not rules.match_file("a" * 200 + "/x")
    assert time.process_time() - started < 1.0
    out = mlkit("build", "sentiment", "--context-dir", str(tmp_path / "ctx"), cwd=root, timeout=60)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "ctx" / "sentiment" / "app" / ("a" * 60)).is_file() and not (tmp_path / "ctx" / "sentiment" / "app" / ("a" * 60 + "b")).exists()


def test_an_ignore_file_is_bounded(tmp_path):
    root, _ = example(tmp_path)
    (root / ".mlkitignore").write_text("# padding\n" * 40_000)
    out = mlkit("build", "--context-dir", str(tmp_path / "ctx"), cwd=root)
    assert_one_line_error(out, f"{root / '.mlkitignore'}: 400,000 bytes; an ignore file is at most 256 KiB")


def test_a_context_dir_inside_the_project_is_refused_unless_ignored(tmp_path):
    root, _ = example(tmp_path)
    (root / "sentiment").mkdir()
    (root / "sentiment" / "keep.txt").write_text("the team's\n")
    for where in (".", "ctx"):
        out = mlkit("build", "--context-dir", where, cwd=root)
        assert_one_line_error(out, f"--context-dir {where}: inside the project", ".mlkitignore")
    assert (root / "sentiment" / "keep.txt").read_text() == "the team's\n" and not (root / "ctx").exists()
    (root / ".mlkitignore").write_text("ctx/\n")
    out = mlkit("build", "sentiment", "--context-dir", "ctx", "--json", cwd=root)
    assert out.returncode == 0, out.stderr
    again = mlkit("build", "sentiment", "--context-dir", "ctx", "--json", cwd=root)
    assert json.loads(again.stdout)["images"][0]["tag"] == json.loads(out.stdout)["images"][0]["tag"]  # the written context did not enter the next


def test_an_mlkitignore_that_is_a_link_or_not_text_is_one_error_line(tmp_path, sentinel):
    root, _ = example(tmp_path)
    (root / ".mlkitignore").symlink_to(sentinel.root / "notes.txt")
    out = mlkit("build", "--context-dir", str(tmp_path / "ctx"), cwd=root)
    assert_one_line_error(out, f"{root / '.mlkitignore'}: must be a plain file of gitignore patterns, not a link or a folder")
    (root / ".mlkitignore").unlink()
    (root / ".mlkitignore").write_bytes(b"\xff\xfe\x00bad")
    out = mlkit("build", "--context-dir", str(tmp_path / "ctx"), cwd=root)
    assert_one_line_error(out, f"{root / '.mlkitignore'}: cannot read it", "UTF-8")
    sentinel.assert_untouched()


def test_engine_apis_run_their_engines_image_and_are_never_built(tmp_path):
    root, _ = example(tmp_path)
    spec_file = root / "mlkit.yaml"
    spec_file.write_text(spec_file.read_text() + "  - {name: chat, engine: vllm, model: model/, compute: {cpu: 2, memory: 16Gi, gpu: 1}}\n")
    spec = load(spec_file)
    assert [a.name for a in images.built(spec.apis)] == ["sentiment", "sentiment-gpu", "sentiment-neuron"]
    with pytest.raises(UserError, match="apis.chat: runs engine vllm's published image"):
        images.context(root, spec, spec.apis[-1])
    out = mlkit("build", "--context-dir", str(tmp_path / "ctx"), "--json", cwd=root)
    assert out.returncode == 0, out.stderr
    assert [b["api"] for b in json.loads(out.stdout)["images"]] == ["sentiment", "sentiment-gpu", "sentiment-neuron"]
    assert "chat: runs engine vllm's published image; nothing to build" in out.stderr
    assert not (tmp_path / "ctx" / "chat").exists()


def test_the_llm_example_builds_its_predictor_image_and_not_its_engine_apis(tmp_path):
    """examples/llm holds a CPU predictor API and a vLLM API on a GPU pool: `mlkit build` makes one context."""
    root, spec = example(tmp_path, "llm")
    assert [a.name for a in images.built(spec.apis)] == ["chat"] and [a.engine for a in spec.apis] == [None, "vllm"]
    out = mlkit("build", "--context-dir", str(tmp_path / "ctx"), "--json", cwd=root)
    assert out.returncode == 0, out.stderr
    assert [b["api"] for b in json.loads(out.stdout)["images"]] == ["chat"]
    assert "chat-gpu: runs engine vllm's published image; nothing to build" in out.stderr
    assert (tmp_path / "ctx" / "chat" / "Dockerfile").is_file() and not (tmp_path / "ctx" / "chat-gpu").exists()


def test_a_context_dir_never_replaces_what_mlkit_did_not_write(tmp_path, sentinel):
    """--context-dir DIR writes DIR/<api>: a folder of the user's by that name, a file or a link there is one
    line and stays as it was; a context mlkit wrote before is replaced."""
    root, _ = example(tmp_path)
    ctx = tmp_path / "ctx"
    (ctx / "sentiment").mkdir(parents=True)
    (ctx / "sentiment" / "keep.txt").write_text("the team's\n")
    out = mlkit("build", "sentiment", "--context-dir", str(ctx), cwd=root)
    assert_one_line_error(out, f"{ctx / 'sentiment'}: holds files mlkit did not write")
    assert (ctx / "sentiment" / "keep.txt").read_text() == "the team's\n"
    (ctx / "sentiment" / "keep.txt").unlink()
    (ctx / "sentiment").rmdir()
    (ctx / "sentiment").symlink_to(sentinel.root)
    out = mlkit("build", "sentiment", "--context-dir", str(ctx), cwd=root)
    assert_one_line_error(out, f"{ctx / 'sentiment'}: not a folder mlkit wrote")
    sentinel.assert_untouched()
    (ctx / "sentiment").unlink()
    for _ in range(2):  # the second run replaces the first's context
        out = mlkit("build", "sentiment", "--context-dir", str(ctx), cwd=root)
        assert out.returncode == 0, out.stderr
    assert (ctx / "sentiment" / images.CONTEXT_MARKER).is_file() and (ctx / "sentiment" / "Dockerfile").is_file()


def test_an_unreadable_context_folder_is_one_line(tmp_path, monkeypatch):
    """A folder mlkit may not list (mode 0 for a non-root user; root here, so the OS refusal is raised
    in its place) is not one mlkit wrote: a UserError naming it, not a PermissionError traceback."""
    folder = tmp_path / "ctx" / "sentiment"
    folder.mkdir(parents=True)

    def refuse(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(type(folder), "iterdir", refuse)
    with pytest.raises(UserError, match="cannot look inside it .Permission denied"):
        images.check_replaceable(folder)


@pytest.mark.parametrize(
    ("example", "wanted"),
    [("batch", "boto3>=1.34"), ("async", "boto3>=1.34")],
)
def test_a_worker_kinds_image_carries_its_clouds_client_from_the_extras(example, wanted):
    """A batch or async worker talks to the bucket (and queue) itself: without the client the pod fails on its first read."""
    spec = load(EXAMPLES / example / "mlkit.yaml")
    requirements = images.context(EXAMPLES / example, spec, spec.apis[0]).files["build/requirements.txt"].decode()
    project = (EXAMPLES / example / "requirements.txt").read_text()
    assert requirements.startswith(project) and requirements.splitlines()[-1] == wanted
    assert wanted in runtime_wheel.runtime_requirements("jobs" if example == "batch" else "runtime-aws")


def test_the_kinds_client_comes_once_and_realtime_images_get_none():
    batch = load(EXAMPLES / "batch" / "mlkit.yaml").apis[0]
    assert images.with_kind_requirements(b"Boto3[crt]==1.35\n", clouds.named("aws"), batch) == b"Boto3[crt]==1.35\n"
    assert images.with_kind_requirements(b"numpy", clouds.named("gcp"), batch) == (
        b"numpy\n# Added by mlkit: the cloud client a `kind: batch` worker needs\ngoogle-cloud-storage>=2.16\n"
    )
    realtime = load(EXAMPLES / "sentiment" / "mlkit.yaml").apis[0]
    assert images.with_kind_requirements(b"torch\n", clouds.named("aws"), realtime) == b"torch\n"
