"""`mlkit logs`: the predictor logs of an API's pods."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from .. import labels
from ..errors import UserError
from ..options import DEFAULT_SPEC, ApiName


def command(
    api: ApiName,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until interrupted.")] = False,
    tail: Annotated[int, typer.Option("--tail", help="Lines to show from the end of each pod's log.")] = 100,
    # Not SpecFile: its -f is --follow here, as in `kubectl logs -f`.
    file: Annotated[Path, typer.Option("--file", help="Spec file; the project is the folder it is in.")] = DEFAULT_SPEC,
) -> None:
    """Print the logs of every pod of API (one JSON access line per request, and the server's messages), each line prefixed by its pod."""
    from ..cluster.connect import api_named, open_project
    from ..cluster.kinds import by_name

    spec, cluster = open_project(file)
    try:
        api_named(spec, api)
        pods = sorted(p["metadata"]["name"] for p in cluster.list(by_name("Pod"), spec.k8s_namespace, {labels.API: api}))
        if not pods:
            raise UserError(f"API {api} has no pods in namespace {spec.k8s_namespace}; `mlkit status` shows why")
        if not follow:
            for pod in pods:
                for line in cluster.pod_logs(spec.k8s_namespace, pod, tail=tail).splitlines():
                    print(f"[{pod}] {line}")
            return
        lock = threading.Lock()

        def follow_one(pod: str) -> None:
            for line in cluster.follow_logs(spec.k8s_namespace, pod, tail=tail):
                with lock:
                    print(f"[{pod}] {line}", flush=True)

        threads = [threading.Thread(target=follow_one, args=(pod,), daemon=True) for pod in pods]
        for t in threads:
            t.start()
        try:
            for t in threads:
                t.join()
        except KeyboardInterrupt:
            pass
    finally:
        cluster.close()
