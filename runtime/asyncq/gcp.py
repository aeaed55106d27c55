"""Pub/Sub as the queue and Cloud Storage as the result store (google-cloud-pubsub and -storage, imported only here).

The front publishes to a topic; workers pull from a subscription with a dead-letter policy (its
`delivery_attempt` is the attempt). Extending and releasing are the ack deadline (600 s at most);
a request that failed its last attempt is published to the dead-letter topic and acknowledged, so
that it leaves the subscription whatever the policy's own count. Credentials are the pod's
(Workload Identity); PUBSUB_EMULATOR_HOST and STORAGE_EMULATOR_HOST point both at emulators.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import TimeoutError as FutureTimeout  # not the builtin before Python 3.11
from contextlib import contextmanager

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1, storage

from ..errors import Unreachable
from .backend import Message
from .pubsub_paths import parse

MAX_ACK_S = 600  # Pub/Sub's longest ack deadline
PUBLISH_TIMEOUT_S = 10


@contextmanager
def _reaching(what: str) -> Iterator[None]:
    try:
        yield
    except (gexc.GoogleAPIError, FutureTimeout, TimeoutError) as exc:
        raise Unreachable(f"{what}: {' '.join(str(exc).split())[:200]}") from exc


class PubSubQueue:
    blocking = True  # each call is a round trip
    one_release = False  # workers of the release before read it during a rollout

    def __init__(self, path: str, dead_letter_topic: str | None, visibility_s: float):
        self.topic, self.subscription = parse(path)
        self.dead_letter_topic = dead_letter_topic
        self.visibility_s = min(int(visibility_s), MAX_ACK_S)
        # A publish is sent at once (no batching delay): the front answers 202 only after it.
        self.publisher = pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_messages=1))
        self.subscriber = pubsub_v1.SubscriberClient()

    def send(self, body: bytes) -> None:
        with _reaching("Pub/Sub publish"):
            self.publisher.publish(self.topic, body).result(timeout=PUBLISH_TIMEOUT_S)

    def receive(self, most: int, wait_s: float) -> list[Message]:
        deadline = time.monotonic() + wait_s
        while True:
            with _reaching("Pub/Sub pull"):
                answer = self.subscriber.pull(subscription=self.subscription, max_messages=most, timeout=max(wait_s, 1) + 10)
            got = [Message(m.message.data, m.ack_id, max(1, m.delivery_attempt)) for m in answer.received_messages]
            if got:
                # Pull hands out the subscription's deadline; this attempt's is the API's own.
                if self.visibility_s:
                    self.extend(got, self.visibility_s)
                return got
            if time.monotonic() >= deadline:
                return []
            time.sleep(0.1)

    def delete(self, messages: list[Message]) -> None:
        with _reaching("Pub/Sub acknowledge"):
            self.subscriber.acknowledge(subscription=self.subscription, ack_ids=[m.handle for m in messages])

    def extend(self, messages: list[Message], seconds: float) -> None:
        with _reaching("Pub/Sub modify ack deadline"):
            self.subscriber.modify_ack_deadline(
                subscription=self.subscription, ack_ids=[m.handle for m in messages], ack_deadline_seconds=min(int(seconds), MAX_ACK_S)
            )

    def release(self, messages: list[Message]) -> None:
        with _reaching("Pub/Sub modify ack deadline"):
            self.subscriber.modify_ack_deadline(subscription=self.subscription, ack_ids=[m.handle for m in messages], ack_deadline_seconds=0)

    def dead_letter(self, message: Message) -> None:
        if self.dead_letter_topic:
            with _reaching("Pub/Sub publish to the dead-letter topic"):
                self.publisher.publish(self.dead_letter_topic, message.body).result(timeout=PUBLISH_TIMEOUT_S)
        self.delete([message])


class GcsStore:
    parallel_puts = 16  # a batch's records, written side by side: each put is a round trip

    def __init__(self, url: str):
        bucket, _, prefix = url[len("gs://"):].partition("/")
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.bucket = storage.Client().bucket(bucket)

    def put(self, key: str, data: bytes) -> None:
        with _reaching("Cloud Storage upload"):
            self.bucket.blob(self.prefix + key).upload_from_string(data, content_type="application/json", timeout=30)

    def get(self, key: str) -> bytes | None:
        try:
            with _reaching("Cloud Storage download"):
                data: bytes = self.bucket.blob(self.prefix + key).download_as_bytes(timeout=30)
                return data
        except Unreachable as exc:
            if isinstance(exc.__cause__, gexc.NotFound):
                return None
            raise
