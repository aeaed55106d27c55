"""The two things an async API needs from a cloud: a queue of requests and a store of results by id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..settings import Settings


@dataclass
class Message:
    body: bytes
    handle: Any  # what the queue needs to delete, extend or release it (receipt handle, ack id, local token)
    attempt: int  # 1 on the first delivery


class Queue(Protocol):
    """Every method may raise errors.Unreachable when the queue does not answer."""

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
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None:
        """None when no object has that key."""


def open_backend(settings: Settings, visibility_s: float) -> tuple[Queue, Store]:
    """The queue and store the settings name; only the cloud SDK they need is imported."""
    queue: Queue
    store: Store
    if settings.queue == "local":
        from .local import LocalQueue

        # Its dead letters go beside the results, where `mlkit serve` users can read them.
        dead = settings.results[len("file:"):] + "/dead-letter" if settings.results.startswith("file:") else None
        queue = LocalQueue(visibility_s, dead)
    elif settings.queue.startswith("sqs:"):
        from .aws import SqsQueue

        queue = SqsQueue(settings.queue[4:], settings.dead_letter[4:] if settings.dead_letter else None, visibility_s)
    else:
        from .gcp import PubSubQueue

        dead_topic = settings.dead_letter[len("pubsub:"):] if settings.dead_letter else None
        queue = PubSubQueue(settings.queue[len("pubsub:"):], dead_topic, visibility_s)
    if settings.results.startswith("file:"):
        from .local import FileStore

        store = FileStore(settings.results[len("file:"):])
    elif settings.results.startswith("s3://"):
        from .aws import S3Store

        store = S3Store(settings.results)
    else:
        from .gcp import GcsStore

        store = GcsStore(settings.results)
    return queue, store
