"""A real mlkit_runtime server in a subprocess on 127.0.0.1, per test or per module."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

PREDICTORS = Path(__file__).resolve().parent / "predictors"


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
        env=os.environ | (env or {}),
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
