"""Admission control: at most `max_in_flight` requests execute, at most `max_queue` wait, the rest
are refused at once (503) so memory stays bounded and clients can retry elsewhere."""

from __future__ import annotations

import asyncio
from collections import deque

from .errors import Overloaded


class Admission:
    def __init__(self, max_in_flight: int, max_queue: int):
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.running = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    @property
    def queued(self) -> int:
        return len(self.waiters)

    @property
    def admitted(self) -> int:
        """Requests accepted and not finished: what the autoscaler scales on."""
        return self.running + len(self.waiters)

    async def acquire(self) -> None:
        if self.running < self.max_in_flight and not self.waiters:
            self.running += 1
            return
        if len(self.waiters) >= self.max_queue:
            raise Overloaded()
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter  # release() hands its slot over: `running` does not change
        except asyncio.CancelledError:
            if waiter in self.waiters:
                self.waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self.release()  # the slot was handed to us as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.running -= 1
