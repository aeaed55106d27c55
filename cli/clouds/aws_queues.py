"""The depth of an SQS queue: GetQueueAttributes for what is waiting and what workers hold, the dead-letter
queue's count for failures, and CloudWatch for the oldest message's age.

SQS has no attribute for the oldest message's age; peeking at messages to find it would count as a
receive (and move requests towards the dead-letter queue), so the age is SQS's own CloudWatch metric
ApproximateAgeOfOldestMessage (namespace AWS/SQS, dimension QueueName), published once a minute for
active queues: it lags the queue by a minute or more.
"""

from __future__ import annotations

import datetime

from .queue_depth import METRIC_WINDOW, QueueDepth, first_line, newest_point

ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]


def queue_name(location: str) -> str:
    """`sqs:https://sqs.REGION.amazonaws.com/ACCOUNT/NAME` (runtime/settings.py's form) -> NAME."""
    return location.removeprefix("sqs:").rstrip("/").rsplit("/", 1)[-1]


def depth(region: str, queue: str, dead_letter: str | None) -> QueueDepth:
    """The depth of the queue at `queue` (and its dead-letter queue), each failure as `problem`."""
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return QueueDepth(problem="unavailable: reading SQS needs boto3 (pip install 'mlkit[aws]')")
    # One quick try each: status is a look, not a job; a hung endpoint must not hold the table.
    config = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 1, "mode": "standard"})
    name = queue_name(queue)
    out = QueueDepth()
    problems = []
    try:
        sqs = boto3.client("sqs", region_name=region, config=config)
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=ATTRIBUTES)["Attributes"]
        out.queued, out.in_flight = (int(attrs[a]) for a in ATTRIBUTES)
        if dead_letter:
            dead_url = sqs.get_queue_url(QueueName=queue_name(dead_letter))["QueueUrl"]
            out.dead_letter = int(sqs.get_queue_attributes(QueueUrl=dead_url, AttributeNames=ATTRIBUTES[:1])["Attributes"][ATTRIBUTES[0]])
    except (ClientError, BotoCoreError) as exc:
        problems.append(f"SQS queue {name}: {first_line(exc)}")
    if not problems:  # the queue answered: its age is worth asking for
        try:
            out.oldest_s = oldest_age(boto3.client("cloudwatch", region_name=region, config=config), name)
        except (ClientError, BotoCoreError) as exc:
            problems.append(f"CloudWatch ApproximateAgeOfOldestMessage of {name}: {first_line(exc)}")
    out.problem = "; ".join(problems) or None
    return out


def oldest_age(cloudwatch, name: str) -> float | None:
    """The newest one-minute maximum of ApproximateAgeOfOldestMessage within METRIC_WINDOW; None without one."""
    now = datetime.datetime.now(datetime.timezone.utc)
    got = cloudwatch.get_metric_statistics(
        Namespace="AWS/SQS", MetricName="ApproximateAgeOfOldestMessage", Dimensions=[{"Name": "QueueName", "Value": name}],
        StartTime=now - METRIC_WINDOW, EndTime=now, Period=60, Statistics=["Maximum"],
    )
    return newest_point([(p["Timestamp"], float(p["Maximum"])) for p in got.get("Datapoints", [])])
