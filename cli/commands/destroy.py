"""`mlkit destroy`: tear the cluster stack down."""

from __future__ import annotations

import json

import typer

from ..errors import UserError
from ..options import DEFAULT_SPEC, AutoApprove, JsonOut, SpecFile, say


def command(file: SpecFile = DEFAULT_SPEC, auto_approve: AutoApprove = False, json_out: JsonOut = False) -> None:
    """Destroy everything the cluster stack created. Asks you to type the project name first."""
    from ..lock import project_lock
    from ..terraform.stack import open_cluster_stack, planned, run_apply

    stack = open_cluster_stack(file)
    with project_lock(stack.root, "destroy"), planned(stack, json_out, destroy=True) as plan:
        if plan.changes.total == 0:
            return
        if not auto_approve:
            try:
                typed = typer.prompt(f"This destroys {plan.changes.remove} resources. Type the project name ({stack.project}) to go on", err=True)
            except typer.Abort:
                typed = ""
            if typed.strip() != stack.project:
                raise UserError("destroy cancelled: the name did not match; nothing was changed")
        run_apply(stack, plan.changes.total, json_out)
    if json_out:
        print(json.dumps({"type": "mlkit_destroy", "destroyed": plan.changes.remove}))
    else:
        say(f"Destroyed {plan.changes.remove} resources of {stack.project}.")
