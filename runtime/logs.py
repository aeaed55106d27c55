"""Logs: one JSON line per request on stdout (cheap: no logging-module machinery on the hot path),
and the server's own messages through `logging` on stderr."""

from __future__ import annotations

import logging
import sys
import time

import orjson

log = logging.getLogger("mlkit_runtime")


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level.upper())
    log.propagate = False


def access(request_id: str, route: str, status: int, seconds: float, batch_size: int | None = None) -> None:
    record = {
        "ts": round(time.time(), 3),
        "request_id": request_id,
        "route": route,
        "status": status,
        "latency_ms": round(seconds * 1000, 3),
    }
    if batch_size is not None:
        record["batch_size"] = batch_size
    sys.stdout.write(orjson.dumps(record).decode() + "\n")
