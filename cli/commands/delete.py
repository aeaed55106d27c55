"""`mlkit delete`: take one API off the cluster."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..errors import UserError
from ..options import DEFAULT_SPEC, ApiName, JsonOut, SpecFile, confirm, say


def command(
    api: ApiName,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    file: SpecFile = DEFAULT_SPEC,
    json_out: JsonOut = False,
) -> None:
    """Delete every object of API from the cluster (Deployment, Service, autoscaler, keys, ...).

    The API stays in mlkit.yaml, so the next `mlkit apply` brings it back: remove it there too to
    retire it (then `mlkit apply` alone would also prune it).
    """
    from ..cluster import rollout
    from ..cluster.connect import api_named, open_project

    spec, cluster = open_project(file)
    try:
        api_named(spec, api)
        if not yes and not confirm(f"Delete API {api} from namespace {spec.k8s_namespace}?"):
            raise UserError("delete cancelled; nothing was changed")
        removed = rollout.remove(cluster, spec, say, api=api)
    finally:
        cluster.close()
    say(f"deleted {len(removed)} objects of {api}; it is still in mlkit.yaml, so `mlkit apply` would bring it back")
    if json_out:
        print(json.dumps({"type": "mlkit_delete", "api": api, "deleted": [f"{k} {n}" for k, n in removed]}))
