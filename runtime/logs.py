"""Logs: one JSON line per request on stdout (cheap: no logging-module machinery on the hot path),
and the server's own messages through `logging` on stderr."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import traceback

import orjson

log = logging.getLogger("mlkit_runtime")

# What a client may name its request: what tracing systems use (UUIDs, W3C and X-Ray ids), nothing
# that could be mistaken for markup or split a log line, and short enough to log every time.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:;=+/@-]{1,128}")
MAX_TRACEBACK_FRAMES = 30
MAX_TRACEBACK_CHARS = 8000


def request_id(sent: str | None) -> str:
    """The client's X-Request-ID when it is a sensible id, else a fresh one (never echoed unbounded)."""
    if sent is not None and REQUEST_ID.fullmatch(sent):
        return sent
    return os.urandom(8).hex()


def format_exception(exc: BaseException) -> str:
    """A traceback bounded in frames and characters: a recursion error or a giant message stays small.
    An exception a front received from the model process carries the traceback formatted there."""
    remote = getattr(exc, "remote_traceback", None)
    if isinstance(remote, str):
        return f"(raised in the model process)\n{remote}"
    text = "".join(traceback.format_exception(exc, limit=-MAX_TRACEBACK_FRAMES))
    if len(text) > MAX_TRACEBACK_CHARS:
        half = MAX_TRACEBACK_CHARS // 2
        text = f"{text[:half]}\n... ({len(text) - MAX_TRACEBACK_CHARS} characters left out) ...\n{text[-half:]}"
    return text


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
