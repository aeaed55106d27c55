"""`mlkit serve --fronts N`: the project's API in N HTTP fronts and one model process on a laptop."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx

from tests.conftest import assert_one_line_error, mlkit
from tests.runtime.conftest import free_port


def test_serve_with_two_fronts_answers_and_drains(project):
    proj = project()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlkit", "serve", "--port", str(port), "--fronts", "2"], cwd=proj, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        for _ in range(4):  # fresh connections: whichever front takes them, the one model answers
            with httpx.Client() as c:
                r = c.post(f"http://127.0.0.1:{port}/predict", json={"text": "I love it, great and fast"})
            assert r.status_code == 200 and r.json()["label"] == "positive"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"serving sentiment on http://127.0.0.1:{port}" in err
    # The model process never waits for a batch to fill (docs/guides/processes.md), so no "within N ms".
    assert "serving with 2 front processes" in err and "batching up to 16 across fronts" in err, err
    assert "drained: 2 fronts, then the model process, exited" in err


def test_serve_refuses_a_bad_front_count(project):
    assert_one_line_error(mlkit("serve", "--fronts", "many", cwd=project()), "--fronts", "auto or a number from 1 to 64")
