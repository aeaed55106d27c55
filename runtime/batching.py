"""Dynamic batching: gather requests until `max_batch_size` or until the oldest has waited
`max_wait_ms`, run one `predict_batch`, and hand each caller its own result."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from typing import Any

from .metrics import Metrics
from .predictor import Predictor


# The handler puts a one-slot list here; the batcher fills in the size of the batch that served the
# request. A list, not a plain value, so that tasks spawned by the handler (KServe v1 fan-out) write
# to the handler's slot.
batch_sizes: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("batch_sizes", default=None)


class Batcher:
    def __init__(self, predictor: Predictor, max_batch_size: int, max_wait_ms: float, metrics: Metrics):
        self.predictor = predictor
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.metrics = metrics
        self.pending: deque[tuple[float, Any, asyncio.Future]] = deque()
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.closing = False

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="mlkit-batcher")

    async def submit(self, payload: Any) -> Any:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((time.monotonic(), payload, future))
        self.wakeup.set()
        result, size = await future
        slot = batch_sizes.get()
        if slot is not None:
            slot[0] = max(slot[0], size)
        return result

    async def stop(self) -> None:
        """Finish every request already submitted, then end."""
        self.closing = True
        self.wakeup.set()
        if self.task is not None:
            await self.task

    async def _run(self) -> None:
        while True:
            if not self.pending:
                if self.closing:
                    return
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            # The oldest request's deadline counts from when it arrived, which may have been during
            # the previous batch: under load batches leave at once, when idle a request waits at most max_wait.
            deadline = self.pending[0][0] + self.max_wait
            while len(self.pending) < self.max_batch_size and not self.closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.wakeup.clear()
                try:
                    await asyncio.wait_for(self.wakeup.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = [self.pending.popleft() for _ in range(min(self.max_batch_size, len(self.pending)))]
            batch = [item for item in batch if not item[2].done()]  # callers that went away
            if not batch:
                continue
            self.metrics.batch_size.observe(len(batch))
            try:
                results = await self.predictor.predict_batch([payload for _, payload, _ in batch])
            except Exception as exc:  # the batch's callers fail; the server goes on
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, _, future), result in zip(batch, results):
                if not future.done():
                    future.set_result((result, len(batch)))
