"""The last cold start of an API, read from what the cluster keeps of its newest pod: the times the
scheduler, the kubelet and the API server wrote (pod conditions, container states, the kubelet's
Pulled event), each as seconds after the pod was created.

What a kubelet writes, and in which order: PodScheduled, then the init containers (fetch-model, with
its image pulled first), Initialized, then the predictor's image pulled (a `Pulled` event on
`spec.containers{predictor}`), the container started (`state.running.startedAt`), and Ready when
its readiness probe passes. Events expire (an hour by default), so where the Pulled event is gone,
only the start time shows.
"""

from __future__ import annotations

from datetime import datetime

CONTAINER = "predictor"
# (key, what it is): the order a pod goes through them; `mlkit status` shows them in this order.
PHASES = (
    ("scheduled_s", "scheduled"),
    ("initialized_s", "init done"),
    ("image_pulled_s", "image pulled"),
    ("started_s", "started"),
    ("ready_s", "ready"),
)


def newest(pods: list[dict]) -> dict | None:
    """The most recently created pod: the last cold start."""
    dated = [(when, pod) for pod in pods if (when := _time(pod.get("metadata", {}).get("creationTimestamp"))) is not None]
    return max(dated, key=lambda item: item[0])[1] if dated else None


def cold_start(pod: dict, events: list[dict]) -> dict:
    """The phases of one pod's start as seconds after its creation (None where the cluster has no time for it)."""
    meta, status = pod.get("metadata", {}), pod.get("status") or {}
    created = _time(meta.get("creationTimestamp"))
    conditions = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}

    def condition(kind: str) -> datetime | None:
        found = conditions.get(kind) or {}
        return _time(found.get("lastTransitionTime")) if found.get("status") == "True" else None

    container = next((c for c in status.get("containerStatuses") or [] if isinstance(c, dict) and c.get("name") == CONTAINER), {})
    running = (container.get("state") or {}).get("running") or {}
    times = {
        "scheduled_s": condition("PodScheduled"),
        "initialized_s": condition("Initialized"),
        "image_pulled_s": _pulled(events),
        "started_s": _time(running.get("startedAt")),
        "ready_s": condition("Ready"),
    }
    return {
        "pod": meta.get("name", ""),
        "created": meta.get("creationTimestamp", ""),
        **{key: _after(created, when) for key, when in times.items()},
    }


def summary(start: dict | None) -> str:
    """One table cell: `ready in 72s (scheduled 1s, init done 41s, image pulled 57s, started 58s)`."""
    if not start:
        return ""
    steps = ", ".join(f"{label} {_seconds(start[key])}" for key, label in PHASES[:-1] if start[key] is not None)
    head = f"ready in {_seconds(start['ready_s'])}" if start["ready_s"] is not None else "not ready yet"
    return f"{head} ({steps})" if steps else head


def _pulled(events: list[dict]) -> datetime | None:
    """When the kubelet last reported the predictor's image pulled (or already present on the node)."""
    times = [
        _time(e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp"))
        for e in events
        if isinstance(e, dict) and e.get("reason") == "Pulled" and (e.get("involvedObject") or {}).get("fieldPath") == f"spec.containers{{{CONTAINER}}}"
    ]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def _after(created: datetime | None, when: datetime | None) -> float | None:
    if created is None or when is None:
        return None
    return round(max(0.0, (when - created).total_seconds()), 3)  # kubelet and API server clocks may differ by a little


def _seconds(value: float) -> str:
    return f"{value:.0f}s" if value >= 10 else f"{value:.1f}s"


def _time(value) -> datetime | None:
    """An RFC 3339 time as Kubernetes writes it (`2026-01-02T03:04:05Z`, MicroTime with fractions); None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
