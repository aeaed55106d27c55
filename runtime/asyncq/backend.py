"""The two things an async API needs from a cloud: a queue of requests and a store of results by id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Message:
    body: bytes
    handle: Any  # what the queue needs to delete, extend or release it (receipt handle, ack id, local token)
    attempt: int  # 1 on the first delivery


class Queue(Protocol):
    """Every method may raise errors.Unreachable when the queue does not answer."""

    # Whether a call waits on the network. The embedded queue's calls are a few microseconds in memory
    # (receive's wait aside): the worker makes them in the event loop, not through a thread hop.
    blocking: bool
    # Whether every worker that reads this queue runs the sending front's own code: the embedded queue
    # (front and worker in one process). A cloud queue's workers roll out beside the fronts, so a message
    # must stay readable by the release before (runtime/asyncq/records.py's envelope).
    one_release: bool

    def send(self, body: bytes) -> None:
        """Return only once the queue has stored the message durably."""

    def receive(self, most: int, wait_s: float) -> list[Message]:
        """Up to `most` messages, each hidden from other workers for the visibility timeout; waits up to wait_s for the first."""

    def delete(self, messages: list[Message]) -> None: ...

    def extend(self, messages: list[Message], seconds: float) -> None:
        """Keep the messages hidden for `seconds` more: a long prediction is still running."""

    def release(self, messages: list[Message]) -> None:
        """Make the messages visible again now, for another attempt."""

    def dead_letter(self, message: Message) -> None:
        """The message failed its last attempt: to the dead-letter queue, and off this one."""


class Store(Protocol):
    # How many puts are worth running side by side: an object store's put is a round trip (many), a
    # folder's is a little CPU (one: more threads would add only the hops to them).
    parallel_puts: int

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None:
        """None when no object has that key."""
