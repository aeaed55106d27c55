"""The depth of a Pub/Sub subscription, from Cloud Monitoring: Pub/Sub has no call that counts a
subscription's messages, so its own metrics are the source (pubsub.googleapis.com/subscription/
num_undelivered_messages and oldest_unacked_message_age, and dead_letter_message_count for failures),
sampled once a minute and a minute or more behind. Undelivered counts the messages workers hold too
(Pub/Sub does not tell them apart for pull subscriptions), so `in_flight` stays unknown.

Read over Monitoring's REST API (projects.timeSeries.list) with the caller's Application Default
Credentials; anything that cannot be read is `problem`, one line.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from .queue_depth import METRIC_WINDOW, QueueDepth, first_line, newest_point

MONITORING = "https://monitoring.googleapis.com/v3"
METRIC = "pubsub.googleapis.com/subscription/"
# Failures: dead-lettered messages are forwarded to a topic, which has no depth of its own; the
# subscription's count of forwarded messages over the last day stands in for the dead-letter queue's depth.
DEAD_LETTER_WINDOW = datetime.timedelta(days=1)
# The names go into Monitoring's URL and filter, and come from a Deployment on the cluster: only what GCP
# allows passes (project ids, domain-scoped ones too; Pub/Sub's subscription names), so no quote or slash can.
PROJECT = re.compile(r"[a-z][a-z0-9.:-]{2,62}")
SUBSCRIPTION = re.compile(r"[A-Za-z][-A-Za-z0-9._~%+]{2,254}")


def subscription(location: str) -> tuple[str, str]:
    """`pubsub:projects/P/topics/T/subscriptions/S` (runtime/settings.py's form) -> (P, S)."""
    parts = location.removeprefix("pubsub:").split("/")
    if (len(parts) != 6 or parts[0] != "projects" or parts[4] != "subscriptions"
            or not PROJECT.fullmatch(parts[1]) or not SUBSCRIPTION.fullmatch(parts[5])):
        raise ValueError(f"{location[:200]!r} is not pubsub:projects/PROJECT/topics/TOPIC/subscriptions/SUBSCRIPTION")
    return parts[1], parts[5]


def depth(queue: str, dead_letter: str | None, monitoring: str = MONITORING) -> QueueDepth:
    try:
        project, sub = subscription(queue)
    except ValueError as exc:
        return QueueDepth(problem=f"the workers' MLKIT_QUEUE: {exc}")
    try:
        import google.auth
        from google.auth.exceptions import GoogleAuthError
        from google.auth.transport.requests import AuthorizedSession
    except ImportError:
        return QueueDepth(problem="unavailable: reading Cloud Monitoring needs the Google libraries (pip install 'mlkit[gcp]')")
    import requests

    try:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/monitoring.read"])
    except GoogleAuthError as exc:
        return QueueDepth(problem=f"unavailable: no Google credentials to read Cloud Monitoring ({first_line(exc, 120)})")
    session = AuthorizedSession(credentials)
    out = QueueDepth()
    try:
        queued = latest(session, monitoring, project, sub, "num_undelivered_messages", METRIC_WINDOW)
        out.queued = None if queued is None else int(queued)
        out.oldest_s = latest(session, monitoring, project, sub, "oldest_unacked_message_age", METRIC_WINDOW)
        if dead_letter:
            out.dead_letter = int(total(session, monitoring, project, sub, "dead_letter_message_count", DEAD_LETTER_WINDOW))
    except (GoogleAuthError, requests.RequestException, ValueError, KeyError) as exc:
        out.problem = f"Cloud Monitoring, subscription {sub}: {first_line(exc)}"
    return out


def series(session: Any, monitoring: str, project: str, sub: str, metric: str, window: datetime.timedelta) -> list[tuple[datetime.datetime, float]]:
    """The points of one metric of the subscription within `window` (Monitoring's ListTimeSeriesResponse, in JSON)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    answer = session.get(f"{monitoring}/projects/{project}/timeSeries", timeout=10, params={
        "filter": f'metric.type="{METRIC}{metric}" AND resource.type="pubsub_subscription" AND resource.label.subscription_id="{sub}"',
        "interval.startTime": (now - window).isoformat().replace("+00:00", "Z"),
        "interval.endTime": now.isoformat().replace("+00:00", "Z"),
    })
    if answer.status_code != 200:
        raise ValueError(f"{metric}: HTTP {answer.status_code}: {answer.text[:150]}")
    points = []
    for s in answer.json().get("timeSeries", []):
        for p in s.get("points", []):
            value = p["value"]
            number = float(value["int64Value"]) if "int64Value" in value else float(value.get("doubleValue", 0))
            points.append((datetime.datetime.strptime(p["interval"]["endTime"][:19], "%Y-%m-%dT%H:%M:%S"), number))  # fractions vary in length
    return points


def latest(session: Any, monitoring: str, project: str, sub: str, metric: str, window: datetime.timedelta) -> float | None:
    return newest_point(series(session, monitoring, project, sub, metric, window))


def total(session: Any, monitoring: str, project: str, sub: str, metric: str, window: datetime.timedelta) -> float:
    return sum(v for _, v in series(session, monitoring, project, sub, metric, window))
