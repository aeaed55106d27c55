"""Fuzz the HTTP API from its own OpenAPI schema (schemathesis): no 5xx from the server itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def test_no_server_errors_under_schema_fuzzing(serve, tmp_path):
    if shutil.which("schemathesis", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("schemathesis is not installed (it comes with the test extra)")
    s = serve("echo.py:Fuzz", "--no-access-log")
    result = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", s.url + "/openapi.json", "--checks", "not_a_server_error",
         "--max-examples", "60", "--generation-deterministic", "--workers", "1"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-6000:]
    assert "passed" in result.stdout.lower()
