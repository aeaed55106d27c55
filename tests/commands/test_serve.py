"""`mlkit serve`: a project's API served locally by the runtime, with the spec's settings."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.conftest import mlkit
from tests.runtime.conftest import free_port


def test_serve_answers_with_the_spec_settings(project):
    proj = project()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlkit", "serve", "--port", str(port)], cwd=proj, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        r = httpx.post(f"http://127.0.0.1:{port}/predict", json={"text": "I love it, great and fast"})
        assert r.status_code == 200 and r.json()["label"] == "positive"
        r = httpx.post(f"http://127.0.0.1:{port}/v1/models/sentiment:predict", json={"instances": [{"text": "awful"}]})
        assert r.json()["predictions"][0]["label"] == "negative"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert f"serving sentiment on http://127.0.0.1:{port}" in err
    assert "batching up to 16 within 5 ms; max_in_flight=32 max_queue=64" in err


@pytest.mark.parametrize(
    "edit, args, message",
    [
        (None, ["other"], "no API named 'other' in mlkit.yaml (valid: sentiment)"),
        (("model: model/", "model: s3://bucket/sentiment/"), [], "apis[0].model is s3://bucket/sentiment/; download it and pass --model-dir FOLDER"),
        (("model: model/", "model: weights/"), [], "model folder"),
    ],
)
def test_serve_errors(project, edit, args, message):
    proj = project()
    if edit:
        spec = proj / "mlkit.yaml"
        spec.write_text(spec.read_text().replace(*edit))
    result = mlkit("serve", *args, cwd=proj)
    assert result.returncode == 1 and message in result.stderr


def test_serve_needs_a_name_when_there_are_several_apis(project):
    result = mlkit("serve", cwd=project("aws-accelerators"))
    assert result.returncode == 1
    assert "has 3 APIs; name one: mlkit serve sentiment (valid: sentiment, sentiment-gpu, sentiment-neuron)" in result.stderr
