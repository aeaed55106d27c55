"""Which queue and store an async API's settings name, opened: the one place that imports a backend.

Apart from backend.py (the interfaces every backend implements), so that the implementations import the
interfaces and nothing imports back: a new backend is one module and one branch here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..settings import Settings
    from .backend import Queue, Store


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
