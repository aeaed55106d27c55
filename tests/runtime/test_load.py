"""Overload and drain on a real server: 503s instead of unbounded queues, and no admitted request lost."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import psutil


async def hammer(url: str, n: int, body: dict, concurrency: int) -> list[int | str]:
    results: list[int | str] = []
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one():
            async with sem:
                try:
                    r = await client.post("/predict", json=body)
                    results.append(r.status_code)
                    if r.status_code == 503:
                        assert r.headers["retry-after"] == "1"
                    elif r.status_code == 200:
                        assert r.json()["echo"] == body
                except httpx.TransportError as exc:
                    results.append(type(exc).__name__)

        await asyncio.gather(*(one() for _ in range(n)))
    return results


def test_overload_sheds_with_503_and_memory_stays_flat(serve):
    s = serve("echo.py:Echo", "--max-in-flight", "2", "--max-queue", "2", "--config", '{"delay": 0.2}', "--no-access-log")
    first = asyncio.run(hammer(s.url, 40, {"x": 1}, concurrency=20))
    assert first.count(200) >= 4 and first.count(503) >= 20
    assert set(first) <= {200, 503}
    rss = psutil.Process(s.proc.pid).memory_info().rss
    for _ in range(3):
        more = asyncio.run(hammer(s.url, 400, {"x": 2}, concurrency=40))
        assert set(more) <= {200, 503}
    growth = psutil.Process(s.proc.pid).memory_info().rss - rss
    assert growth < 15 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB under sustained overload"
    assert httpx.get(s.url + "/readyz").status_code == 200
    metrics = httpx.get(s.url + "/metrics").text
    assert "mlkit_requests_rejected_total" in metrics and "mlkit_requests_in_flight 0.0" in metrics


def test_sigterm_under_load_loses_no_admitted_request(serve):
    s = serve("echo.py:Echo", "--max-in-flight", "4", "--max-queue", "16", "--config", '{"delay": 0.05}', "--drain-delay-s", "1", "--drain-timeout-s", "20")
    results: list[int | str] = []

    async def load() -> None:
        async with httpx.AsyncClient(base_url=s.url, timeout=30) as client:

            async def worker():
                deadline = time.monotonic() + 4
                while time.monotonic() < deadline:
                    try:
                        r = await client.post("/predict", json={"w": 1})
                        results.append(r.status_code)
                        if r.status_code == 200:
                            assert r.json() == {"echo": {"w": 1}}
                    except httpx.TransportError:
                        results.append("refused")  # after the listener closed: never admitted
                        await asyncio.sleep(0.05)

            async def terminate():
                await asyncio.sleep(0.5)
                s.proc.send_signal(signal.SIGTERM)
                await asyncio.sleep(0.2)
                ready = await client.get("/readyz")
                results.append(("readyz", ready.status_code))

            await asyncio.gather(*(worker() for _ in range(12)), terminate())

    asyncio.run(load())
    assert s.proc.wait(timeout=30) == 0
    assert ("readyz", 503) in results
    statuses = [r for r in results if not isinstance(r, tuple)]
    assert statuses.count(200) > 20
    assert set(statuses) <= {200, 503, "refused"}, set(statuses)
    assert statuses.count(503) == 0  # the queue never filled: every request sent before close was served
    assert "signal 15: unready now" in s.output()
