"""The API under test: `python -m mlkit_runtime` in a subprocess, as `mlkit serve` and the pod run it,
with the batching and concurrency settings of one configuration of the sweep."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError


@dataclass(frozen=True)
class Config:
    """One point of the sweep: the settings `mlkit bench` varies."""

    max_batch_size: int
    max_wait_ms: float
    max_in_flight: int

    def label(self) -> str:
        return f"batch {self.max_batch_size}, wait {self.max_wait_ms:g} ms, in flight {self.max_in_flight}"


@dataclass(frozen=True)
class Target:
    """What to run: the runtime's settings other than those the sweep varies."""

    predictor: str  # FILE.py:Class, absolute
    model_dir: Path
    name: str
    config_json: str
    max_queue: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(target: Target, config: Config, start_timeout_s: float = 60.0) -> Iterator[str]:
    """Start the runtime on a free loopback port; yield its base URL once /readyz answers 200.

    The access log is on, as in a cluster (its cost is part of what a replica serves), and goes to
    /dev/null; the server's own messages go to a temporary file quoted if it fails to start.
    """
    port = free_port()
    args = [
        sys.executable, "-m", "mlkit_runtime",
        "--predictor", target.predictor, "--model-dir", str(target.model_dir), "--name", target.name, "--config", target.config_json,
        "--host", "127.0.0.1", "--port", str(port),
        "--max-batch-size", str(config.max_batch_size), "--max-wait-ms", str(config.max_wait_ms),
        "--max-in-flight", str(config.max_in_flight), "--max-queue", str(target.max_queue),
        "--log-level", "warning",
    ]  # fmt: skip
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + start_timeout_s
            while True:
                if proc.poll() is not None:
                    log.seek(0)
                    last = [line for line in log.read().splitlines() if line.strip()][-1:] or ["(no message)"]
                    raise UserError(f"the runtime exited ({proc.returncode}) before serving {target.name}: {last[0].removeprefix('error: ')}")
                try:
                    with urllib.request.urlopen(url + "/readyz", timeout=1) as answer:  # noqa: S310 (our own loopback URL)
                        if answer.status == 200:
                            break
                except (urllib.error.URLError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise UserError(f"the runtime did not become ready within {start_timeout_s:g} s for {target.name} ({config.label()})")
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
