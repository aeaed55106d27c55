"""The async APIs' part of `mlkit status`: each one's queue (waiting, held by workers, oldest age, failed)
and its workers (ready/desired from the worker Deployment, the most its ScaledObject allows)."""

from __future__ import annotations

from typing import Any

from .. import clouds
from ..errors import shown


def worker_env(deployment: dict) -> dict[str, str]:
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
    return {e.get("name", ""): str(e.get("value", "")) for e in containers[0].get("env") or [] if "value" in e}


def rows(spec: Any, cluster: Any) -> list[dict[str, Any]]:
    """One row per async API. The queue is the one its workers were deployed with (their MLKIT_QUEUE), so the
    numbers are those of the queue that is really drained, whatever the spec says now."""
    from ..cluster.client import NotFound
    from ..cluster.kinds import by_name
    from ..render.asyncapi import WORKER, async_apis

    cloud = clouds.of(spec)
    out = []
    for api in async_apis(spec):
        name = f"{api.name}-{WORKER}"
        row: dict[str, Any] = {"api": api.name, "workers": None, "max_workers": None, "queue": None, "problem": None}
        try:
            d = cluster.get(by_name("Deployment"), spec.k8s_namespace, name)
        except NotFound:
            row["problem"] = "not deployed: run `mlkit apply`"
            out.append(row)
            continue
        row["workers"] = {"ready": d.get("status", {}).get("readyReplicas") or 0, "desired": d.get("spec", {}).get("replicas") or 0}
        try:
            scaled = cluster.get(by_name("ScaledObject"), spec.k8s_namespace, name)
            row["max_workers"] = scaled.get("spec", {}).get("maxReplicaCount")
        except NotFound:
            pass  # scaled by hand, or KEDA's objects not applied: the Deployment's numbers still hold
        env = worker_env(d)
        if not env.get("MLKIT_QUEUE"):
            row["problem"] = f"Deployment {name} has no MLKIT_QUEUE: re-apply it with `mlkit apply`"
        else:
            depth = cloud.queue_depth(spec, env["MLKIT_QUEUE"], env.get("MLKIT_DEAD_LETTER") or None)
            row["queue"], row["problem"] = depth.as_json(), depth.problem
        out.append(row)
    return out


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    def number(value: Any) -> str:
        return "-" if value is None else str(value)

    header = ["ASYNC API", "QUEUED", "IN FLIGHT", "OLDEST", "WORKERS", "FAILED", "PROBLEM"]
    table = []
    for r in rows:
        q = r["queue"] or {}
        w = r["workers"]
        workers = "-" if w is None else f"{w['ready']}/{w['desired']}" + (f" (max {r['max_workers']})" if r["max_workers"] is not None else "")
        cells = [r["api"], number(q.get("queued")), number(q.get("in_flight")), age(q.get("oldest_s")), workers, number(q.get("dead_letter"))]
        cells.append(r["problem"] or "")
        # The problem comes from a cloud's error message: escaped, one line.
        table.append([shown(str(c), 300) for c in cells])
    return header, table
