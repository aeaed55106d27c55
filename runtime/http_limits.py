"""Limits on a request's head (request line and headers), and the error body of a refused one.

bounded_head.py enforces them where the bytes arrive, in the HTTP protocol, before any parser
buffers them; fastpath.py checks the parsed headers of a head under the limit.

Rule: every byte read from a client is bounded in size and time. httptools buffers a header line
or URL until it ends, without limit: one unterminated 300 MiB header grew the server by 380 MiB
before the app could answer 431. bounded_head.py counts the bytes of each request's head as they
arrive and, past MAX_HEAD_BYTES, answers 431 and closes the connection; a head that takes longer
than the body timeout to arrive (a client that sends a byte now and then, or nothing) is answered
408 and closed, as uvicorn itself times out only idle keep-alive connections. A head under the limit
still goes through fastpath.py's check of the parsed headers (count and size). h11, the fallback
without httptools, has the same bound through its own `max_incomplete_event_size`.
"""

from __future__ import annotations

from typing import Any

MAX_HEADERS = 100  # what h11 and most proxies allow
MAX_HEADER_BYTES = 64 * 1024  # of the parsed headers' names and values (fastpath.py)
MAX_HEAD_BYTES = MAX_HEADER_BYTES + 8 * 1024  # of the raw head: the headers, their framing and the request line

# Routes that answer errors in OpenAI's shape (routes/openai.py); /v1/models/NAME:predict is KServe's.
OPENAI_PATHS = ("/v1/completions", "/v1/chat/completions", "/v1/models")


def is_openai(path: str) -> bool:
    return path in OPENAI_PATHS


def error_document(status: int, message: str, request_id: str, path: str) -> dict[str, Any]:
    """An error body as the route at `path` answers them: OpenAI's shape on its routes, else the runtime's."""
    if is_openai(path):
        return {"error": {"message": message, "type": openai_error_type(status), "param": None, "code": None}}
    return {"error": message, "request_id": request_id}


def openai_error_type(status: int) -> str:
    """OpenAI's error `type` for a status: its clients read it, and a 4xx is never the server's error."""
    if status == 401:
        return "authentication_error"
    return "invalid_request_error" if status < 500 else "server_error"
