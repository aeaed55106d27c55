"""`mlkit apply`: the cluster stack, the add-ons stack, then the APIs."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from ..options import DEFAULT_SPEC, AutoApprove, JsonOut, SpecFile, confirm, say


class Step(str, Enum):
    cluster = "cluster"
    addons = "addons"
    apis = "apis"


Only = Annotated[
    Step | None,
    typer.Option("--only", help="Run one step: cluster (Terraform), addons (Terraform: Helm releases) or apis (models, images, manifests)."),
]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds to wait for the APIs' rollouts before showing why they are stuck.")]


def command(
    file: SpecFile = DEFAULT_SPEC,
    only: Only = None,
    auto_approve: AutoApprove = False,
    timeout: Timeout = 600.0,
    json_out: JsonOut = False,
) -> None:
    """Provision and deploy: the cluster stack, the add-ons stack, then the APIs.

    Each Terraform step shows its plan and asks before changing anything; a step with nothing to
    change is skipped. The APIs step uploads local model folders, makes sure each API's image is
    in the registry (building it where Docker runs), writes those values into infra/k8s (a small
    diff to review), applies the manifests with server-side apply, prunes what mlkit.yaml no longer
    has, and waits for the rollouts; a rollout that does not finish shows its pods' events and logs.
    """
    from ..lock import project_lock
    from ..spec.loader import load

    spec = load(file)
    root = file.resolve().parent
    if only is Step.cluster and spec.cluster.existing is not None:
        raise UserError(f"{file}: cluster.existing is set, so there is no cluster stack to apply; use --only addons or --only apis")
    steps = [only] if only else [s for s in Step if s is not Step.cluster or spec.cluster.existing is None]
    summary: dict = {}
    with project_lock(root, "apply"):
        for step in steps:
            say(f"== {step.value} ==")
            if step is Step.apis:
                summary["apis"] = _apis(root, spec, timeout, _interactive(json_out, auto_approve))
            else:
                summary[step.value] = _stack(file, spec, step.value, auto_approve, json_out)
    if json_out:
        print(json.dumps({"type": "mlkit_apply", **summary}))


def _stack(file: Path, spec, which: str, auto_approve: bool, json_out: bool) -> dict:
    from ..terraform.stack import open_stack, planned, run_apply

    stack = open_stack(file, which)
    with planned(stack, json_out) as plan:
        if plan.changes.total == 0:
            return {"changes": 0}
        if not auto_approve and not confirm(f"Apply these changes to the {which} stack of {stack.project}?"):
            raise UserError("apply cancelled; nothing was changed")
        result = run_apply(stack, plan.changes.total, json_out)
    say(f"Applied: {plan.changes}")
    for key in ("cluster_name", "cluster_endpoint", "ecr_repository_url", "artifact_registry_url", "model_bucket_name"):
        if key in result.outputs:
            say(f"  {key}: {result.outputs[key]}")
    if which == "cluster":
        _kubeconfig(spec, result.outputs)
    return {"changes": plan.changes.total, "outputs": result.outputs}


def _kubeconfig(spec, outputs: dict) -> None:
    """A kubeconfig context for kubectl, whose token comes from `mlkit token` (no aws or gcloud CLI)."""
    from ..cluster import kubeconfig
    from ..cluster.connect import token_args

    server = outputs.get("cluster_endpoint", "")
    ca = outputs.get("cluster_certificate_authority_data") or outputs.get("cluster_ca_certificate")
    if not server or not ca:
        return
    if not server.startswith("https://"):
        server = "https://" + server
    name = f"mlkit-{spec.project}"
    if kubeconfig.merge_context(name, server, ca, token_args(spec)):
        say(f"kubeconfig: added context {name} to {kubeconfig.path()} (kubectl --context {name} ...)")


def _interactive(json_out: bool, auto_approve: bool) -> bool:
    """A person at a terminal: stdin and stderr are terminals, and neither --json nor --auto-approve
    (the flags of automation, whose output ends up in CI logs) was given."""
    import sys

    return not json_out and not auto_approve and sys.stdin.isatty() and sys.stderr.isatty()


def _apis(root: Path, spec, timeout: float, show_keys: bool) -> dict:
    from dataclasses import asdict

    from ..deploy import apis

    report = apis.Report()
    facts = apis.prepare(root, spec, say, report)
    report.rendered = apis.rerender(root, spec, facts, say)
    apis.roll_out(root, spec, timeout, say, report, show_keys=show_keys,
                  applied_hook=lambda: apis.record_revisions(root, spec, facts, say, report))
    out = asdict(report)
    out.pop("new_keys")  # the keys themselves never go to stdout; key_files says where they are
    return out
