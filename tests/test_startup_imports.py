"""What `mlkit --help` and `mlkit render` import, in a fresh process as a user runs them: no cloud
SDK, cluster client, model library or server stack. The lint rule (TID253) guards only the command
modules, so a heavy import in a module they use (cli/labels.py, say) passes lint; this sees it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# Never on either path: what the CLI's lazy imports exist to keep out.
HEAVY = {"boto3", "botocore", "google", "kubernetes", "torch", "numpy", "httpx", "fastapi", "starlette", "uvicorn", "mlkit_runtime", "kmock"}
# `--help` reads no spec and renders nothing either.
HELP_ALSO = {"yaml", "jinja2", "pydantic", "merge3"}

PROBE = """
import json, sys
sys.argv = ["mlkit", *json.loads(sys.argv[1])]
from mlkit.__main__ import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
with open({out!r}, "w") as f:
    json.dump({{"code": code, "modules": sorted({{name.split(".")[0] for name in sys.modules}})}}, f)
"""


def imported(args: list[str], cwd: Path, tmp_path: Path) -> set[str]:
    out = tmp_path / "modules.json"
    result = subprocess.run([sys.executable, "-c", PROBE.format(out=str(out)), json.dumps(args)], cwd=cwd, capture_output=True, text=True, timeout=120)
    seen = json.loads(out.read_text())
    assert seen["code"] in (0, None), (args, result.stderr)
    return set(seen["modules"])


def test_help_imports_nothing_heavy(tmp_path):
    loaded = imported(["--help"], tmp_path, tmp_path)
    assert "typer" in loaded  # the probe saw the CLI run
    assert not loaded & (HEAVY | HELP_ALSO), sorted(loaded & (HEAVY | HELP_ALSO))


@pytest.mark.parametrize("example", ["sentiment", "gcp-l4", "llm"])
def test_render_imports_no_cloud_sdk_or_server(project, tmp_path, example):
    root = project(example)
    loaded = imported(["render"], root, tmp_path)
    assert (root / "infra").is_dir() and {"jinja2", "yaml"} <= loaded  # it rendered
    assert not loaded & HEAVY, sorted(loaded & HEAVY)


def test_the_probe_sees_a_heavy_import(tmp_path):
    # A test of the test: the same probe, with boto3 imported the way a module of the CLI would.
    pytest.importorskip("boto3")
    out = tmp_path / "modules.json"
    code = PROBE.format(out=str(out)).replace("from mlkit.__main__ import main", "import boto3\nfrom mlkit.__main__ import main")
    subprocess.run([sys.executable, "-c", code, json.dumps(["--help"])], cwd=tmp_path, capture_output=True, timeout=120)
    assert "boto3" in json.loads(out.read_text())["modules"]

