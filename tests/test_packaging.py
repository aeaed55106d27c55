"""What users install is what the tests run: the built wheel, installed with its `runtime` extra into
a fresh venv (one per session, shared by these checks), used from there as a user would.

Every test elsewhere installs editable, which hides a package missing from the wheel; these do not.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import time
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port

SOURCE_ROOTS = {"cli": "mlkit", "runtime": "mlkit_runtime"}


def build_wheel(source: Path, outdir: Path) -> Path:
    result = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(outdir), str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return next(outdir.glob("mlkit-*.whl"))


def source_modules(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.py")) if "__pycache__" not in p.parts}


def source_copy(dest: Path) -> Path:
    """What a fresh clone holds for the build: building in the checkout would reuse its build/ folder,
    whose stale files setuptools packs as if they were current."""
    for name in ("cli", "runtime", "terraform", "templates", "examples"):
        shutil.copytree(REPO / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, dest / name)
    return dest


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    return build_wheel(source_copy(tmp_path_factory.mktemp("src")), tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel and its `runtime` extra (from the pip cache and index); its bin/ folder."""
    env_dir = tmp_path_factory.mktemp("wheel-venv")
    venv.create(env_dir, with_pip=True, symlinks=True)
    started = time.monotonic()
    result = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", f"{wheel}[runtime]"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"wheel venv installed in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return env_dir / "bin"


def run(bin_dir: Path, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    # A clean environment: no PYTHONPATH or editable install of this checkout can leak in.
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(cwd), "LANG": "C.UTF-8"}
    return subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_the_wheel_holds_every_module_of_both_source_roots_and_the_kit_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, package in SOURCE_ROOTS.items():
        missing = {f"{package}/{rel}" for rel in source_modules(REPO / folder)} - names
        assert not missing, f"the wheel lacks {sorted(missing)}"
    assert "mlkit_runtime/routes/health.py" in names
    assert "mlkit/_kit/terraform/aws/eks/main.tf" in names
    assert "mlkit/_kit/templates/terraform/aws/cluster/main.tf.j2" in names and "mlkit/_kit/templates/docker/install.sh" in names
    assert "mlkit/_kit/examples/sentiment/model/weights.json" in names
    assert "mlkit/spec/accelerators.yaml" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert "mlkit_runtime/routes/oip_v2.py" in names  # the routes subpackage, which images run


def test_a_new_subpackage_is_picked_up_without_touching_the_packaging(tmp_path):
    source = source_copy(tmp_path / "src")
    (source / "runtime" / "codecs" / "audio").mkdir(parents=True)
    for rel in ("runtime/codecs/__init__.py", "runtime/codecs/audio/__init__.py", "runtime/codecs/audio/wav.py", "cli/plugins/__init__.py"):
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_text("X = 1\n")
    names = set(zipfile.ZipFile(build_wheel(source, tmp_path / "dist")).namelist())
    assert {"mlkit_runtime/codecs/__init__.py", "mlkit_runtime/codecs/audio/wav.py", "mlkit/plugins/__init__.py"} <= names


def test_the_installed_wheel_inits_renders_serves_and_builds_contexts(installed, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    init = run(installed, "mlkit", "init", "demo", cwd=work)
    assert init.returncode == 0, init.stderr
    project = work / "demo"
    render = run(installed, "mlkit", "render", cwd=project)
    assert render.returncode == 0, render.stderr
    rendered = (project / "infra/terraform/cluster/modules/eks/main.tf").read_text()
    assert rendered.endswith((REPO / "terraform/aws/eks/main.tf").read_text())
    where = run(installed, "python", "-c", "import mlkit.kit, mlkit_runtime; print(mlkit.kit.root()); print(mlkit_runtime.__file__)", cwd=work)
    assert where.stdout.count("site-packages/") == 2, where.stdout  # the code and data came from the wheel, not this checkout

    helped = run(installed, "python", "-m", "mlkit_runtime", "--help", cwd=work)
    assert helped.returncode == 0 and "--predictor" in helped.stdout and "MLKIT_MAX_BATCH_SIZE" in helped.stdout, helped.stderr

    port = free_port()
    env = {"PATH": f"{installed}:/usr/bin:/bin", "HOME": str(work), "LANG": "C.UTF-8"}
    server = subprocess.Popen(
        [str(installed / "mlkit"), "serve", "--port", str(port)], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        answer = post_when_ready(f"http://127.0.0.1:{port}", {"text": "I love how fast this is"}, server)
        assert answer["label"] == "positive" and 0 <= answer["score"] <= 1
    finally:
        server.terminate()
        server.wait(timeout=30)

    build = run(installed, "mlkit", "build", "--context-dir", str(tmp_path / "ctx"), "--json", cwd=project)
    assert build.returncode == 0, build.stderr
    (built,) = json.loads(build.stdout)["images"]
    context = Path(built["context"])
    (whl,) = context.glob("build/mlkit_runtime-*.whl")
    packed = zipfile.ZipFile(io.BytesIO(whl.read_bytes()))
    shipped = {n.removeprefix("mlkit_runtime/"): packed.read(n) for n in packed.namelist() if n.startswith("mlkit_runtime/") and n.endswith(".py")}
    assert shipped == source_modules(REPO / "runtime")


def post_when_ready(base: str, payload: dict, server: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlkit serve exited with {server.returncode}: {server.stdout.read()}")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as ready:
                if ready.status == 200:
                    break
        except OSError:
            time.sleep(0.2)
    else:
        pytest.fail("mlkit serve did not become ready")
    request = urllib.request.Request(f"{base}/predict", data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_packaging_sources_carry_no_hand_written_package_list():
    # setup.py discovers; a `packages = [...]` list in pyproject.toml would silently win over it.
    assert "packages = [" not in (REPO / "pyproject.toml").read_text()
    # and setup.py is what lists them: its packages come from find_packages over both source roots.
    listed = subprocess.run([sys.executable, "-c", DISCOVERED], cwd=REPO, capture_output=True, text=True, timeout=60, check=True).stdout.split()
    subpackages = sorted(str(p.parent.relative_to(REPO)).replace("/", ".") for root in ("cli", "runtime") for p in (REPO / root).rglob("__init__.py"))
    named = {"cli": "mlkit", "runtime": "mlkit_runtime"}
    assert sorted(p for p in listed if not p.startswith("mlkit._kit")) == sorted(named[s.split(".")[0]] + s[len(s.split(".")[0]):] for s in subpackages)


# setup.py's own package list, without building: run its module with setup() captured.
DISCOVERED = """
import setuptools, sys
setuptools.setup = lambda **kw: print(*kw["packages"])
sys.argv = ["setup.py"]
exec(compile(open("setup.py").read(), "setup.py", "exec"), {"__file__": "setup.py", "__name__": "__main__"})
"""
