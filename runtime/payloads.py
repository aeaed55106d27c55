"""Request bodies in, response bodies out: content types, size and nesting limits, JSON with a precise error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .errors import BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType

JSON_TYPES = ("application/json",)
# POST /predict's JSON body, with the payload parsed from it: a front (--fronts) sends those bytes to
# the model process, which parses them again, rather than pickling the parsed payload. For a list of 784
# floats, pickling and unpickling cost 21 + 42 µs; parsing the JSON again 22 µs. Only where the route
# hands the parsed value on untouched (`keep_source`): the OIP route, for one, decodes tensors in place.
json_source: ContextVar[tuple[Any, bytes] | None] = ContextVar("json_source", default=None)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def clip(text: str, most: int = 80) -> str:
    """A client-sent value as it may appear in an error message: bounded, so a 60 kB header is not echoed."""
    return text if len(text) <= most else f"{text[:most]}... ({len(text)} characters)"


def byte_count(text: str | None) -> int | None:
    """A client-sent byte count (Content-Length, Inference-Header-Content-Length), or None when it is
    not one. Rule: every number parsed from a client is range-checked before use. Only ASCII digits
    ('²'.isdigit() is true and int() refuses it), and at most 18 of them (int() of thousands of
    digits raises, and costs): a longer count is over any limit, so it reads as the largest int64."""
    if text is None or not text.isascii() or not text.isdigit():
        return None
    return int(text) if len(text) <= 18 else 2**63 - 1


class BodyTimer:
    """The body timeout: a client that stalls mid-body would hold its admission slot for good, so
    reading a body is cancelled after `body_timeout_s` and answered 408. Rule: every byte read from a
    client is bounded in size and time. asyncio.timeout() is 3.11+, and images may run 3.10: the same
    thing by hand, a timer that cancels the reading task."""

    def __init__(self, request: Request):
        self.timeout: float = request.app.state.runtime.settings.body_timeout_s
        self.task = asyncio.current_task()
        assert self.task is not None
        self.expired: list[bool] = []
        self.timer: asyncio.TimerHandle | None = None
        self.received = 0  # bytes so far, for the message

    def __enter__(self) -> BodyTimer:
        task = self.task
        assert task is not None
        self.timer = asyncio.get_running_loop().call_later(self.timeout, lambda: self.expired.append(task.cancel()))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        assert self.timer is not None
        self.timer.cancel()
        if isinstance(exc, asyncio.CancelledError) and self.expired:
            if hasattr(self.task, "uncancel"):
                self.task.uncancel()  # type: ignore[union-attr]
            raise RequestTimeout(
                f"the request body did not arrive within {self.timeout:g} s (--body-timeout-s / MLKIT_BODY_TIMEOUT_S); {self.received} bytes came"
            ) from None


async def read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    declared = byte_count(length)
    if declared is not None and declared > limit:
        raise PayloadTooLarge(f"request body is {clip(length or '', 20)} bytes; the limit is {limit} (MLKIT_MAX_BODY_BYTES)")
    chunks = []
    with BodyTimer(request) as timer:
        async for chunk in request.stream():
            timer.received += len(chunk)
            if timer.received > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes (MLKIT_MAX_BODY_BYTES)")
            chunks.append(chunk)
    return b"".join(chunks)


# Brackets and quotes survive, {} as []: after strings are cut out, nesting depth is how many rounds
# of deleting "[]" empty what is left.
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b'[]{}"')


def too_deep(body: bytes, limit: int) -> bool:
    """Whether JSON text nests arrays and objects more than `limit` deep; no recursion, no parsing.

    A body with at most `limit` opening brackets cannot be deeper (most bodies stop there).
    Otherwise everything runs in C, so a 10 MB body costs milliseconds: escapes go (a backslash
    appears only in strings and escapes the next character), the rest is reduced to brackets and
    quotes, every other piece between quotes is string content, and innermost pairs are deleted at
    most `limit` times. Unbalanced text is left to the parser, which says where it breaks.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    if b"\\" in body:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = body.translate(_BRACKETS, _NOT_BRACKETS)
    if b'"' in brackets:
        # Strings without brackets leave adjacent quotes: when deleting those pairs deletes every
        # quote, no string held a bracket (the opening quote of the first one that did would stay).
        paired = brackets.replace(b'""', b"")
        brackets = paired if b'"' not in paired else b"".join(brackets.split(b'"')[::2])
    if b"[" * (limit + 1) in brackets:
        return True
    for _ in range(limit):
        shorter = brackets.replace(b"[]", b"")
        if not shorter or len(shorter) == len(brackets):
            return False
        brackets = shorter
    return True


def parse_json(body: bytes, max_depth: int = 64) -> Any:
    if too_deep(body, max_depth):
        raise BadRequest(f"JSON nested more than {max_depth} levels deep; the limit is --max-json-depth / MLKIT_MAX_JSON_DEPTH")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {clip(str(exc), 200)}") from None


async def payload(request: Request, limit: int, json_only: bool = False, keep_source: bool = False) -> Any:
    """JSON arrives parsed; other content types arrive as bytes (or 415 where only JSON makes sense).
    `keep_source`: the caller hands the parsed value to the predictor as it is (json_source)."""
    body, is_json = await checked_body(request, limit, json_only)
    if is_json:
        value = parse_json(body, request.app.state.runtime.settings.max_json_depth)
        if keep_source:
            json_source.set((value, body))
        return value
    return body


async def checked_body(request: Request, limit: int, json_only: bool = False, parse: bool = False) -> tuple[bytes, bool]:
    """The body as sent and whether it is JSON, after the same checks as payload(); with `parse`, JSON is
    also checked whole (depth, syntax), for a body kept as bytes (an async API's queued request)."""
    kind = media_type(request)
    if kind in FORM_TYPES:
        raise UnsupportedMediaType(
            f"content type {kind} is not supported; send JSON with 'Content-Type: application/json' "
            "(curl -d sends form data unless you add -H 'Content-Type: application/json')"
        )
    is_json = kind == "" or kind in JSON_TYPES or kind.endswith("+json")
    if json_only and not is_json:
        raise UnsupportedMediaType(f"content type {clip(kind)} is not supported here; this route takes application/json")
    body = await read_body(request, limit)
    if is_json and not body:
        raise BadRequest("empty request body; send a JSON document")
    if is_json and parse:
        parse_json(body, request.app.state.runtime.settings.max_json_depth)
    return body, is_json


def to_response(result: Any, headers: dict[str, str]) -> Response:
    """A predictor's return value as a response: JSON-able data, str, bytes or a Starlette Response."""
    if isinstance(result, Response):
        result.headers.update(headers)
        return result
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Response(bytes(result), media_type="application/octet-stream", headers=headers)
    if isinstance(result, str):
        return Response(result, media_type="text/plain; charset=utf-8", headers=headers)
    return Response(dumps(result), media_type="application/json", headers=headers)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_tolist, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def _tolist(value: Any) -> Any:
    tolist = getattr(value, "tolist", None)  # torch tensors and the like
    if tolist is None:
        raise TypeError(f"the predictor returned a {type(value).__name__}, which is not JSON-serialisable; return lists, dicts, numbers, str or bytes")
    return tolist()


async def read_body_into(request: Request, limit: int, allocate: Callable[[int], memoryview]) -> memoryview:
    """The body read straight into `allocate(size)` (binary tensors: a buffer arrays can view without a
    copy), under the same limit and body timeout as read_body; without a Content-Length it is read
    first, then copied."""
    length = request.headers.get("content-length")
    size = byte_count(length)
    if size is None:
        body = await read_body(request, limit)
        buffer = allocate(len(body))
        buffer[:] = body
        return buffer
    if size > limit:
        raise PayloadTooLarge(f"request body is {clip(length or '', 20)} bytes; the limit is {limit} (MLKIT_MAX_BODY_BYTES)")
    buffer = allocate(size)
    with BodyTimer(request) as timer:
        async for chunk in request.stream():
            filled = timer.received
            if filled + len(chunk) > size:
                raise BadRequest(f"request body is longer than its Content-Length of {size} bytes")
            buffer[filled : filled + len(chunk)] = chunk
            timer.received += len(chunk)
    if timer.received != size:
        raise BadRequest(f"request body ended after {timer.received} of its Content-Length of {size} bytes")
    return buffer
