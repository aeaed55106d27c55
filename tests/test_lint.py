"""The two import rules in pyproject.toml bite where they should and nowhere else: ruff runs on source
handed over stdin under a pretend path in the tree, with the project's own configuration, so nothing is
written into the tree. (scripts/test.sh runs ruff and mypy over the whole tree before pytest.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

RUFF = Path(sys.executable).parent / "ruff"  # the version the `test` extra pins


def codes(path: str, source: str) -> set[str]:
    """The rule codes ruff reports for `source` as if it were the file `path` of the project."""
    assert RUFF.exists(), f"{RUFF} is missing: pip install -e '.[test]'"
    result = subprocess.run(
        [str(RUFF), "check", "--no-cache", "--config", str(REPO / "pyproject.toml"), "--output-format", "json", "--stdin-filename", path, "-"],
        input=source, capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode in (0, 1), result.stderr
    return {finding["code"] for finding in json.loads(result.stdout)}


@pytest.mark.parametrize("source", [
    "import mlkit\n",
    "import mlkit.spec\n",
    "from mlkit.spec import load\n",
    "from mlkit import errors\n",
])
def test_the_runtime_may_not_import_the_cli(source):
    assert "TID251" in codes("runtime/routes/x.py", source)


def test_the_cli_may_import_itself():
    assert "TID251" not in codes("cli/deploy/x.py", "from mlkit.spec import load\n")


@pytest.mark.parametrize(("path", "source"), [
    ("cli/commands/x.py", "import boto3\n"),
    ("cli/commands/x.py", "from google.cloud import storage\n"),
    ("cli/commands/x.py", "import yaml\n"),
    ("cli/app.py", "import mlkit_runtime\n"),
])
def test_command_modules_import_heavy_libraries_inside_functions_only(path, source):
    assert "TID253" in codes(path, source)


def test_a_heavy_import_inside_a_function_or_outside_the_commands_is_allowed():
    assert "TID253" not in codes("cli/commands/x.py", "def upload():\n    import boto3\n\n    return boto3\n")
    assert "TID253" not in codes("cli/deploy/x.py", "import boto3\n")
