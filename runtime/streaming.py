"""Streamed responses: a predictor's generator (sync or async) sent chunk by chunk, or as server-sent
events when the client asks for `text/event-stream`.

Sync generators are advanced in the runtime's thread pool, one `next()` at a time, so a slow token
never blocks the event loop. A client that goes away ends the stream: the response closes the source
(`close()` / `aclose()`, so the generator's `finally` runs and generation stops), and `Stream.finish`
hands the admission slot back. That happens exactly once, however the stream ends.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from . import logs
from .errors import PredictorRaised
from .payloads import dumps

_END = object()
SSE = "text/event-stream"


def is_generator(result: Any) -> bool:
    """What a predictor returns to be streamed: a generator or an async generator (not a list or str)."""
    return inspect.isgenerator(result) or inspect.isasyncgen(result)


class Source:
    """Async iteration over a sync or async iterator; a sync `next()` runs in the executor. Errors
    the predictor's code raises come out as PredictorRaised."""

    def __init__(self, source: Iterator[Any] | AsyncIterator[Any], executor: ThreadPoolExecutor):
        self.source = source
        self.executor = executor
        self.is_async = hasattr(source, "__anext__")
        self.pending: Future[Any] | None = None
        self.closed = False

    def __aiter__(self) -> Source:
        return self

    async def __anext__(self) -> Any:
        try:
            if self.is_async:
                return await self.source.__anext__()  # type: ignore[union-attr]
            self.pending = self.executor.submit(next, self.source, _END)  # type: ignore[arg-type]
            item = await asyncio.wrap_future(self.pending)
        except StopAsyncIteration:
            raise
        except Exception as exc:
            raise PredictorRaised() from exc
        if item is _END:
            raise StopAsyncIteration
        return item

    async def aclose(self) -> None:
        """Stop the generator. A sync one may be inside `next()` in a thread right now: it is closed
        once that call returns (closing a running generator is an error), without waiting here."""
        if self.closed:
            return
        self.closed = True
        if self.is_async:
            close = getattr(self.source, "aclose", None)
            if close is not None:
                try:
                    await close()
                except Exception as exc:
                    logs.log.warning("the predictor's generator raised while closing\n%s", logs.format_exception(exc))
            return
        close_sync = getattr(self.source, "close", None)
        if close_sync is None:
            return

        def after(_: object) -> None:
            self.executor.submit(close_sync)

        if self.pending is None:
            self.executor.submit(close_sync)
        else:
            self.pending.add_done_callback(after)


class Stream:
    """A response body that arrives in parts. `chunks` yields bytes; `close` ends the source early;
    `finish` (set by Runtime.handle) runs once when the stream is over, however it ended."""

    def __init__(self, chunks: AsyncIterator[bytes], media_type: str, close: Callable[[], Any] | None = None):
        self.chunks = chunks
        self.media_type = media_type
        self._close = close
        self.finish: Callable[[int], None] | None = None
        self.request_id = ""  # set by Runtime.handle, for the log
        self.status = 200  # what the access log and metrics record: 500 when the predictor raised mid-stream
        self.done = False

    async def aclose(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            closing = getattr(self.chunks, "aclose", None)
            if closing is not None:
                await closing()
            if self._close is not None:
                result = self._close()
                if inspect.isawaitable(result):
                    await result
        finally:
            if self.finish is not None:
                self.finish(self.status)


class StreamResponse(StreamingResponse):
    """A StreamingResponse that always closes its Stream: at the end, on error, and when the client
    disconnects (Starlette cancels the body task, or the send fails)."""

    def __init__(self, stream: Stream, headers: dict[str, str]):
        super().__init__(stream.chunks, media_type=stream.media_type, headers=headers | {"cache-control": "no-cache", "x-accel-buffering": "no"})
        self.stream = stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):  # a cancelled task must still stop the generator
                await self.stream.aclose()


def wants_events(request: Request) -> bool:
    return SSE in request.headers.get("accept", "")


def event(data: bytes) -> bytes:
    """One server-sent event; a payload with newlines becomes several `data:` lines."""
    return b"".join(b"data: " + line + b"\n" for line in data.split(b"\n")) + b"\n"


def encode(item: Any) -> bytes:
    """A streamed item as bytes: bytes as given, str as UTF-8, anything else as one JSON line."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, str):
        return item.encode()
    return dumps(item) + b"\n"


def from_generator(result: Any, request: Request, executor: ThreadPoolExecutor, request_id: str) -> Stream:
    """A predictor's generator as a Stream: raw chunks (Transfer-Encoding: chunked), or one
    server-sent event per item when the client accepts text/event-stream."""
    source = Source(result, executor)
    events = wants_events(request)
    stream: Stream

    async def chunks() -> AsyncIterator[bytes]:
        try:
            async for item in source:
                if events:
                    yield event(encode(item).rstrip(b"\n"))
                else:
                    yield encode(item)
        except PredictorRaised as raised:
            # Headers are gone: the status cannot change. Log it, tell an SSE client, end the stream.
            stream.status = 500
            logs.log.error("request %s: the predictor's generator raised\n%s", request_id, logs.format_exception(raised.__cause__ or raised))
            if events:
                message = "the predictor raised; the log has the details under this request id"
                yield b"event: error\n" + event(dumps({"error": message, "request_id": request_id}))

    stream = Stream(chunks(), SSE if events else "application/octet-stream", source.aclose)
    return stream
