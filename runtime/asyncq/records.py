"""What travels and what is kept: request ids, queue messages and the result record of each request."""

from __future__ import annotations

import base64
import re
import secrets
from datetime import datetime, timezone
from typing import Any

import orjson

from ..payloads import dumps

# 128 random bits: a result cannot be guessed from another id.
ID = re.compile(r"[0-9a-f]{32}")
# Larger payloads go to the store and the message carries their key (SQS holds 256 KiB, as base64 less).
INLINE_BYTES = 64 * 1024


def new_id() -> str:
    return secrets.token_hex(16)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds_since(stamp: str) -> float | None:
    """Seconds from a `now()` stamp to now; None for a stamp that does not parse (a record from elsewhere)."""
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return max(0.0, (datetime.now(timezone.utc) - then).total_seconds())


def result_key(request_id: str) -> str:
    return f"{request_id}.json"


def payload_key(request_id: str) -> str:
    return f"payloads/{request_id}"


def envelope(request_id: str, created: str, raw: bytes, is_json: bool, stored: bool, inline_json: bool = False) -> bytes:
    """The queue message: the id, when it was accepted, and the payload: bytes as base64, the key it was
    stored under, or, with `inline_json`, JSON as itself (parsed with the message, at no cost beyond its
    own parse; base64 was 7-11% of the embedded worker's CPU). Only where the front's own release reads
    the queue (the embedded queue): workers before this release dead-letter a message without `body`,
    so a cloud queue, whose old workers read new fronts' messages during a rollout, gets base64 until a
    release after every supported worker reads both."""
    message: dict[str, Any] = {"id": request_id, "created_at": created, "json": is_json}
    if stored:
        message["key"] = payload_key(request_id)
    elif is_json and inline_json:
        message["payload"] = orjson.Fragment(raw)  # checked whole by the front (payloads.checked_body)
    else:
        message["body"] = base64.b64encode(raw).decode()
    return orjson.dumps(message)


def open_envelope(body: bytes) -> dict[str, Any]:
    """The message as the front wrote it; ValueError if it is not one (a worker dead-letters it).
    Fronts before the JSON `payload` sent JSON as base64 `body` too: both are read."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValueError("the message is not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("id"), str) or not ID.fullmatch(message["id"]):
        raise ValueError("the message has no request id")
    if "payload" not in message and not isinstance(message.get("body"), str) and message.get("key") != payload_key(message["id"]):
        raise ValueError("the message has no payload")
    return message


def record(request_id: str, status: str, created: str, **more: Any) -> bytes:
    """The result record GET /predict/{id} answers with: id, status, timestamps, and result or error."""
    return dumps({"id": request_id, "status": status, "created_at": created, **more})


def result_value(result: Any) -> dict[str, Any]:
    """A predictor's return value in the record: JSON data as itself, bytes as base64 (the record is JSON)."""
    if isinstance(result, (bytes, bytearray, memoryview)):
        return {"result_base64": base64.b64encode(bytes(result)).decode()}
    return {"result": result}
