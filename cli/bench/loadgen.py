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
from collections.abc import Callable
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


def ok_count(statuses: dict[str, int]) -> int:
    """The 2xx answers among counts by status: what a run (or a window of one) served."""
    return sum(n for status, n in statuses.items() if status.startswith("2"))


def percentile_ms(latencies: list[float], p: float) -> float:
    """The p-th quantile (0-1) of sorted latencies in seconds, in ms; NaN when there are none."""
    if not latencies:
        return float("nan")
    return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000


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
        return ok_count(self.statuses)

    @property
    def success(self) -> float:
        return self.ok / self.sent if self.sent else 0.0

    @property
    def served_rps(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def percentile_ms(self, p: float) -> float:
        return percentile_ms(self.latencies, p)

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


@dataclass
class Window:
    """One window of a continuous open-loop run: the requests scheduled within it, judged `lag_s` after
    it ended while the load goes on. A request still unanswered then enters the latencies with its
    age so far (at least `lag_s`, which is more than the target) but not the share of 2xx answers:
    it is late, which the latency says, not refused."""

    offered_rps: float
    seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    unanswered: int = 0

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return ok_count(self.statuses)

    @property
    def success(self) -> float:
        return self.ok / self.answered if self.answered else 0.0

    @property
    def served_rps(self) -> float:
        """2xx answers to the window's own requests per second of window: the offered rate when the
        replica keeps up, less what it shed or left waiting when it does not. Counting answers by
        arrival time instead would make a batching server's figure jump by a whole batch per window."""
        return self.ok / self.seconds

    def percentile_ms(self, p: float) -> float:
        return percentile_ms(self.latencies, p)

    @property
    def mean_ms(self) -> float:
        return sum(self.latencies) / len(self.latencies) * 1000 if self.latencies else float("nan")


def pool(windows: list[Window]) -> Window:
    """Several windows at one rate as one: their latencies and statuses together."""
    merged = Window(windows[0].offered_rps, sum(w.seconds for w in windows))
    for w in windows:
        merged.latencies.extend(w.latencies)
        merged.unanswered += w.unanswered
        for status, n in w.statuses.items():
            merged.statuses[status] = merged.statuses.get(status, 0) + n
    merged.latencies.sort()
    return merged


async def run_windows(
    url: str,
    body: bytes,
    rate: float,
    window_s: float,
    enough: Callable[[list[Window]], bool],
    max_windows: int,
    lag_s: float,
    connections: int = 256,
    seed: int = 0,
    grace_s: float = 5.0,
) -> list[Window]:
    """Offer `rate` requests per second without a break, in windows of `window_s`, until `enough(windows)`
    says the windows so far suffice or `max_windows` were measured. Window k is judged `lag_s` after it
    ends, while window k+1 is under way, so the replica never idles between windows (a queue that grows
    from window to window shows, instead of draining in a pause). Each window's arrivals follow
    `schedule` (Poisson gaps, exactly rate x window_s of them). Afterwards the answers still owed
    are awaited for at most `grace_s`, so that the next rate starts on an idle replica."""
    host, port, raw = request_bytes(url, body)
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await Connection.open(host, port))
    rng = random.Random(seed)
    # Per window: scheduled send times of its requests, and what came back for each (status, latency).
    sent_at: list[list[float]] = []
    answers: list[dict[int, tuple[str, float]]] = []
    tasks: set[asyncio.Task[None]] = set()
    stop = asyncio.Event()  # set once the last window is judged: the sender sends no more

    async def one(k: int, i: int, scheduled: float) -> None:
        conn = await idle.get()
        try:
            key = str(await conn.request(raw))
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            key = type(exc).__name__
            conn.close()
            conn = await Connection.open(host, port)
        finally:
            idle.put_nowait(conn)
        answers[k][i] = (key, time.perf_counter() - scheduled)

    start = time.perf_counter()

    async def send() -> None:
        for k in range(max_windows + 1):  # one window more than is judged: the load goes on during the last lag
            times = [start + k * window_s + t for t in schedule(rate, window_s, True, rng)]
            sent_at.append(times)
            answers.append({})
            for i, scheduled in enumerate(times):
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if stop.is_set():
                    return
                task = asyncio.create_task(one(k, i, scheduled))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

    sender = asyncio.create_task(send())
    windows: list[Window] = []
    try:
        for k in range(max_windows):
            await asyncio.sleep(max(0.0, start + (k + 1) * window_s + lag_s - time.perf_counter()))
            now = time.perf_counter()
            window = Window(rate, window_s)
            for i, scheduled in enumerate(sent_at[k]):
                if i in answers[k]:
                    key, latency = answers[k][i]
                    window.statuses[key] = window.statuses.get(key, 0) + 1
                    window.latencies.append(latency)
                else:
                    window.unanswered += 1
                    window.latencies.append(now - scheduled)
            window.latencies.sort()
            windows.append(window)
            if enough(windows):
                break
    finally:
        stop.set()
        await sender
        if tasks:
            _, pending = await asyncio.wait(set(tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        while not idle.empty():
            idle.get_nowait().close()
    return windows
