"""Predictor images: a build context per API, its content hash as the tag, and the push.

The context holds a Dockerfile for the API's accelerator (templates/docker), `build/` (the runtime
as a wheel, the accelerator's packages, the project's requirements and install.sh, the one script
that installs them, in the image and in the pod-contract test alike) and `app/`, the project's code:
the files beside mlkit.yaml that files.py lets through (no secrets, state, infra/ or .mlkit/, no
local model folders, no links leading outside). Its hash is the tag, so a build is needed only when
something in it changed, and a registry that already has the tag is left alone.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import kit, placement
from ..errors import ToolError, UserError
from ..render.jinja import environment
from ..spec import Spec
from ..spec.schema import Api
from . import files as project_files
from . import runtime_wheel

# Base image and extra packages per accelerator kind; pinned so that a tag means one thing.
BASES = {
    "none": ("CPU", "python:3.11-slim-bookworm", "https://download.pytorch.org/whl/cpu", []),
    "nvidia": ("NVIDIA CUDA", "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime", None, []),
    "neuron": (
        "AWS Neuron",
        "public.ecr.aws/neuron/pytorch-inference-neuronx:2.1.2-neuronx-py310-sdk2.20.2-ubuntu20.04",
        "https://pip.repos.neuron.amazonaws.com",
        [],
    ),
    "tpu": ("Cloud TPU", "python:3.11-slim-bookworm", "https://storage.googleapis.com/libtpu-releases/index.html", ["torch~=2.5.0", "torch_xla[tpu]~=2.5.0"]),
}
# The spec reaches pods through the manifests (MLKIT_* variables, the ConfigMap); in the image it
# would only make every replica-count change a new tag and a rebuild.
SPEC_FILE = "mlkit.yaml"
CONTEXT_MARKER = ".mlkit-build-context"  # in every context mlkit writes: only such a folder is replaced
INSTALL_SCRIPT = "build/install.sh"
RUNTIME_EXTRAS = "build/runtime-extra-requirements.txt"
LARGE_BYTES = 100 * 1024 * 1024  # a file this big in an image is usually a model or data set that belongs in the bucket


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

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files.values())

    def large(self) -> list[tuple[str, int]]:
        return [(path, len(data)) for path, data in sorted(self.files.items()) if len(data) > LARGE_BYTES]

    def write(self, folder: Path) -> None:
        """The context into `folder`, replacing a context mlkit wrote there before, and nothing else: a
        folder of the user's (no marker file), a file or a link in its place is one line, left as it is."""
        check_replaceable(folder)
        if folder.exists():
            shutil.rmtree(folder)
        for rel, data in self.files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
        (folder / INSTALL_SCRIPT).chmod(0o755)
        # Outside build/ and app/, the only folders the Dockerfile copies: it never enters the image.
        (folder / CONTEXT_MARKER).write_text("a build context written by mlkit; the next `mlkit build --context-dir` replaces this folder\n")


def check_replaceable(folder: Path) -> None:
    """`folder` is free for a build context: absent, empty, or a context mlkit wrote (its marker file)."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise UserError(f"{folder}: not a folder mlkit wrote (a link or a file); move it away or choose another --context-dir")
    try:
        foreign = folder.exists() and any(folder.iterdir()) and not (folder / CONTEXT_MARKER).is_file()
    except OSError as exc:  # an unreadable folder: not one mlkit wrote
        raise UserError(f"{folder}: cannot look inside it ({exc.strerror}); move it away or choose another --context-dir") from None
    if foreign:
        raise UserError(f"{folder}: holds files mlkit did not write (no {CONTEXT_MARKER}); move it away or choose another --context-dir")


def built(apis: list[Api]) -> list[Api]:
    """The APIs that run a predictor image mlkit builds; engine APIs run their engine's published image."""
    return [api for api in apis if api.engine is None]


def context(root: Path, spec: Spec, api: Api) -> Context:
    if api.predictor is None:
        raise UserError(f"apis.{api.name}: runs engine {api.engine}'s published image; there is no predictor image to build")
    kind, _ = placement.api_demand(api)
    title, base, extra_index, packages = BASES[kind]
    dockerfile = environment().get_template("docker/Dockerfile.j2").render(api=api.name, title=title, base=base, extra_index=extra_index)
    requirements = root / "requirements.txt"
    files = {
        "Dockerfile": dockerfile.encode(),
        INSTALL_SCRIPT: (kit.templates() / "docker" / "install.sh").read_bytes(),
        f"build/{runtime_wheel.filename()}": runtime_wheel.build(),
        "build/accelerator-requirements.txt": "".join(p + "\n" for p in packages).encode(),
        "build/requirements.txt": requirements.read_bytes() if requirements.is_file() else b"",
        # The runtime's optional clients this API uses: an async API's queue and result store on its cloud.
        RUNTIME_EXTRAS: "".join(r + "\n" for r in runtime_wheel.extra_requirements(f"runtime-{spec.cloud}") if api.kind == "async").encode(),
    }
    models = {(root / a.model).resolve() for a in spec.apis if a.model and "://" not in a.model}
    models |= {(root / a.canary.model).resolve() for a in spec.apis if a.canary and a.canary.model and "://" not in a.canary.model}
    for rel, path in project_files.walk(root, root, project_files.rules(root)):
        if rel == SPEC_FILE or any(path.resolve().is_relative_to(m) for m in models):
            continue
        files[f"app/{rel}"] = path.read_bytes()
    predictor_file = api.predictor.split(":")[0]
    if f"app/{predictor_file}" not in files:
        raise UserError(f"apis.{api.name}.predictor: {predictor_file} is not in the project folder {root} (or {project_files.IGNORE_FILE} leaves it out)")
    return Context(api.name, files)


def check_context_dir(root: Path, folder: Path) -> None:
    """Contexts written inside the project would enter the next context (and be replaced wholesale
    by the next write), unless the project's ignore rules leave that folder out."""
    where = folder.resolve()
    if where.is_relative_to(root) and not project_files.rules(root).match_file(where.relative_to(root).as_posix() + "/"):
        ignored = where.relative_to(root).as_posix() or "."
        raise UserError(
            f"--context-dir {folder}: inside the project, so the next build would pack it too; "
            f"write the contexts outside {root}, or add `{ignored}/` to {project_files.IGNORE_FILE}"
        )


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
    manifests = (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
    accept = {"Accept": ", ".join(manifests)}
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
