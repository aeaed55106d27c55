"""Why a job's pods are not running yet, and a task run's state, read from the Job and its pods (pure: objects in, text out).

A job on a pool at zero waits for the autoscaler to add a node: its pods stay Pending with PodScheduled
False (Unschedulable) and the scheduler's message ("0/3 nodes are available: 3 node(s) didn't match Pod's
node affinity/selector"). A Job in a Kueue LocalQueue waits suspended until Kueue admits it. A pod that
was scheduled may still wait for its image or its model fetch. `mlkit job status` shows the first of these.
"""

from __future__ import annotations

from typing import Any

KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
# Reasons a container waits that are trouble rather than progress, which status names as they are.
_STUCK = ("ImagePullBackOff", "ErrImagePull", "CrashLoopBackOff", "CreateContainerConfigError", "InvalidImageName")


def _clip(text: str, limit: int = 300) -> str:
    # A scheduler message can list every node pool; and it is cluster text, so no control character reaches the terminal.
    flat = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def pending_reason(job: dict[str, Any], pods: list[dict[str, Any]]) -> str | None:
    """Why the job has work not running, or None when nothing waits."""
    if job.get("spec", {}).get("suspend"):
        queue = job.get("metadata", {}).get("labels", {}).get(KUEUE_QUEUE)
        return f"suspended: waiting for Kueue to admit it from LocalQueue {queue}" if queue else "suspended (spec.suspend is true)"
    for pod in sorted(pods, key=lambda p: p.get("metadata", {}).get("name", "")):
        status = pod.get("status", {})
        if status.get("phase") != "Pending":
            continue
        name = pod.get("metadata", {}).get("name", "?")
        for condition in status.get("conditions", []):
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                message = _clip(condition.get("message") or condition.get("reason") or "not scheduled")
                return f"pod {name} cannot be scheduled yet: {message} (a pool at zero waits for the autoscaler to add a node)"
        for container in [*status.get("initContainerStatuses", []), *status.get("containerStatuses", [])]:
            waiting = container.get("state", {}).get("waiting", {})
            if waiting.get("reason") in _STUCK:
                return f"pod {name}: container {container.get('name')} {waiting['reason']}: {_clip(waiting.get('message', ''))}".rstrip(": ")
            if waiting.get("reason"):
                return f"pod {name}: container {container.get('name')} {waiting['reason']}"
        return f"pod {name} is pending"
    return None


def job_state(job: dict[str, Any]) -> str:
    """running, complete, failed or cancelled, as the Job's conditions and deletion say."""
    if job.get("metadata", {}).get("deletionTimestamp"):
        return "cancelled"
    for condition in job.get("status", {}).get("conditions", []):
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            return str(condition["type"]).lower()
    return "running"
