"""`mlkit plan`: show what `mlkit apply` would change in the cloud."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..options import DEFAULT_SPEC, JsonOut, SpecFile


def command(
    file: SpecFile = DEFAULT_SPEC,
    stack: Annotated[str, typer.Option("--stack", help="Which Terraform stack: cluster or addons.")] = "cluster",
    json_out: JsonOut = False,
) -> None:
    """Run terraform plan on the cluster stack (or --stack addons) and summarise the changes. Changes nothing."""
    from ..errors import UserError
    from ..lock import project_lock
    from ..terraform.stack import open_stack, planned

    if stack not in ("cluster", "addons"):
        raise UserError(f"--stack {stack}: valid: cluster, addons")
    opened = open_stack(file, stack)
    with project_lock(opened.root, "plan"), planned(opened, json_out) as result:
        pass
    if json_out:
        c = result.changes
        print(json.dumps({"type": "mlkit_plan", "add": c.add, "change": c.change, "remove": c.remove, "changes": result.planned}))
