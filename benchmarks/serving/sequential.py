"""One client, one request at a time on one keep-alive connection, each timed with perf_counter: c=1
latency in microseconds (hey reports percentiles in 0.1 ms steps, too coarse to tell 1.30 from 1.43 ms).

The request is written whole with one send and the answer read by its Content-Length on a raw socket,
so the client adds the same small, steady cost to every mode it measures. Prints one JSON object:
every latency in µs, in order.

    python benchmarks/serving/sequential.py --url http://127.0.0.1:8080/predict --body body.json --seconds 1
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


def request_bytes(url: str, body: bytes, content_type: str) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    head = (f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return parts.hostname or "127.0.0.1", parts.port or 80, head + body


def read_answer(sock: socket.socket, buffer: bytearray) -> int:
    """The status of one answer, read whole (by Content-Length) from `sock`; what follows stays in `buffer`."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buffer += chunk
    head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    length = next(int(line.split(":", 1)[1]) for line in head[1:] if line.lower().startswith("content-length:"))
    total = end + 4 + length
    while len(buffer) < total:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-answer")
        buffer += chunk
    del buffer[:total]
    return status


def run(url: str, body: bytes, seconds: float, content_type: str = "application/json") -> list[float]:
    """Latencies in µs of the requests sent one after another for `seconds`; any answer but 200 is an error."""
    host, port, message = request_bytes(url, body, content_type)
    timings: list[float] = []
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = bytearray()
        clock = time.perf_counter
        stop = clock() + seconds
        while True:
            start = clock()
            sock.sendall(message)
            status = read_answer(sock, buffer)
            done = clock()
            if status != 200:
                raise RuntimeError(f"{url} answered {status}")
            timings.append((done - start) * 1e6)
            if done >= stop:
                return timings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--body", type=Path, required=True)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--content-type", default="application/json")
    args = p.parse_args()
    json.dump({"us": [round(t, 1) for t in run(args.url, args.body.read_bytes(), args.seconds, args.content_type)]}, sys.stdout)


if __name__ == "__main__":
    main()
