"""Admission for a pod of several HTTP fronts: `max_in_flight + max_queue` hold for the pod, not per
front. One counter in shared memory, under a lock, counts what every front admitted; past the bound a
front answers 503 with Retry-After as a single process does. Executing is bounded in the model
process (its threads and its batcher); what waits beyond `max_in_flight` counts as queued."""

from __future__ import annotations

from typing import Any

from .admission import Admission
from .errors import Overloaded


class SharedAdmission(Admission):
    def __init__(self, max_in_flight: int, max_queue: int, counter: Any, lock: Any) -> None:
        super().__init__(max_in_flight, max_queue)
        self.counter = counter  # a multiprocessing RawValue("q"), shared by the fronts
        self.lock = lock

    @property
    def queued(self) -> int:
        return max(0, int(self.counter.value) - self.max_in_flight)

    @property
    def admitted(self) -> int:
        return int(self.counter.value)

    async def acquire(self) -> None:
        with self.lock:
            if self.counter.value >= self.max_in_flight + self.max_queue:
                raise Overloaded()
            self.counter.value += 1

    def release(self) -> None:
        with self.lock:
            self.counter.value -= 1
