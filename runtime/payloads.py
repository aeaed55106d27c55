"""Request bodies in, response bodies out: content types, size limit, JSON with a precise error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {limit} (MLKIT_MAX_BODY_BYTES)")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes (MLKIT_MAX_BODY_BYTES)")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON: {exc}") from None


async def payload(request: Request, limit: int, json_only: bool = False) -> Any:
    """JSON arrives parsed; other content types arrive as bytes (or 415 where only JSON makes sense)."""
    kind = media_type(request)
    if kind in FORM_TYPES:
        raise UnsupportedMediaType(
            f"content type {kind} is not supported; send JSON with 'Content-Type: application/json' "
            "(curl -d sends form data unless you add -H 'Content-Type: application/json')"
        )
    is_json = kind == "" or kind in JSON_TYPES or kind.endswith("+json")
    if json_only and not is_json:
        raise UnsupportedMediaType(f"content type {kind} is not supported here; this route takes application/json")
    body = await read_body(request, limit)
    if is_json:
        if not body:
            raise BadRequest("empty request body; send a JSON document")
        return parse_json(body)
    return body


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
    copy), under the same limit as read_body; without a Content-Length it is read first, then copied."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        body = await read_body(request, limit)
        buffer = allocate(len(body))
        buffer[:] = body
        return buffer
    size = int(length)
    if size > limit:
        raise PayloadTooLarge(f"request body is {length} bytes; the limit is {limit} (MLKIT_MAX_BODY_BYTES)")
    buffer = allocate(size)
    filled = 0
    async for chunk in request.stream():
        if filled + len(chunk) > size:
            raise BadRequest(f"request body is longer than its Content-Length of {size} bytes")
        buffer[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    if filled != size:
        raise BadRequest(f"request body ended after {filled} of its Content-Length of {size} bytes")
    return buffer
