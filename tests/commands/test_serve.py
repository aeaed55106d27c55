"""`mlkit serve`: a project's API served locally by the runtime, with the spec's settings."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import assert_one_line_error, mlkit
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
    # The start phases, in one line (runtime/startup.py).
    phases = ", ".join(rf"{name} \d+\.\d{{3}}s" for name in ("process", "imports", "construct", "warmup", "serve"))
    assert re.search(rf"startup: {phases}; ready \d+\.\d{{3}}s after the process started", err), err


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


def wait_ready(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"mlkit serve exited with {proc.returncode}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError("mlkit serve did not become ready")


def with_keys(proj: Path) -> None:
    spec = proj / "mlkit.yaml"
    spec.write_text(spec.read_text().replace("    predictor: predictor.py:Predictor", "    predictor: predictor.py:Predictor\n    api_keys: true"))


def serve_until_checked(proj: Path, *args: str, stderr=subprocess.PIPE, check) -> tuple[str, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlkit", "serve", "--port", str(port), *args], cwd=proj, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        wait_ready(port, proc)
        check(f"http://127.0.0.1:{port}/predict")
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return out, err or ""


def test_api_keys_without_a_key_and_no_terminal_write_a_0600_file_and_print_only_its_path(project):
    proj = project()
    with_keys(proj)
    key_file = proj / ".mlkit/serve/sentiment.key"

    def check(url: str) -> None:
        assert httpx.post(url, json={"text": "great"}).status_code == 401  # never open
        key = key_file.read_text().strip()
        assert httpx.post(url, json={"text": "great"}, headers={"Authorization": f"Bearer {key}"}).status_code == 200

    out, err = serve_until_checked(proj, check=check)
    key = key_file.read_text().strip()
    assert key.startswith("mlk_") and len(key) > 20
    assert key not in out and key not in err
    assert str(key_file) in err and "0600" in err
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert (proj / ".mlkit/serve/.gitignore").read_text().splitlines()[-1] == "*"


def test_api_keys_given_on_the_command_line_are_used_and_nothing_is_written(project):
    proj = project()
    with_keys(proj)

    def check(url: str) -> None:
        assert httpx.post(url, json={"text": "great"}).status_code == 401
        assert httpx.post(url, json={"text": "great"}, headers={"X-API-Key": "k-local-1"}).status_code == 200
        assert httpx.post(url, json={"text": "great"}, headers={"X-API-Key": "k-local-2"}).status_code == 200

    out, err = serve_until_checked(proj, "--api-key", "k-local-1", "--api-key", "k-local-2", check=check)
    assert "k-local" not in out + err
    assert not (proj / ".mlkit/serve").exists()


def test_api_keys_from_a_file(project, tmp_path):
    proj = project()
    with_keys(proj)
    keys = tmp_path / "keys"
    keys.write_text("k-from-file\n")

    def check(url: str) -> None:
        assert httpx.post(url, json={"text": "great"}).status_code == 401
        assert httpx.post(url, json={"text": "great"}, headers={"X-API-Key": "k-from-file"}).status_code == 200

    serve_until_checked(proj, "--api-keys-file", str(keys), check=check)


def test_a_made_key_is_shown_once_on_a_terminal_and_not_written(project):
    proj = project()
    with_keys(proj)
    leader, follower = pty.openpty()
    seen: list[bytes] = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def check(url: str) -> None:
        time.sleep(0.2)
        match = re.search(rb"shown once, works until the server stops: (mlk_\S+)", b"".join(seen))
        assert match, b"".join(seen)[-2000:]
        key = match.group(1).decode()
        assert httpx.post(url, json={"text": "great"}).status_code == 401
        assert httpx.post(url, json={"text": "great"}, headers={"Authorization": f"Bearer {key}"}).status_code == 200

    try:
        serve_until_checked(proj, stderr=follower, check=check)
    finally:
        os.close(follower)
        reader.join(5)
        os.close(leader)
    assert b"".join(seen).count(b"mlk_") == 1
    assert not (proj / ".mlkit/serve").exists()


def test_a_symlinked_key_folder_is_refused(project, sentinel):
    proj = project()
    with_keys(proj)
    (proj / ".mlkit").mkdir(exist_ok=True)
    (proj / ".mlkit/serve").symlink_to(sentinel.root)
    result = mlkit("serve", "--port", str(free_port()), cwd=proj, timeout=120)
    assert_one_line_error(result, ".mlkit/serve is a symlink or not a folder", "--api-key")
    sentinel.assert_untouched()


def test_a_predictor_that_cannot_load_is_one_line_and_exit_1(project):
    proj = project()
    predictor = proj / "predictor.py"
    predictor.write_text(
        predictor.read_text().replace(
            "    def __init__(self, config: dict, model_dir: str):",
            "    def __init__(self, config: dict, model_dir: str):\n        raise RuntimeError('no weights')",
            1,
        )
    )
    result = mlkit("serve", "--port", str(free_port()), cwd=proj, timeout=120)
    assert_one_line_error(result, "predictor.py: Predictor(config, model_dir) failed: RuntimeError: no weights (line ", "raise RuntimeError('no weights')")
    assert result.stderr.strip().count("\n") == 0, result.stderr
    debug = mlkit("--debug", "serve", "--port", str(free_port()), cwd=proj, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


ENGINE_API = (
    "  - {name: chat, engine: vllm, model: model/, compute: {cpu: 2, memory: 16Gi, gpu: 1}, api_keys: true,"
    " serving: {max_model_len: 2048, extra_args: [--enforce-eager]}}\n"
)


def engine_project(project) -> Path:
    proj = project("aws-accelerators")
    (proj / "mlkit.yaml").write_text((proj / "mlkit.yaml").read_text() + ENGINE_API)
    return proj


def test_serve_of_an_engine_api_says_what_to_install_when_the_engine_is_missing(project):
    result = mlkit("serve", "chat", cwd=engine_project(project))
    assert_one_line_error(
        result, "apis[3] runs engine vllm, which is not installed here: pip install vllm", "or serve the model with a Python predictor instead"
    )


def test_serve_of_an_engine_api_runs_the_engine_with_the_specs_flags_and_a_key(project, tmp_path):
    """A stand-in `vllm` package on the path records how it was started, as the real one would be."""
    fake = tmp_path / "fake"
    server = fake / "vllm" / "entrypoints" / "openai"
    server.mkdir(parents=True)
    for folder in (fake / "vllm", fake / "vllm" / "entrypoints", server):
        (folder / "__init__.py").write_text("")
    (server / "api_server.py").write_text("import json, os, sys\nprint(json.dumps({'argv': sys.argv[1:], 'key': os.environ.get('VLLM_API_KEY')}))\n")
    proj = engine_project(project)
    result = mlkit("serve", "chat", "--port", "9123", "--api-key", "k-1", cwd=proj, env={"PYTHONPATH": str(fake)})
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["key"] == "k-1"
    assert seen["argv"] == [
        "--model", str(proj / "model/"), "--served-model-name", "chat", "--host", "127.0.0.1", "--port", "9123",
        "--tensor-parallel-size", "1", "--max-model-len", "2048", "--enforce-eager",
    ]
    made = mlkit("serve", "chat", cwd=proj, env={"PYTHONPATH": str(fake)})
    assert made.returncode == 0, made.stderr
    key_file = proj / ".mlkit/serve/chat.key"
    assert json.loads(made.stdout)["key"] == key_file.read_text().strip() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert str(key_file) in made.stderr and key_file.read_text().strip() not in made.stderr
