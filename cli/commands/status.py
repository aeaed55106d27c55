"""`mlkit status`: what runs for each API."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import shown
from ..options import DEFAULT_SPEC, JsonOut, SpecFile

if TYPE_CHECKING:
    from ..cluster.prometheus import Prometheus

Watch = Annotated[
    bool,
    typer.Option("--watch", "-w", help="A live table from the cluster's Prometheus (req/s, p99, 5xx, replicas), refreshed in place until Ctrl-C."),
]
Interval = Annotated[float, typer.Option("--interval", min=0.5, help="Seconds between refreshes of --watch.")]
Count = Annotated[int | None, typer.Option("--count", min=1, help="With --watch: refresh this many times, then exit (for scripts).")]
DEFAULT_INTERVAL = 5.0


def command(
    file: SpecFile = DEFAULT_SPEC, json_out: JsonOut = False, watch: Watch = False, interval: Interval = DEFAULT_INTERVAL, count: Count = None
) -> None:
    """Show each API on the cluster: ready and desired replicas, endpoint, last rollout, last cold start and image.

    The cold start is the newest pod's: when it was scheduled, its init containers done (the model
    fetched), the predictor's image pulled, the container started and the pod ready, in seconds
    after the pod was created, as the cluster recorded them.

    Async APIs (their front in the first table) get a second table: requests queued, held by workers
    (in flight), the oldest one's age (from the cloud's metrics, a minute or more behind), workers
    ready/desired, and requests that failed every attempt (in the dead-letter queue).

    With --watch: each API's requests per second, p99 latency and 5xx answers from Prometheus (read
    through the Kubernetes API server, with the queries of the project's Grafana dashboard) and its
    ready/desired replicas, every --interval seconds; with --json one JSON object per refresh.
    """
    if watch:
        return live(file, json_out, interval, count)
    if count is not None or interval != DEFAULT_INTERVAL:
        raise typer.BadParameter("--interval and --count go with --watch", param_hint="'--interval' / '--count'")
    from ..cluster.client import NotFound
    from ..cluster.coldstart import summary
    from ..cluster.connect import open_project
    from ..cluster.kinds import by_name
    from ..cluster.rollout import rollout_state
    from . import async_status

    spec, cluster = open_project(file)
    rows: list[dict[str, Any]] = []
    try:
        for api in services(spec) + [api for api in spec.apis if api.kind == "async"]:  # an async API's row is its front
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
        queues = async_status.rows(spec, cluster)
    finally:
        cluster.close()
    if json_out:
        print(json.dumps({"type": "mlkit_status", "namespace": spec.k8s_namespace, "apis": rows, "async": queues}))
        return
    header = ["API", "READY", "ENDPOINT", "ROLLOUT", "UPDATED", "LAST COLD START", "IMAGE"]
    table = [[r["api"], f"{r['ready']}/{r['desired']}", r["endpoint"], r["rollout"], r["updated"], summary(r["cold_start"]), r["image"]] for r in rows]
    # Cells come from cluster objects (a Service's hostname, an image, a time): shown escaped, one line each.
    table = [[shown(str(cell), 300) for cell in row] for row in table]
    for line in columns(header, table):
        print(line)
    if queues:
        print()
        for line in columns(*async_status.table(queues)):
            print(line)


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


# The live table's columns, each taken from the rendered dashboard's panels (cli/render/dashboard.py)
# by panel title and legend, so that the table and the dashboard never disagree on a query.
WATCHED = {
    "requests": ("Requests by status", "{{status}}"),  # one series per status: summed here
    "p99": ("Latency p50 / p99", "p99"),
    "errors": ("Errors", "5xx answered"),
}
# An engine API's row plots vLLM's own metrics (dashboard.py): its HTTP answers by status class, and its
# end-to-end latency inside the engine.
WATCHED_ENGINE = WATCHED | {"requests": ("Requests by finish reason and status", "HTTP {{status}}")}


def services(spec: Any) -> list[Any]:
    """The APIs that run as services: batch and task APIs have no Deployment (`mlkit job status` shows their jobs)."""
    return [api for api in spec.apis if api.kind == "realtime"]


def watched_queries(spec, api) -> dict[str, str | None]:
    """The dashboard's PromQL for each watched column of one API; None where its dashboard has no such panel."""
    from ..render.dashboard import panels

    found = {(p.title, q.legend): q.expr for p in panels(spec, api) for q in p.queries}
    watched = WATCHED if api.engine is None else WATCHED_ENGINE
    return {column: found.get(at) for column, at in watched.items()}


def live(file, json_out: bool, interval: float, count: int | None) -> None:
    """Refresh a table (or a JSON line) every `interval` seconds: `count` times, or until Ctrl-C (exit 0)."""
    from ..cluster.connect import open_project
    from ..cluster.prometheus import Prometheus

    spec, cluster = open_project(file)
    prometheus = Prometheus(cluster)
    queries = {api.name: watched_queries(spec, api) for api in services(spec)}
    out = sys.stdout
    tty = out.isatty() and not json_out  # in place on a terminal; one table per refresh for pipes and files
    drawn = 0  # lines the last refresh drew, to move back over
    if tty:
        out.write("\x1b[?25l")  # hide the cursor while redrawing
    start, refreshes = time.monotonic(), 0
    try:
        while True:
            snap = snapshot(spec, cluster, prometheus, queries)
            refreshes += 1
            if json_out:
                out.write(json.dumps(snap) + "\n")
            else:
                lines = [f"{spec.project} at {snap['time']}, every {interval:g} s" + (" (Ctrl-C to stop)" if count is None else ""), *watch_table(snap["apis"])]
                if tty:
                    out.write((f"\x1b[{drawn}F" if drawn else "") + "\x1b[J")  # back to the first line, clear below
                elif refreshes > 1:
                    out.write("\n")
                out.write("\n".join(lines) + "\n")
                drawn = len(lines)
            out.flush()
            if count is not None and refreshes >= count:
                return
            delay = start + refreshes * interval - time.monotonic()  # on a fixed beat, whatever the queries took
            if delay < 0:  # queries slower than the beat: start a new beat rather than refresh in a burst
                start, delay = time.monotonic() - refreshes * interval, 0.0
            time.sleep(delay)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a watch ends
    finally:
        if tty:
            out.write("\x1b[?25h")
            out.flush()
        cluster.close()


def snapshot(spec, cluster, prometheus: Prometheus, queries: dict[str, dict[str, str | None]]) -> dict[str, Any]:
    """One refresh: each API's replicas from its Deployments and its rates from Prometheus (None: no value)."""
    from ..cluster.client import NotFound
    from ..cluster.kinds import by_name

    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")  # when the refresh began
    rows = []
    for api in services(spec):
        ready = desired = 0
        deployed = False
        for name in [api.name] + ([f"{api.name}-canary"] if api.canary else []):  # the metrics cover both tracks
            try:
                d = cluster.get(by_name("Deployment"), spec.k8s_namespace, name)
            except NotFound:
                continue
            deployed = True
            ready += d.get("status", {}).get("readyReplicas") or 0
            desired += d.get("spec", {}).get("replicas") or 0
        requests, p99, errors = (total(prometheus, queries[api.name][column]) for column in WATCHED)
        if errors is None and requests is not None and queries[api.name]["errors"] is not None:
            errors = 0.0  # the API answers and no 5xx series exists: none was ever answered (failed queries stay None)
        rows.append({
            "api": api.name,
            "ready": ready if deployed else None,
            "desired": desired if deployed else None,
            "requests_per_s": requests,
            "p99_s": p99,
            "errors_5xx_per_s": errors,
            "errors_percent": 100 * errors / requests if errors is not None and requests else None,
        })
    return {"type": "mlkit_status_watch", "time": now, "namespace": spec.k8s_namespace, "apis": rows}


def total(prometheus: Prometheus, expr: str | None) -> float | None:
    """The sum of a query's series; None when the query failed or returned none."""
    samples = prometheus.query(expr) if expr is not None else None
    return sum(s.value for s in samples) if samples else None


def watch_table(rows: list[dict[str, Any]]) -> list[str]:
    def cell(value: float | None, text: str) -> str:
        return "-" if value is None else text

    header = ["API", "REPLICAS", "REQ/S", "P99", "5XX/S", "5XX %"]
    table = [
        [
            r["api"],
            "-" if r["ready"] is None else f"{r['ready']}/{r['desired']}",
            cell(r["requests_per_s"], f"{r['requests_per_s'] or 0:.1f}"),
            cell(r["p99_s"], f"{(r['p99_s'] or 0) * 1000:.1f} ms"),
            cell(r["errors_5xx_per_s"], f"{r['errors_5xx_per_s'] or 0:.2f}"),
            cell(r["errors_percent"], f"{r['errors_percent'] or 0:.1f}%"),
        ]
        for r in rows
    ]
    return columns(header, table)


def columns(header: list[str], table: list[list[str]]) -> list[str]:
    """Rows as left-aligned columns two spaces apart."""
    widths = [max(len(str(c)) for c in [h, *[row[i] for row in table]]) for i, h in enumerate(header)]
    return ["  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in [header, *table]]
