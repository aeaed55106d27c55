"""`mlkit plan`: show what `mlkit apply` would change in the cloud."""

from __future__ import annotations

import json

from ..options import DEFAULT_SPEC, JsonOut, SpecFile


def command(file: SpecFile = DEFAULT_SPEC, json_out: JsonOut = False) -> None:
    """Run terraform plan on the cluster stack and summarise the changes. Changes nothing."""
    from ..lock import project_lock
    from ..terraform.stack import open_cluster_stack, planned

    stack = open_cluster_stack(file)
    with project_lock(stack.root, "plan"), planned(stack, json_out) as result:
        pass
    if json_out:
        c = result.changes
        print(json.dumps({"type": "mlkit_plan", "add": c.add, "change": c.change, "remove": c.remove, "changes": result.planned}))
