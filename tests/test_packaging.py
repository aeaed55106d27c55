"""The wheel carries both packages and the kit's data: install it into a fresh venv and use it."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile

from tests.conftest import REPO


def test_wheel_installs_and_runs_init_and_render(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)], check=True, capture_output=True)
    wheel = next(dist.glob("mlkit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "mlkit/__main__.py" in names and "mlkit_runtime/__init__.py" in names
    assert "mlkit/_kit/terraform/aws/eks/main.tf" in names
    assert "mlkit/_kit/templates/terraform/aws/cluster/main.tf.j2" in names
    assert "mlkit/_kit/examples/sentiment/model/weights.json" in names
    assert "mlkit/spec/accelerators.yaml" in names
    assert "mlkit_runtime/routes/oip_v2.py" in names  # the routes subpackage, which images run

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    install = subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    mlkit = env_dir / "bin" / "mlkit"
    work = tmp_path / "work"
    work.mkdir()
    init = subprocess.run([str(mlkit), "init", "demo"], cwd=work, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr
    render = subprocess.run([str(mlkit), "render"], cwd=work / "demo", capture_output=True, text=True)
    assert render.returncode == 0, render.stderr
    where = subprocess.run([str(py), "-c", "import mlkit.kit as k; print(k.root())"], cwd=work, capture_output=True, text=True)
    assert "site-packages/mlkit/_kit" in where.stdout  # the data came from the wheel, not this checkout
    rendered = (work / "demo/infra/terraform/cluster/modules/eks/main.tf").read_text()
    assert rendered.endswith((REPO / "terraform/aws/eks/main.tf").read_text())
