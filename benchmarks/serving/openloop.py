"""An open-loop load generator: requests leave on a schedule (constant rate or Poisson arrivals),
whether or not earlier ones have been answered, and latency counts from the scheduled send time.
A stalled server therefore shows its stall in the latency, instead of slowing the generator down
(the "coordinated omission" that closed-loop tools suffer from).

    python openloop.py --url http://127.0.0.1:8080/predict --body payload.json --rate 500 --seconds 10 [--poisson]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from urllib.parse import urlsplit


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

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


async def run(url: str, body: bytes, rate: float, seconds: float, poisson: bool, connections: int) -> dict:
    parts = urlsplit(url)
    raw = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(Connection(*await asyncio.open_connection(parts.hostname, parts.port)))
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    rng = random.Random(0)

    async def one(scheduled: float) -> None:
        conn = await pool.get()
        try:
            status = await conn.request(raw)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        except (OSError, asyncio.IncompleteReadError) as exc:
            statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
            conn = Connection(*await asyncio.open_connection(parts.hostname, parts.port))
        finally:
            pool.put_nowait(conn)
        latencies.append(time.perf_counter() - scheduled)

    tasks = []
    start = time.perf_counter()
    t = 0.0
    while t < seconds:
        scheduled = start + t
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
        t += rng.expovariate(rate) if poisson else 1 / rate
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    ok = statuses.get("200", 0)
    return {"offered_rps": rate, "served_rps": ok / elapsed, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "non_2xx": sum(statuses.values()) - ok, "statuses": statuses}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True)
    p.add_argument("--body", required=True, help="file with the JSON request body")
    p.add_argument("--rate", type=float, required=True, help="requests per second to offer")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--poisson", action="store_true", help="Poisson arrivals instead of a constant rate")
    p.add_argument("--connections", type=int, default=256, help="keep-alive connections to spread requests over")
    args = p.parse_args()
    with open(args.body, "rb") as f:
        body = f.read()
    print(json.dumps(asyncio.run(run(args.url, body, args.rate, args.seconds, args.poisson, args.connections))))


if __name__ == "__main__":
    main()
