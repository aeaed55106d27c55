"""`mlkit apply`: provision the cluster stack."""

from __future__ import annotations

import json

import typer

from ..errors import UserError
from ..options import DEFAULT_SPEC, AutoApprove, JsonOut, SpecFile, say


def command(file: SpecFile = DEFAULT_SPEC, auto_approve: AutoApprove = False, json_out: JsonOut = False) -> None:
    """Provision the cluster stack: network, EKS, node pools, registry and model bucket.

    Shows the plan and asks before changing anything; progress is shown live.
    """
    from ..lock import project_lock
    from ..terraform.stack import open_cluster_stack, planned, run_apply

    stack = open_cluster_stack(file)
    with project_lock(stack.root, "apply"), planned(stack, json_out) as plan:
        if plan.changes.total == 0:
            return
        if not auto_approve and not confirm(f"Apply these changes to {stack.project}?"):
            raise UserError("apply cancelled; nothing was changed")
        result = run_apply(stack, plan.changes.total, json_out)
    if json_out:
        print(json.dumps({"type": "mlkit_apply", "outputs": result.outputs}))
    else:
        say(f"Applied: {plan.changes}")
        for key in ("cluster_name", "cluster_endpoint", "ecr_repository_url", "model_bucket_name"):
            if key in result.outputs:
                say(f"  {key}: {result.outputs[key]}")


def confirm(question: str) -> bool:
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:  # end of input: nobody answered
        return False
