"""SQS as the queue and S3 as the result store (boto3, imported only here).

boto3 takes its endpoint, region and credentials from the usual places (IRSA in the pod,
AWS_ENDPOINT_URL for moto in tests). Every failure to reach either is errors.Unreachable.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ..errors import Unreachable
from .backend import Message

log = logging.getLogger("mlkit_runtime")
SQS_BATCH = 10  # SQS's most messages per receive and per batch call
T = TypeVar("T")


@contextmanager
def _reaching(what: str) -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise Unreachable(f"{what}: {' '.join(str(exc).split())[:200]}") from exc


def _client(service: str, read_timeout: float) -> Any:
    # Short timeouts and few retries: the front answers 503 rather than hold a client for a minute.
    config = Config(connect_timeout=3, read_timeout=read_timeout, retries={"max_attempts": 2, "mode": "standard"})
    return boto3.session.Session().client(service, config=config)


def _chunks(items: list[T], size: int = SQS_BATCH) -> Iterator[list[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class SqsQueue:
    blocking = True  # each call is a round trip
    one_release = False  # workers of the release before read it during a rollout

    def __init__(self, url: str, dead_letter_url: str | None, visibility_s: float):
        self.url = url
        self.dead_letter_url = dead_letter_url
        self.visibility_s = int(visibility_s)
        self.sqs = _client("sqs", read_timeout=30)

    def send(self, body: bytes) -> None:
        # Base64: an SQS body is XML text, which some valid JSON (U+FFFE, say) is not.
        with _reaching("SQS send"):
            self.sqs.send_message(QueueUrl=self.url, MessageBody=base64.b64encode(body).decode())

    def receive(self, most: int, wait_s: float) -> list[Message]:
        got: list[Message] = []
        wait = int(wait_s)
        while len(got) < most:
            with _reaching("SQS receive"):
                answer = self.sqs.receive_message(
                    QueueUrl=self.url,
                    MaxNumberOfMessages=min(SQS_BATCH, most - len(got)),
                    WaitTimeSeconds=wait,
                    VisibilityTimeout=self.visibility_s,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                )
            batch = answer.get("Messages", [])
            for m in batch:
                attempt = int(m.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
                got.append(Message(base64.b64decode(m["Body"]), m["ReceiptHandle"], attempt))
            if not batch:
                break
            wait = 0  # fill the batch with what is there now, without waiting again
        return got

    def _batch(self, call: Callable[..., Any], messages: list[Message], what: str, **fields: Any) -> None:
        for chunk in _chunks(messages):
            entries = [{"Id": str(i), "ReceiptHandle": m.handle, **fields} for i, m in enumerate(chunk)]
            with _reaching(what):
                answer = call(QueueUrl=self.url, Entries=entries)
            for failed in answer.get("Failed", []):  # the message comes back after its timeout: at least once still holds
                log.warning("%s of one message failed: %s", what, failed.get("Message", failed.get("Code")))

    def delete(self, messages: list[Message]) -> None:
        self._batch(self.sqs.delete_message_batch, messages, "SQS delete")

    def extend(self, messages: list[Message], seconds: float) -> None:
        self._batch(self.sqs.change_message_visibility_batch, messages, "SQS change visibility", VisibilityTimeout=int(seconds))

    def release(self, messages: list[Message]) -> None:
        self._batch(self.sqs.change_message_visibility_batch, messages, "SQS change visibility", VisibilityTimeout=0)

    def dead_letter(self, message: Message) -> None:
        if self.dead_letter_url:
            with _reaching("SQS send to the dead-letter queue"):
                self.sqs.send_message(QueueUrl=self.dead_letter_url, MessageBody=base64.b64encode(message.body).decode())
        self.delete([message])


class S3Store:
    parallel_puts = 16  # a batch's records, written side by side: each put is a round trip

    def __init__(self, url: str):
        bucket, _, prefix = url[len("s3://"):].partition("/")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.s3 = _client("s3", read_timeout=30)

    def put(self, key: str, data: bytes) -> None:
        with _reaching("S3 put"):
            self.s3.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data, ContentType="application/json")

    def get(self, key: str) -> bytes | None:
        try:
            with _reaching("S3 get"):
                answer = self.s3.get_object(Bucket=self.bucket, Key=self.prefix + key)
                body: bytes = answer["Body"].read()
                return body
        except Unreachable as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
