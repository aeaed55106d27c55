"""Dynamic batching: gather requests until `max_batch_size` or until the oldest has waited
`max_wait_ms`, run one `predict_batch`, and hand each caller its own result; when it raises, each
request is run alone, so that only the ones the predictor cannot take fail."""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from typing import Any

from .metrics import Metrics
from .predictor import Predictor


class RequestState:
    """Per request, shared with tasks the handler spawns (KServe v1 fan-out) through a context variable."""

    __slots__ = ("arriving", "batch_size")

    def __init__(self) -> None:
        self.arriving = False  # admitted, but its payloads not yet handed to the batcher
        self.batch_size = 0


current: contextvars.ContextVar[RequestState | None] = contextvars.ContextVar("mlkit_request", default=None)


class Batcher:
    def __init__(self, predictor: Predictor, max_batch_size: int, max_wait_ms: float, metrics: Metrics):
        self.predictor = predictor
        # Requests admitted whose payloads are still being read or parsed: worth waiting for.
        self.arriving = 0
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.metrics = metrics
        self.pending: deque[tuple[float, Any, asyncio.Future[tuple[Any, int]]]] = deque()  # (arrival, payload, (result, batch size))
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.closing = False

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="mlkit-batcher")

    def arrive(self, state: RequestState) -> None:
        state.arriving = True
        self.arriving += 1

    def arrived(self, state: RequestState) -> None:
        if state.arriving:
            state.arriving = False
            self.arriving -= 1
            self.wakeup.set()  # a batch waiting for this request need not wait any more

    async def submit(self, payload: Any) -> Any:
        state = current.get()
        if state is not None:
            self.arrived(state)
        future = asyncio.get_running_loop().create_future()
        self.pending.append((time.monotonic(), payload, future))
        self.wakeup.set()
        result, size = await future
        if state is not None:
            state.batch_size = max(state.batch_size, size)
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
            # Wait for more only while admitted requests are still on their way (being read or
            # parsed), and at most until the oldest pending request has waited max_wait: a lone
            # request leaves at once, and under load batches fill from what arrived meanwhile.
            deadline = self.pending[0][0] + self.max_wait
            while len(self.pending) < self.max_batch_size and self.arriving > 0 and not self.closing:
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
            except Exception as exc:
                await self._alone(batch, exc)
                continue
            for (_, _, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result((result, len(batch)))

    async def _alone(self, batch: list[tuple[float, Any, asyncio.Future[tuple[Any, int]]]], exc: Exception) -> None:
        """A batch whose predict_batch raised. Rule: a request's bad parameters fail that request
        only: one payload the predictor cannot take would fail every request batched with it, so
        each is run again alone (at once, side by side), and only those that fail alone fail."""
        if len(batch) == 1:
            _, _, future = batch[0]
            if not future.done():
                future.set_exception(exc)
            return
        outcomes = await asyncio.gather(*(self.predictor.predict_batch([payload]) for _, payload, _ in batch), return_exceptions=True)
        for (_, _, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result((outcome[0], 1))
