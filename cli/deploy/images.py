"""Predictor images: a build context per API, its content hash as the tag, and the push.

The context holds a Dockerfile for the API's accelerator (templates/docker), the runtime's
source and pinned dependencies, and the project's code (everything beside mlkit.yaml except
infra/, .mlkit/, local model folders, virtual environments and caches). Its hash is the tag, so a
build is needed only when something in it changed, and a registry that already has the tag is
left alone.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import mlkit_runtime

from .. import placement
from ..errors import ToolError, UserError
from ..render.jinja import environment
from ..spec import Spec
from ..spec.schema import Api

# Base image and extra packages per accelerator kind; pinned so that a tag means one thing.
BASES = {
    "none": ("CPU", "python:3.11-slim-bookworm", "https://download.pytorch.org/whl/cpu", []),
    "nvidia": ("NVIDIA CUDA", "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime", None, []),
    "neuron": ("AWS Neuron", "public.ecr.aws/neuron/pytorch-inference-neuronx:2.1.2-neuronx-py310-sdk2.20.2-ubuntu20.04", "https://pip.repos.neuron.amazonaws.com", []),
    "tpu": ("Cloud TPU", "python:3.11-slim-bookworm", "https://storage.googleapis.com/libtpu-releases/index.html", ["torch~=2.5.0", "torch_xla[tpu]~=2.5.0"]),
}
EXCLUDED = {"infra", ".mlkit", ".git", ".venv", "venv", "__pycache__", ".pytest_cache", "node_modules", ".terraform"}
# The spec reaches pods through the manifests (MLKIT_* variables, the ConfigMap); in the image it
# would only make every replica-count change a new tag and a rebuild.
SPEC_FILE = "mlkit.yaml"


@dataclass
class Context:
    api: str
    files: dict[str, bytes]

    @property
    def tag(self) -> str:
        h = hashlib.sha256()
        for path in sorted(self.files):
            h.update(path.encode() + b"\0" + hashlib.sha256(self.files[path]).digest())
        return h.hexdigest()[:12]

    def write(self, folder: Path) -> None:
        if folder.exists():
            shutil.rmtree(folder)
        for rel, data in self.files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)


def context(root: Path, spec: Spec, api: Api) -> Context:
    kind, _ = placement.api_demand(api)
    title, base, extra_index, packages = BASES[kind]
    dockerfile = environment().get_template("docker/Dockerfile.j2").render(
        api=api.name, title=title, base=base, extra_index=extra_index, accelerator_packages=packages
    )
    files = {"Dockerfile": dockerfile.encode(), "runtime-requirements.txt": runtime_requirements().encode()}
    requirements = root / "requirements.txt"
    files["requirements.txt"] = requirements.read_bytes() if requirements.exists() else b""
    runtime_dir = Path(mlkit_runtime.__file__).parent
    for path in sorted(runtime_dir.rglob("*.py")):
        files[f"mlkit_runtime/{path.relative_to(runtime_dir).as_posix()}"] = path.read_bytes()
    models = {(root / a.model).resolve() for a in spec.apis if a.model and "://" not in a.model}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or rel.as_posix() == SPEC_FILE or any(part in EXCLUDED or part.startswith(".") for part in rel.parts):
            continue
        if any(path.resolve().is_relative_to(m) for m in models) or path.suffix == ".pyc":
            continue
        files[f"app/{rel.as_posix()}"] = path.read_bytes()
    if f"app/{api.predictor.split(':')[0]}" not in files:
        raise UserError(f"apis.{api.name}.predictor: {api.predictor.split(':')[0]} is not in the project folder {root}")
    return Context(api.name, files)


def runtime_requirements() -> str:
    """The runtime's dependencies as the `runtime` extra of this mlkit declares them: one source of truth."""
    from importlib.metadata import requires

    marker = 'extra == "runtime"'
    return "".join(r.split(";")[0].strip() + "\n" for r in requires("mlkit") or [] if marker in r.replace("'", '"'))


def docker_problem() -> str | None:
    """Why images cannot be built here, or None when a Docker engine with buildx answers."""
    if shutil.which("docker") is None:
        return "no docker command on PATH"
    try:
        info = subprocess.run(["docker", "buildx", "version"], capture_output=True, text=True, timeout=20)
        if info.returncode != 0:
            return "docker buildx is not installed"
        ping = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"docker does not answer ({exc})"
    if ping.returncode != 0:
        return "no Docker engine is running (`docker info` failed)"
    return None


def ecr_login(region: str) -> tuple[str, str, str]:
    """User, password and registry URL for ECR, from boto3 (what `aws ecr get-login-password` does)."""
    import base64

    from ..cluster.credentials import aws_call, require_boto3

    boto3 = require_boto3()
    with aws_call(f"ECR GetAuthorizationToken in {region}"):
        data = boto3.client("ecr", region_name=region).get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return user, password, data["proxyEndpoint"]


def gar_login() -> tuple[str, str]:
    from ..cluster.credentials import gke_token

    token, _ = gke_token()
    return "oauth2accesstoken", token


def ecr_has(region: str, repository: str, tag: str) -> bool:
    from ..cluster.credentials import aws_call, require_boto3

    boto3 = require_boto3()
    from botocore.exceptions import ClientError

    with aws_call(f"ECR DescribeImages {repository}:{tag}"):
        try:
            boto3.client("ecr", region_name=region).describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("ImageNotFoundException", "RepositoryNotFoundException"):
                return False
            raise


def registry_has(image: str, user: str, password: str, scheme: str = "https") -> bool:
    """Whether a registry holds `host/name:tag`, through the Docker Registry v2 API with its token
    handshake (a 401 names the realm that trades the login for a bearer token), as docker does."""
    import httpx

    host, _, rest = image.partition("/")
    name, _, tag = rest.rpartition(":")
    url = f"{scheme}://{host}/v2/{name}/manifests/{tag}"
    accept = {"Accept": "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"}
    try:
        with httpx.Client(timeout=30) as http:
            response = http.head(url, headers=accept, auth=(user, password))
            challenge = response.headers.get("www-authenticate", "")
            if response.status_code == 401 and challenge.lower().startswith("bearer "):
                fields = dict(part.split("=", 1) for part in challenge[7:].split(","))
                fields = {k.strip(): v.strip().strip('"') for k, v in fields.items()}
                params = {k: fields[k] for k in ("service", "scope") if k in fields}
                grant = http.get(fields["realm"], params=params, auth=(user, password))
                grant.raise_for_status()
                token = grant.json().get("token") or grant.json().get("access_token")
                response = http.head(url, headers=accept | {"Authorization": f"Bearer {token}"})
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise ToolError(f"asking {host} whether it has {image}: {exc}") from None
    if response.status_code in (200, 404):
        return response.status_code == 200
    raise ToolError(f"asking {host} whether it has {image}: HTTP {response.status_code}")


def build_and_push(folder: Path, image: str, registry: str, user: str, password: str) -> None:
    login = subprocess.run(["docker", "login", "--username", user, "--password-stdin", registry], input=password, capture_output=True, text=True)
    if login.returncode != 0:
        raise ToolError(f"docker login {registry} failed: {login.stderr.strip()}")
    build = subprocess.run(["docker", "buildx", "build", "--platform", "linux/amd64", "--tag", image, "--push", str(folder)])
    if build.returncode != 0:
        raise ToolError(f"docker buildx build of {image} failed (exit {build.returncode}); its output is above")
