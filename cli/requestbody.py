"""The request body a command sends (`mlkit predict PAYLOAD`, `mlkit bench --payload`): inline JSON,
@file or `-` for standard input, checked here as the runtime would check it, before anything is sent.

Rules: every byte read is bounded (at most MAX_BYTES, the runtime's default max_body_bytes, from a file
or a pipe; `/dev/zero` ends at the bound, not when the kernel kills mlkit); every path option is a
regular file where one is expected (a device, FIFO or folder is one line, and is opened without blocking
so a FIFO with no writer cannot hang the check); every number parsed is range-checked (jsonbounds).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from . import jsonbounds, regularfile
from .errors import UserError

# The runtime's default max_body_bytes: a larger body would only earn a 413.
MAX_BYTES = 10 * 2**20
LIMIT = f"{MAX_BYTES // 2**20} MiB"


def _read_file(path: Path, option: str) -> bytes:
    try:
        return regularfile.read(path, MAX_BYTES)
    except regularfile.NotRegular as exc:
        kind = "a folder, not a file" if exc.folder else "not a regular file (a device, pipe or socket)"
        raise UserError(f"{option}: {kind}; give a JSON file or inline JSON") from None
    except regularfile.TooLarge as exc:
        raise UserError(f"{option}: larger than {LIMIT} ({exc.size:,} bytes), the runtime's default max_body_bytes; give a smaller body") from None
    except OSError as exc:
        raise UserError(f"{option}: cannot read {path} ({exc.strerror}); give a JSON file or inline JSON") from None


def _read_stdin(option: str) -> bytes:
    data = sys.stdin.buffer.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise UserError(f"{option}: standard input holds more than {LIMIT}, the runtime's default max_body_bytes; give a smaller body")
    return data


def read(payload: str, option: str, stdin: bool = True) -> tuple[bytes, Any, str]:
    """(the body to send, its parsed value, where it came from for messages). `option` names the argument."""
    if payload == "-" and stdin:
        data, where = _read_stdin(option), "standard input"
    elif payload.startswith("@"):
        path = Path(payload[1:])
        data, where = _read_file(path, f"{option} {payload}"), str(path)
    else:
        data, where = payload.encode("utf-8", "surrogateescape"), option
        if len(data) > MAX_BYTES:
            raise UserError(f"{option}: larger than {LIMIT} ({len(data):,} bytes), the runtime's default max_body_bytes; give a smaller body")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{where}: not UTF-8 text (byte {exc.start + 1}: {exc.reason}); the body is sent as application/json") from None
    try:
        value = jsonbounds.loads(text)
    except jsonbounds.BadJson as exc:
        raise UserError(f"{where}: {exc}; the body is sent as application/json, e.g. '{{\"text\": \"great\"}}'") from None
    return data, value, where
