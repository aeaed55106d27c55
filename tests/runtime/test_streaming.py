"""Streamed predict responses against a real server: chunked and SSE, sync and async generators,
errors mid-stream, disconnects that free the slot and stop the generator, and a free event loop."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from mlkit_runtime.generate import StopMatcher


def events(tmp_path: Path) -> list[str]:
    path = tmp_path / "events"
    return path.read_text().split() if path.exists() else []


def wait_for(check, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_sync_generator_streams_chunked_json_lines(serve):
    server = serve("tokens.py:Predictor")
    with httpx.stream("POST", server.url + "/predict", json={"n": 3}) as r:
        assert r.status_code == 200
        assert r.headers["transfer-encoding"] == "chunked"
        lines = [json.loads(line) for line in r.iter_lines()]
    assert lines == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_async_generator_streams_server_sent_events_when_asked(serve):
    server = serve("tokens.py:Predictor")
    with httpx.stream("POST", server.url + "/predict", json={"n": 2, "async": True}, headers={"accept": "text/event-stream"}) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        body = r.read().decode()
    assert body == "data: item 0\n\ndata: item 1\n\n"


def test_generator_that_raises_ends_the_stream_with_an_error_event_and_is_counted(serve):
    server = serve("tokens.py:Predictor")
    with httpx.stream("POST", server.url + "/predict", json={"fail": True}, headers={"accept": "text/event-stream", "x-request-id": "broken-1"}) as r:
        body = r.read().decode()
    assert body.startswith("data: before\n\nevent: error\ndata: ")
    assert '"request_id":"broken-1"' in body
    metrics = httpx.get(server.url + "/metrics").text
    assert "mlkit_predictor_errors_total 1.0" in metrics
    assert wait_for(lambda: '"request_id":"broken-1","route":"/predict","status":500' in server.output())
    assert "RuntimeError: generator broke" in server.output()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_disconnect_mid_stream_frees_the_slot_and_closes_the_generator(serve, tmp_path, kind):
    # One slot and no queue: a second request is admitted only if the first one's slot came back.
    server = serve("tokens.py:Predictor", "--max-in-flight", "1", "--max-queue", "0", "--config", '{"delay": 0.2}')
    url = urlparse(server.url)
    sock = socket.create_connection((url.hostname, url.port))
    body = json.dumps({"n": 1000, "async": kind == "async"}).encode()
    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    received = b""
    while received.count(b"item") + received.count(b'"i"') < 2:
        received += sock.recv(4096)
    assert httpx.post(server.url + "/predict", json={"n": 1}).status_code == 503  # the slot is taken
    sock.close()
    assert wait_for(lambda: events(tmp_path) == ["start", "closed"]), events(tmp_path)
    assert wait_for(lambda: httpx.post(server.url + "/predict", json={"n": 1}).status_code == 200)
    assert "mlkit_requests_in_flight 0.0" in httpx.get(server.url + "/metrics").text


def test_slow_sync_generator_does_not_block_the_event_loop(serve):
    server = serve("tokens.py:Predictor", "--config", '{"delay": 0.5}')
    with httpx.Client(base_url=server.url) as probe, httpx.stream("POST", server.url + "/predict", json={"n": 3}) as r:
        next(r.iter_lines())  # mid-stream: the generator is sleeping in a thread
        # The probe's client is made before the clock starts: httpx.get() makes one per call, whose TLS
        # context alone took up to 185 ms on the loaded 2-core machine.
        start = time.perf_counter()
        assert probe.get("/healthz").status_code == 200
        assert time.perf_counter() - start < 0.25


@pytest.mark.parametrize(
    ("stops", "tokens", "sent", "stopped"),
    [
        (["\n\n"], ["a", "\n", "\nb"], "a", True),  # across a token boundary
        (["END"], ["x E", "N", "y"], "x ENy", False),  # a partial match is sent once it fails
        (["ab", "b"], ["xa", "b"], "x", True),  # the earliest match wins
        ([], ["a", "b"], "ab", False),
    ],
)
def test_stop_matcher(stops, tokens, sent, stopped):
    matcher = StopMatcher(stops)
    out, hit = "", False
    for token in tokens:
        text, hit = matcher.feed(token)
        out += text
        if hit:
            break
    if not hit:
        out += matcher.flush()
    assert (out, hit) == (sent, stopped)
