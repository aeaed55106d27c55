"""`mlkit destroy`: the APIs, the add-ons stack, then the cluster stack."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..errors import ToolError, UserError
from ..options import DEFAULT_SPEC, AutoApprove, JsonOut, SpecFile, say
from .apply import Only, Step


def command(file: SpecFile = DEFAULT_SPEC, only: Only = None, auto_approve: AutoApprove = False, json_out: JsonOut = False) -> None:
    """Remove what mlkit made, in reverse: the APIs' objects on the cluster, the add-ons, the cluster stack.

    Asks you to type the project name first. Each Terraform step shows what it will destroy.
    """
    from ..lock import project_lock
    from ..spec.loader import load

    spec = load(file)
    root = file.resolve().parent
    if only is Step.cluster and spec.cluster.existing is not None:
        raise UserError(f"{file}: cluster.existing is set: mlkit did not make that cluster and will not destroy it")
    steps = [only] if only else [s for s in reversed(Step) if s is not Step.cluster or spec.cluster.existing is None]
    if not auto_approve:
        try:
            typed = typer.prompt(f"This destroys the {', '.join(s.value for s in steps)} of {spec.project}. Type the project name to go on", err=True)
        except typer.Abort:
            typed = ""
        if typed.strip() != spec.project:
            raise UserError("destroy cancelled: the name did not match; nothing was changed")
    summary: dict = {}
    with project_lock(root, "destroy"):
        for step in steps:
            say(f"== {step.value} ==")
            summary[step.value] = _apis(spec) if step is Step.apis else _stack(file, step.value, json_out)
    if json_out:
        print(json.dumps({"type": "mlkit_destroy", **summary}))


def _apis(spec) -> dict:
    from ..cluster import rollout
    from ..cluster.connect import connect

    try:
        cluster = connect(spec)
    except (ToolError, UserError) as exc:
        say(f"APIs: cannot reach the cluster ({exc}); skipping, the cluster's own teardown removes them")
        return {"deleted": 0, "skipped": str(exc)}
    try:
        removed = rollout.remove(cluster, spec, say)
        _wait_for_nodes(cluster, spec)
    finally:
        cluster.close()
    return {"deleted": len(removed)}


def _wait_for_nodes(cluster, spec) -> None:
    """With the NodePools deleted, Karpenter's (or Auto Mode's) nodes must be gone before its controller and roles go."""
    from ..cluster import nodeclaims
    from ..render import automode, nodepools

    if automode.enabled(spec):
        names = {automode.object_name(pool) for pool in spec.cluster.node_pools}
    elif nodepools.enabled(spec):
        names = {pool.name for pool in spec.cluster.node_pools}
    else:
        return
    nodeclaims.wait_gone(cluster, names, say)


def _stack(file: Path, which: str, json_out: bool) -> dict:
    from ..terraform.stack import open_stack, planned, run_apply

    stack = open_stack(file, which)
    with planned(stack, json_out, destroy=True) as plan:
        if plan.changes.total == 0:
            return {"destroyed": 0}
        run_apply(stack, plan.changes.total, json_out)
    say(f"Destroyed {plan.changes.remove} resources of the {which} stack.")
    return {"destroyed": plan.changes.remove}
