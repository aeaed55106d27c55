"""Pub/Sub resource paths, checked whole when the settings load (no SDK needed for that)."""

from __future__ import annotations

import re

# Pub/Sub's rules: a project id, then topic and subscription ids of 3 to 255 characters starting with a letter.
_ID = r"[A-Za-z][\w.~+%-]{2,254}"
PATH = re.compile(rf"projects/([a-z][a-z0-9-]{{4,28}}[a-z0-9])/topics/({_ID})/subscriptions/({_ID})")
TOPIC = re.compile(rf"projects/[a-z][a-z0-9-]{{4,28}}[a-z0-9]/topics/{_ID}")


def parse(path: str) -> tuple[str, str]:
    """`projects/P/topics/T/subscriptions/S` -> (topic path, subscription path); ValueError naming the form otherwise."""
    found = PATH.fullmatch(path)
    if found is None:
        raise ValueError(f"{path[:200]!r} is not projects/PROJECT/topics/TOPIC/subscriptions/SUBSCRIPTION")
    project, topic, subscription = found.groups()
    return f"projects/{project}/topics/{topic}", f"projects/{project}/subscriptions/{subscription}"


def check(path: str, dead_letter_topic: str | None) -> None:
    parse(path)
    if dead_letter_topic is not None and not TOPIC.fullmatch(dead_letter_topic):
        raise ValueError(f"dead-letter {dead_letter_topic[:200]!r} is not projects/PROJECT/topics/TOPIC")
