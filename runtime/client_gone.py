"""Work done for a request that ends when its client leaves.

Rule: a request's work is bounded by its client's presence. A streamed response stops its generator
when the send fails (streaming.py); a response sent whole has nothing to send until the work is done,
so it would go on generating for nobody, holding its admission slot. `until_gone` runs the work
beside a watch on the connection and cancels it when the client disconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from .errors import ClientClosed

T = TypeVar("T")


async def _disconnected(request: Request) -> None:
    # The body has been read: the server's next message is the disconnect, whenever it comes.
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def until_gone(request: Request, work: Awaitable[T]) -> T:
    """`work`'s result; or, when the client disconnects first, `work` cancelled and ClientClosed raised."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait([task, watch], return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            # Wait for it to unwind, so that whoever closes the generator next finds it not running.
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        raise ClientClosed("the client closed the connection before the answer was ready; generation stopped")
    return task.result()
