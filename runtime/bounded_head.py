"""uvicorn's httptools protocol with each request's head bounded in size and time as it arrives
(the limits and the reasons: http_limits.py). Imported only where httptools is installed."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from . import logs
from .http_limits import MAX_HEAD_BYTES, MAX_HEADER_BYTES, error_document


def bounded_protocol(head_timeout_s: float) -> type[HttpToolsProtocol]:
    """The protocol class for uvicorn's `http`, with the server's body timeout as the head's."""
    return type("BoundedHeadProtocol", (BoundedHeadProtocol,), {"head_timeout_s": head_timeout_s})


class BoundedHeadProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the head of each request bounded in size and time as it arrives."""

    head_timeout_s = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_bytes = 0
        self.in_head = True
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.start_head_timer()  # a connection that sends nothing at all is a head that never ends

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_head_timer()
        super().connection_lost(exc)

    def start_head_timer(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.head_timeout_s, self.head_timed_out)

    def stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def head_timed_out(self) -> None:
        self.head_timer = None
        if self.in_head and not self.transport.is_closing():
            message = f"the request line and headers did not arrive within {self.head_timeout_s:g} s (--body-timeout-s / MLKIT_BODY_TIMEOUT_S)"
            self.refuse(408, b"Request Timeout", message)

    def data_received(self, data: bytes) -> None:
        if self.in_head:
            self.head_bytes += len(data)
            self.start_head_timer()  # the next request on a kept-alive connection: its head starts now
        super().data_received(data)
        # Checked after the parser has seen this chunk: a head that ended in it is whole, and the
        # app checks it; one that has not ended cost at most one read (uvloop's 256 KiB) over the limit.
        if self.in_head and self.head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            message = f"the request line and headers are over {MAX_HEAD_BYTES} bytes and have not ended; the limit for headers is {MAX_HEADER_BYTES}"
            self.refuse(431, b"Request Header Fields Too Large", message)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.stop_head_timer()
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not before:  # a request's cycle, not an upgrade
            self.cycle.transport = HeldHead(self.transport, self.cycle)  # type: ignore[assignment]  # what the cycle calls of a transport

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head, self.head_bytes = True, 0  # the next request on this connection

    def refuse(self, status: int, reason: bytes, message: str) -> None:
        """Answer a head that cannot be parsed whole, and close: the rest of the connection is unreadable."""
        self.in_head = False
        self.stop_head_timer()
        request_id = logs.request_id(None)
        url = getattr(self, "url", b"")  # set once the parser has seen the request line begin
        path = url.partition(b"?")[0].decode("latin-1") if isinstance(url, bytes) else ""
        body = orjson.dumps(error_document(status, message, request_id, path))
        head = b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\nx-request-id: %s\r\nconnection: close\r\n\r\n" % (
            status, reason, len(body), request_id.encode()
        )
        self.transport.write(head + body)
        self.transport.close()


class HeldHead:
    """A request cycle's transport that holds the head of a response of known length until its body
    comes, and writes both at once. uvicorn writes them separately: two sends, two segments, and a
    client that wakes for the head alone and waits again for the body (with --fronts on the client's
    core, the front was also preempted in between). A chunked response (a stream) keeps its head's
    timing: it goes at once, as before."""

    def __init__(self, transport: asyncio.Transport, cycle: Any) -> None:
        self.transport = transport
        self.cycle = cycle
        self.head: bytes | None = None
        self.held = False  # once: only the first write after the response started is its head

    def write(self, data: bytes) -> None:
        cycle = self.cycle
        if not self.held and cycle.response_started and not cycle.response_complete:
            self.held = True
            if cycle.chunked_encoding is False and cycle.scope["method"] != "HEAD":  # a Content-Length: its body follows (HEAD's never does)
                self.head = data
                return
        if self.head is not None:
            head, self.head = self.head, None
            if len(data) > 65536:  # copying a large body would cost more than the second send saves
                self.transport.write(head)
            else:
                data = head + data
        self.transport.write(data)

    def close(self) -> None:
        if self.head is not None:  # the app failed before its body: the head as uvicorn would have sent it
            head, self.head = self.head, None
            self.transport.write(head)
        self.transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing() and the rest, as the transport's
        return getattr(self.transport, name)
