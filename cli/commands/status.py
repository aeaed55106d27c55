"""`mlkit status`: what runs for each API."""

from __future__ import annotations

import json
from typing import Any

from ..options import DEFAULT_SPEC, JsonOut, SpecFile


def command(file: SpecFile = DEFAULT_SPEC, json_out: JsonOut = False) -> None:
    """Show each API on the cluster: ready and desired replicas, endpoint, last rollout, last cold start and image.

    The cold start is the newest pod's: when it was scheduled, its init containers done (the model
    fetched), the predictor's image pulled, the container started and the pod ready, in seconds
    after the pod was created, as the cluster recorded them.
    """
    from ..cluster.client import NotFound
    from ..cluster.coldstart import summary
    from ..cluster.connect import open_project
    from ..cluster.kinds import by_name
    from ..cluster.rollout import rollout_state

    spec, cluster = open_project(file)
    rows: list[dict[str, Any]] = []
    try:
        for api in spec.apis:
            for name in [api.name] + ([f"{api.name}-canary"] if api.canary else []):
                try:
                    d = cluster.get(by_name("Deployment"), spec.k8s_namespace, name)
                except NotFound:
                    rows.append({
                        "api": name, "ready": 0, "desired": 0, "endpoint": "", "image": "",
                        "rollout": "not deployed: run `mlkit apply`", "updated": "", "cold_start": None,
                    })
                    continue
                _, line = rollout_state(d)
                progressing: dict[str, Any] = next((c for c in d.get("status", {}).get("conditions", []) if c.get("type") == "Progressing"), {})
                rows.append({
                    "api": name,
                    "ready": d.get("status", {}).get("readyReplicas", 0),
                    "desired": d.get("spec", {}).get("replicas", 0),
                    "endpoint": endpoint(cluster, spec, api, name),
                    "image": d["spec"]["template"]["spec"]["containers"][0]["image"],
                    "rollout": line,
                    "updated": progressing.get("lastUpdateTime", ""),
                    "cold_start": last_cold_start(cluster, spec.k8s_namespace, d),
                })
    finally:
        cluster.close()
    if json_out:
        print(json.dumps({"type": "mlkit_status", "namespace": spec.k8s_namespace, "apis": rows}))
        return
    columns = ("api", "ready", "endpoint", "rollout", "updated", "last cold start", "image")
    table = [[r["api"], f"{r['ready']}/{r['desired']}", r["endpoint"], r["rollout"], r["updated"], summary(r["cold_start"]), r["image"]] for r in rows]
    widths = [max(len(str(c)) for c in [h.upper(), *[row[i] for row in table]]) for i, h in enumerate(columns)]
    for row in [[h.upper() for h in columns], *table]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def last_cold_start(cluster, namespace: str, deployment: dict) -> dict | None:
    """The phases of the newest pod of a Deployment, or None when it has no pods."""
    from ..cluster.coldstart import cold_start, newest
    from ..cluster.kinds import by_name
    from ..errors import ToolError

    selector = deployment.get("spec", {}).get("selector", {}).get("matchLabels") or {}
    pod = newest(cluster.list(by_name("Pod"), namespace, selector)) if selector else None
    if pod is None:
        return None
    try:
        events = cluster.events(namespace, pod["metadata"]["name"])
    except ToolError:
        events = []  # no right to read events: the phases the pod itself records still show
    return cold_start(pod, events)


def endpoint(cluster, spec, api, name: str) -> str:
    from ..cluster.client import NotFound
    from ..cluster.kinds import by_name

    try:
        if api.canary:
            gateway = cluster.get(by_name("Gateway"), spec.k8s_namespace, "mlkit")
            addresses = gateway.get("status", {}).get("addresses", [])
            return f"http://{addresses[0]['value']}/{api.name}/predict" if addresses else "gateway address pending"
        service = cluster.get(by_name("Service"), spec.k8s_namespace, name)
    except NotFound:
        return ""
    if service["spec"].get("type") != "LoadBalancer":
        return f"in-cluster: http://{name}.{spec.k8s_namespace}.svc/predict"
    ingress = service.get("status", {}).get("loadBalancer", {}).get("ingress", [])
    if not ingress:
        return "load balancer pending"
    return f"http://{ingress[0].get('hostname') or ingress[0].get('ip')}/predict"
