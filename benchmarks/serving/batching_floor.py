"""The floor for a batching JSON server: a bare ASGI app that parses the body with orjson, queues it
for one batcher task, runs the batch in a thread and answers; no admission, ids, metrics or logs.
What breakdown.py compares the runtime's request path against. The model costs nothing.

    uvicorn batching_floor:app --loop uvloop --http httptools
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import orjson

MAX_BATCH = 32
pool = ThreadPoolExecutor(4)
pending: list[tuple[object, asyncio.Future]] = []
wakeup: asyncio.Event | None = None


def predict_batch(payloads: list) -> list:
    return [[0.0] * 10 for _ in payloads]


async def batcher() -> None:
    loop = asyncio.get_running_loop()
    while True:
        if not pending:
            wakeup.clear()
            await wakeup.wait()
            continue
        batch = pending[:MAX_BATCH]
        del pending[:MAX_BATCH]
        results = await loop.run_in_executor(pool, predict_batch, [payload for payload, _ in batch])
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)


async def app(scope, receive, send) -> None:
    global wakeup
    if scope["type"] == "lifespan":
        while (await receive())["type"] == "lifespan.startup":
            wakeup = asyncio.Event()
            app.batcher = asyncio.get_running_loop().create_task(batcher())  # keep a reference
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    future = asyncio.get_running_loop().create_future()
    pending.append((orjson.loads(body), future))
    wakeup.set()
    out = orjson.dumps(await future)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})
