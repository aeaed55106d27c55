"""How full an async API's queue is, as `mlkit status` shows it: read from the cloud's own queue service
(SQS and CloudWatch on AWS, Cloud Monitoring on GCP) through the queue the workers were deployed with.

Every reader answers a QueueDepth; what it could not read is None with one line in `problem`, so an
unreachable queue is a cell in the row, never a traceback.
"""

from __future__ import annotations

import datetime
from dataclasses import asdict, dataclass
from typing import Any

# How far back the oldest-age metric is looked for: both clouds publish it once a minute, with a few minutes'
# delay; a queue idle for longer has no recent point, and its age shows as unknown rather than as a stale one.
METRIC_WINDOW = datetime.timedelta(minutes=15)


@dataclass
class QueueDepth:
    queued: int | None = None  # messages waiting to be received (SQS ApproximateNumberOfMessages)
    in_flight: int | None = None  # received by a worker, not yet deleted (...NotVisible); Pub/Sub counts them in queued
    oldest_s: float | None = None  # age of the oldest message, from the cloud's metric (a minute or more behind)
    dead_letter: int | None = None  # messages that failed every attempt (in the dead-letter queue)
    problem: str | None = None  # what could not be read, one line

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def newest_point(points: list[tuple[datetime.datetime, float]]) -> float | None:
    """The value of the newest (time, value) point; None for none."""
    return max(points)[1] if points else None


def first_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
