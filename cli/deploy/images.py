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
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import clouds, kit, placement
from ..clouds.base import Cloud
from ..errors import ToolError, UserError
from ..render.jinja import environment
from ..spec.schema import Api, Spec
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


def with_kind_requirements(project: bytes, cloud: Cloud, api: Api) -> bytes:
    """The project's requirements.txt, plus the cloud client its API's kind needs (Cloud.worker_clients: the runtime
    wheel leaves it out) unless the project names it already; realtime: as is."""
    extra, only = cloud.worker_clients.get(api.kind, ("", ""))
    named = {re.split(r"[\s\[<>=!~;]", line.strip(), maxsplit=1)[0].lower() for line in project.decode(errors="replace").splitlines()}
    wanted = runtime_wheel.runtime_requirements(extra) if extra else []
    packages = [r for r in wanted if r.startswith(only) and re.split(r"[\[<>=!~;]", r)[0].lower() not in named]
    if not packages:
        return project
    added = f"# Added by mlkit: the cloud client a `kind: {api.kind}` worker needs\n" + "".join(p + "\n" for p in packages)
    return project + (b"" if not project or project.endswith(b"\n") else b"\n") + added.encode()


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
        "build/requirements.txt": with_kind_requirements(requirements.read_bytes() if requirements.is_file() else b"", clouds.of(spec), api),
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


def build_and_push(folder: Path, image: str, registry: str, user: str, password: str) -> None:
    login = subprocess.run(["docker", "login", "--username", user, "--password-stdin", registry], input=password, capture_output=True, text=True)
    if login.returncode != 0:
        raise ToolError(f"docker login {registry} failed: {login.stderr.strip()}")
    build = subprocess.run(["docker", "buildx", "build", "--platform", "linux/amd64", "--tag", image, "--push", str(folder)])
    if build.returncode != 0:
        raise ToolError(f"docker buildx build of {image} failed (exit {build.returncode}); its output is above")
