"""A response's head written with its body (runtime/bounded_head.py, HeldHead): one send where uvicorn
made two, streams' heads at once as before, a head never lost. The transport is a recorder and the
cycle uvicorn's own, driven through its ASGI send as the app drives it."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from mlkit_runtime.bounded_head import HeldHead
from tests.runtime.conftest import start, stop


class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def cycle(method: str = "GET") -> tuple[RequestResponseCycle, Recorder]:
    transport = Recorder()
    scope: Any = {"type": "http", "method": method, "http_version": "1.1", "path": "/", "headers": []}
    made = RequestResponseCycle(
        scope=scope,
        transport=transport,  # type: ignore[arg-type]  # a recorder
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger(__name__),
        access_logger=logging.getLogger(__name__),
        access_log=False,
        default_headers=[],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=True,
        on_response=lambda: None,
    )
    made.transport = HeldHead(transport, made)  # as BoundedHeadProtocol sets it
    return made, transport


def send(made: RequestResponseCycle, *messages: dict) -> None:
    async def run() -> None:
        for message in messages:
            await made.send(message)  # type: ignore[arg-type]

    asyncio.run(run())


START = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5"), (b"content-type", b"text/plain")]}


def test_a_response_of_known_length_is_one_write() -> None:
    made, transport = cycle()
    send(made, START, {"type": "http.response.body", "body": b"hello"})
    assert len(transport.writes) == 1
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n") and transport.writes[0].endswith(b"\r\n\r\nhello")


def test_a_head_request_is_one_write_of_the_head() -> None:
    made, transport = cycle("HEAD")
    send(made, START, {"type": "http.response.body", "body": b""})
    assert len(transport.writes) == 1 and transport.writes[0].endswith(b"\r\n\r\n")


def test_a_chunked_stream_sends_its_head_at_once() -> None:
    made, transport = cycle()
    send(made, {"type": "http.response.start", "status": 200, "headers": []})
    assert len(transport.writes) == 1 and b"transfer-encoding: chunked" in transport.writes[0]  # before any chunk
    send(made, {"type": "http.response.body", "body": b"a", "more_body": True}, {"type": "http.response.body", "body": b""})
    assert transport.writes[1:] == [b"1\r\na\r\n", b"0\r\n\r\n"]


def test_a_body_in_parts_sends_the_head_with_the_first() -> None:
    made, transport = cycle()
    send(made, START, {"type": "http.response.body", "body": b"he", "more_body": True}, {"type": "http.response.body", "body": b"llo"})
    assert len(transport.writes) == 2 and transport.writes[0].endswith(b"\r\n\r\nhe") and transport.writes[1] == b"llo"


@pytest.mark.parametrize("size", [65537, 1 << 20])
def test_a_large_body_is_not_copied_behind_its_head(size: int) -> None:
    made, transport = cycle()
    start = dict(START, headers=[(b"content-length", str(size).encode())])
    send(made, start, {"type": "http.response.body", "body": b"x" * size})
    assert [len(w) for w in transport.writes][1:] == [size] and transport.writes[0].endswith(b"\r\n\r\n")


def test_a_head_without_its_body_is_written_before_the_close() -> None:
    made, transport = cycle()
    send(made, START)
    assert transport.writes == []
    made.transport.close()
    assert len(transport.writes) == 1 and transport.writes[0].startswith(b"HTTP/1.1 200") and transport.closed


def test_a_server_answers_head_and_get_on_one_connection(tmp_path: Path) -> None:
    # End to end: a HEAD's answer has no body to carry its head, and must still come (then a GET's).
    server = start(tmp_path, "echo.py:Echo")
    try:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            for method in ("HEAD", "GET", "HEAD"):
                sock.sendall(f"{method} /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                answer = b""
                while b"\r\n\r\n" not in answer:
                    answer += sock.recv(65536)
                head, _, body = answer.partition(b"\r\n\r\n")
                length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))  # type: ignore[union-attr]
                if method == "GET":
                    while len(body) < length:
                        body += sock.recv(65536)
                    assert body and len(body) == length
                else:
                    assert body == b""
    finally:
        stop(server)
