"""The link between an HTTP front process and the model process: framed pickle messages over a unix
socket pair, and, on the front's side, a stand-in for the predictor (`remote_predictor`) that the
runtime calls as it would call the user's object, so that the routes, streaming and generation run
unchanged in a front.

Messages, front to model: (id, "predict", payload), (id, "json", body) (a predict whose payload is a
request's JSON body as parsed: the bytes, parsed again in the model process, cost less than the
parsed value pickled and unpickled), (id, "shm", pickled message, slots) (a predict
message whose large buffers are in the front's shared memory, runtime/shared_buffers.py),
(id, "generate", prompt, kwargs), (id, "count", prompt), (id, "cancel"). Model to front: (id, "ok", value, batch size), (id, "err", error),
(id, "stream"), (id, "chunk", item), (id, "end").
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import pickle
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from . import input_form
from .batching import current
from .errors import HTTPError, PredictorRaised
from .logs import format_exception
from .payloads import json_source
from .shared_buffers import Region

HEADER = struct.Struct("!I")


def frame(message: tuple[Any, ...]) -> bytes:
    body = pickle.dumps(message, protocol=5)
    return HEADER.pack(len(body)) + body


def split(buffer: bytearray, data: bytes | memoryview) -> list[tuple[Any, ...]]:
    """The whole messages in what was left over (`buffer`) plus `data`; the rest stays in `buffer`."""
    if not buffer and len(data) >= HEADER.size and len(data) == HEADER.size + HEADER.unpack_from(data)[0]:
        return [pickle.loads(memoryview(data)[HEADER.size:])]  # one whole message, the common case: not copied
    buffer += data
    messages = []
    start = 0
    with memoryview(buffer) as view:  # released before the buffer is cut
        while len(buffer) - start >= HEADER.size:
            end = start + HEADER.size + HEADER.unpack_from(buffer, start)[0]
            if len(buffer) < end:
                break
            messages.append(pickle.loads(view[start + HEADER.size:end]))
            start = end
    del buffer[:start]
    return messages


class LinkEnd:
    """The model process's end of one front's link, with blocking calls and no event loop: the thread
    that runs the model reads it when it is readable (`read`), and answers are written whole, under a
    lock, from whichever thread has them (`send`). A front reads all it is sent (its protocol never
    pauses reading), so a write blocks only while the front's loop is busy."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self.sock = sock
        self.buffer = bytearray()
        # Read into one buffer kept for the link: recv(1 MiB) allocated a fresh 1 MiB object per message
        # (mmap, then mremap and munmap: three syscalls and page faults, about 20 µs of a lone request).
        self.inbox = bytearray(1 << 20)
        self.lock = threading.Lock()
        self.open = True

    def read(self) -> list[tuple[Any, ...]]:
        """The messages completed by one recv (call it when the socket is readable); at the end of the
        stream, none and `open` False. Nothing returned refers to the inbox: unpickling copies, and
        what is left of a message is kept in `buffer`."""
        try:
            size = self.sock.recv_into(self.inbox)
        except OSError:
            size = 0
        if not size:
            self.open = False
            return []
        return split(self.buffer, memoryview(self.inbox)[:size])

    def send(self, message: tuple[Any, ...]) -> None:
        """Raises what pickling the message raises; a front that is gone is not an error (nobody waits)."""
        self.send_framed([frame(message)])

    def send_framed(self, frames: list[bytes]) -> None:
        """Messages already framed, in one write."""
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass

    def close(self) -> None:
        self.sock.close()


class Framed(asyncio.Protocol):
    """Either end of a link, as a protocol rather than asyncio streams: each message is handled in the
    callback that received its bytes (`on_message`), with no reader task to wake in between. At one
    request at a time those wakeups (two per hop, each side) were most of what a front added."""

    def __init__(self, on_message: Callable[[tuple[Any, ...]], None], on_close: Callable[[], None]) -> None:
        self.on_message = on_message
        self.on_close = on_close
        self.buffer = bytearray()
        self.transport: Any = None  # asyncio's or uvloop's (a front runs uvicorn's loop)
        self.writable: asyncio.Future[None] | None = None  # set while the transport's buffer is full
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        for message in split(self.buffer, data):
            self.on_message(message)

    def send(self, message: tuple[Any, ...]) -> None:
        self.send_body(pickle.dumps(message, protocol=5))

    def send_body(self, body: bytes) -> None:
        """A message already pickled."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(HEADER.pack(len(body)) + body)  # buffered by the transport: a writer never blocks here

    async def drain(self) -> None:
        """Wait while the other side reads slower than this side writes (a stream's chunks)."""
        if self.writable is not None:
            await asyncio.shield(self.writable)

    def pause_writing(self) -> None:
        if self.writable is None:
            self.writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self.writable is not None:
            if not self.writable.done():
                self.writable.set_result(None)
            self.writable = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.resume_writing()
        if not self.closed.done():
            self.closed.set_result(None)
        self.on_close()


async def connect(sock: socket.socket, on_message: Callable[[tuple[Any, ...]], None], on_close: Callable[[], None]) -> Framed:
    _, protocol = await asyncio.get_running_loop().connect_accepted_socket(lambda: Framed(on_message, on_close), sock)
    return protocol


def error_to_wire(exc: BaseException) -> tuple[str, Any]:
    """What the front needs to answer as a single process would: the runtime's own HTTP errors as
    they are; a predictor's exception by its type name and message (it may not unpickle in a front)."""
    if isinstance(exc, HTTPError):
        try:
            pickle.dumps(exc)
            return ("http", exc)
        except Exception:
            pass
    cause = exc.__cause__ if isinstance(exc, PredictorRaised) and exc.__cause__ is not None else exc
    return ("raised", (type(cause).__name__, str(cause), format_exception(cause)))


def error_from_wire(error: tuple[str, Any]) -> BaseException:
    kind, value = error
    if kind == "http":
        exc: BaseException = value
        return exc
    name, message, remote = value
    # Named as the model process's exception; the front's Predictor wraps it as it wraps a local one.
    cause: BaseException = type(name, (Exception,), {"__module__": "predictor"})(message)
    cause.remote_traceback = remote  # type: ignore[attr-defined]  # what the front logs: the predictor's frames, not the link's
    return cause


class Streamed:
    """Items of a result the model process streams (a generator's), as they arrive."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()


class ModelLink:
    """One front's end of the link: calls by id, answers matched back to their callers. With a
    `region`, a payload's large buffers go through the front's shared memory."""

    def __init__(self, sock: socket.socket, region: Region | None = None) -> None:
        self.sock = sock
        self.region = region
        self.ids = itertools.count()
        self.calls: dict[int, asyncio.Future[Any]] = {}
        self.streams: dict[int, Streamed] = {}
        self.framed: Framed | None = None
        self.gone = False

    async def open(self) -> None:
        self.framed = await connect(self.sock, self._received, self._lost)

    def close(self) -> None:
        if self.framed is not None:
            self.framed.close()

    def send(self, message: tuple[Any, ...]) -> None:
        assert self.framed is not None
        self.framed.send(message)

    async def call(self, op: str, *args: Any) -> Any:
        if self.gone:
            raise HTTPError("the model process is gone")
        i = next(self.ids)
        future = self.calls[i] = asyncio.get_running_loop().create_future()
        try:
            source = json_source.get() if op == "predict" else None
            if source is not None and source[0] is args[0]:  # the request's JSON, as parsed: its bytes, parsed again there
                self.send((i, "json", source[1]))
            elif self.region is not None and op == "predict":
                # Pickled once, large buffers out of band: with none, the pickle is the usual message as it is.
                body, slots = self.region.pack((id(self), i), (i, op, *args))
                if slots:
                    self.send((i, "shm", body, slots))
                else:
                    assert self.framed is not None
                    self.framed.send_body(body)
            else:
                self.send((i, op, *args))
            kind, value, *batch = await future
        finally:
            self.calls.pop(i, None)
        state = current.get()
        if batch and batch[0] and state is not None:  # the batch it ran in, for the access log
            state.batch_size = max(state.batch_size, batch[0])
        if kind == "err":
            raise error_from_wire(value)
        if kind == "stream":
            return self._iterate(i, value)
        return value

    async def _iterate(self, i: int, streamed: Streamed) -> AsyncIterator[Any]:
        try:
            while True:
                kind, value = await streamed.items.get()
                if kind == "end":
                    return
                if kind == "err":
                    raise error_from_wire(value)
                yield value
        finally:
            if self.streams.pop(i, None) is not None and not self.gone:  # closed before its end: the client went
                self.send((i, "cancel"))

    def _received(self, message: tuple[Any, ...]) -> None:
        i, kind, *rest = message
        if self.region is not None and kind in ("ok", "err", "end"):  # the call is over in the model process: its slots are free
            self.region.release((id(self), i))
        if kind in ("chunk", "end") or (kind == "err" and i in self.streams):
            streamed = self.streams.get(i)
            if streamed is not None:
                streamed.items.put_nowait((kind, rest[0] if rest else None))
                if kind != "chunk":
                    self.streams.pop(i, None)
            return
        future = self.calls.get(i)
        if future is None or future.done():
            return
        if kind == "stream":
            streamed = self.streams[i] = Streamed()
            future.set_result(("stream", streamed))
        else:
            future.set_result((kind, *rest))

    def _lost(self) -> None:
        self.gone = True
        if self.region is not None:
            for key in [key for key in self.region.held if key[0] == id(self)]:
                self.region.release(key)
        gone = HTTPError("the model process is gone")
        for future in self.calls.values():
            if not future.done():
                future.set_result(("err", ("http", gone)))
        for streamed in self.streams.values():
            streamed.items.put_nowait(("err", ("http", gone)))


class Links:
    """A front's links to every model process (one per device): each call goes to the one with the
    fewest calls and streams outstanding from this front, so a slow or busy device gets less."""

    def __init__(self, links: list[ModelLink]) -> None:
        self.links = links

    async def open(self) -> None:
        for link in self.links:
            await link.open()

    def close(self) -> None:
        for link in self.links:
            link.close()

    async def call(self, op: str, *args: Any) -> Any:
        link = min(self.links, key=lambda link: (link.gone, len(link.calls) + len(link.streams)))
        return await link.call(op, *args)


def describe(instance: Any) -> dict[str, Any]:
    """What a front must know of the predictor to stand in for it (sent once the model loaded)."""
    generate = getattr(instance, "generate", None)
    facts: dict[str, Any] = {
        "class": type(instance).__name__,
        "predict": callable(getattr(instance, "predict", None)),
        "batches": callable(getattr(instance, "predict_batch", None)),
        "oip_tensors": getattr(type(instance), "oip_tensors", "numpy"),
        "generate": None,
        "context_length": getattr(instance, "context_length", None),
        "count_tokens": callable(getattr(instance, "count_tokens", None)),
        "input_form": input_form.of(type(instance)) is not None,
    }
    if callable(generate):
        facts["generate"] = [(p.name, p.kind, p.default) for p in inspect.signature(generate).parameters.values()]
    return facts


def remote_predictor(facts: dict[str, Any], link: ModelLink | Links) -> Any:
    """An object with the predictor's methods (all async) that run in the model process. It has no
    predict_batch and no warmup: the model process batches across every front and has warmed up."""
    cls = type(facts["class"], (), {"oip_tensors": facts["oip_tensors"], "__module__": "mlkit_runtime.model_process"})
    stand_in = cls()
    if facts["predict"]:
        async def predict(payload: Any) -> Any:
            return await link.call("predict", payload)

        stand_in.predict = predict
    if facts["generate"] is not None:
        def generate(prompt: Any, **kwargs: Any) -> AsyncIterator[Any]:
            async def tokens() -> AsyncIterator[Any]:
                async for token in await link.call("generate", prompt, kwargs):
                    yield token

            return tokens()

        generate.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter(name, kind, default=default) for name, kind, default in facts["generate"]]
        )
        stand_in.generate = generate
    if facts["context_length"] is not None:
        stand_in.context_length = facts["context_length"]
    if facts["count_tokens"]:
        async def count_tokens(prompt: Any) -> Any:
            return await link.call("count", prompt)

        stand_in.count_tokens = count_tokens
    return stand_in
