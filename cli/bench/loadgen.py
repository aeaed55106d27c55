"""An open-loop load generator: requests leave on a schedule (Poisson arrivals, or a constant rate),
whether or not earlier ones have been answered, and latency counts from the scheduled send time.
A stalled server therefore shows its stall in the latency instead of slowing the generator down
(the "coordinated omission" that closed-loop tools suffer from).

One implementation for `mlkit bench` and benchmarks/serving/openloop.py.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough of the protocol to time requests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def request(self, raw: bytes) -> int:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


@dataclass
class Result:
    """What one run measured. Latencies are sorted, in seconds, from each request's scheduled time."""

    offered_rps: float
    elapsed_s: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.startswith("2"))

    @property
    def success(self) -> float:
        return self.ok / self.sent if self.sent else 0.0

    @property
    def served_rps(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        return self.latencies[min(len(self.latencies) - 1, int(p * len(self.latencies)))] * 1000

    @property
    def mean_ms(self) -> float:
        return sum(self.latencies) / len(self.latencies) * 1000 if self.latencies else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "offered_rps": self.offered_rps,
            "served_rps": self.served_rps,
            "p50_ms": self.percentile_ms(0.50),
            "p99_ms": self.percentile_ms(0.99),
            "mean_ms": self.mean_ms,
            "non_2xx": self.sent - self.ok,
            "statuses": self.statuses,
        }


def request_bytes(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ValueError(f"{url}: the load generator speaks plain http://host:port/path only")
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    head = (
        f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
        f"Content-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    )
    return parts.hostname, parts.port, head.encode() + body


def schedule(rate: float, seconds: float, poisson: bool, rng: random.Random) -> list[float]:
    """Send times in [0, seconds). Poisson arrivals come as a Poisson process conditioned on its count:
    round(rate x seconds) times drawn uniformly and sorted. The gaps are those of Poisson arrivals, but
    a short run offers exactly the rate asked for, instead of a count that strays by its square root
    (about 14% for 50 requests), which would blur the capacity search."""
    count = max(1, round(rate * seconds))
    if poisson:
        return sorted(rng.uniform(0, seconds) for _ in range(count))
    return [i / rate for i in range(count)]


async def run(
    url: str,
    body: bytes,
    rate: float,
    seconds: float,
    poisson: bool = True,
    connections: int = 256,
    seed: int = 0,
    grace_s: float = 5.0,
    headers: dict[str, str] | None = None,
) -> Result:
    """Offer `rate` requests per second for `seconds` (see `schedule`); wait at most `grace_s` more for the answers.

    A request still unanswered after the grace counts as status "timeout" with its latency so far,
    so an overloaded server cannot stall the run.
    """
    host, port, raw = request_bytes(url, body, headers)
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Connection.open(host, port))
    result = Result(offered_rps=rate, elapsed_s=0.0)
    statuses = result.statuses
    rng = random.Random(seed)
    scheduled_at: dict[asyncio.Task[None], float] = {}

    async def one(scheduled: float) -> None:
        conn = await pool.get()
        try:
            key = str(await conn.request(raw))
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            key = type(exc).__name__
            conn.close()
            conn = await Connection.open(host, port)
        finally:
            pool.put_nowait(conn)
        statuses[key] = statuses.get(key, 0) + 1
        result.latencies.append(time.perf_counter() - scheduled)

    start = time.perf_counter()
    for t in schedule(rate, seconds, poisson, rng):
        scheduled = start + t
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(scheduled))
        scheduled_at[task] = scheduled
    pending: set[asyncio.Task[None]] = set()
    if scheduled_at:
        _, pending = await asyncio.wait(scheduled_at, timeout=max(0.0, start + seconds + grace_s - time.perf_counter()))
    now = time.perf_counter()
    for task in pending:
        task.cancel()
        statuses["timeout"] = statuses.get("timeout", 0) + 1
        result.latencies.append(now - scheduled_at[task])
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    result.elapsed_s = max(seconds, now - start) if pending else now - start
    while not pool.empty():
        pool.get_nowait().close()
    result.latencies.sort()
    return result


async def saturate(url: str, body: bytes, concurrency: int, seconds: float, headers: dict[str, str] | None = None) -> float:
    """Closed-loop throughput with `concurrency` clients: a ceiling to start the open-loop search
    from (closed loop hides latency, so it is never used for the latency figures themselves)."""
    host, port, raw = request_bytes(url, body, headers)
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        conn = await Connection.open(host, port)
        try:
            while time.perf_counter() < deadline:
                if (await conn.request(raw)) < 300:
                    done += 1
        finally:
            conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)
