"""The Terraform stacks of a project (cluster, addons): locate one, make sure it matches the spec, plan it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..options import say
from .progress import Progress
from .runner import RunResult, Terraform

ACTION_MARK = {"create": "+", "update": "~", "delete": "-", "replace": "-/+", "read": "<=", "move": "->", "import": "<-"}


@dataclass
class Stack:
    project: str
    root: Path
    workdir: Path
    terraform: Terraform

    @property
    def planfile_rel(self) -> str:
        return f"{PLANS}/{self.workdir.name}.tfplan"

    @property
    def planfile(self) -> Path:
        return self.root / self.planfile_rel


# Where terraform writes its plan files. `.mlkit/` comes from pull requests like the rest of the project:
# a link planted there could make terraform write the plan (which holds every planned value) outside
# the project, so the folders are made with projectfs (refusing links) and a file already in the plan's
# place (a stale plan, or a link) is removed, never followed, before terraform writes a fresh one.
PLANS = ".mlkit/plans"


def open_stack(file: Path, which: str) -> Stack:
    """Load the spec and check that infra/ is rendered and current before terraform sees it."""
    from ..render import facts, merge
    from ..render.infra import ADDONS, CLUSTER, MACHINE_OWNED, render
    from ..spec.loader import load

    spec = load(file)
    if which == "cluster" and spec.cluster.existing is not None:
        raise UserError(f"{file}: cluster.existing is set, so there is no cluster stack to plan or apply")
    root = file.resolve().parent
    rendered = render(spec, facts.load(root))
    workdir = root / (CLUSTER if which == "cluster" else ADDONS)
    if not (workdir / "main.tf").exists():
        raise UserError(f"{workdir} does not exist; run `mlkit render` first and review what it writes")
    stale = merge.plan(root, rendered, MACHINE_OWNED).out_of_date
    if stale:
        listed = ", ".join(o.path for o in stale[:3]) + (" ..." if len(stale) > 3 else "")
        raise UserError(f"infra/ is out of date with {file} ({listed}); run `mlkit render` and review the changes first")
    return Stack(spec.project, root, workdir, Terraform(workdir))


@contextlib.contextmanager
def planned(stack: Stack, json_out: bool, destroy: bool = False) -> Iterator[RunResult]:
    """init and plan, show the plan, and yield it; the plan file is removed however the block ends."""
    from .. import projectfs

    tf = stack.terraform
    projectfs.make_dirs(stack.root, PLANS)  # before terraform runs: a planted link is one line, and nothing is touched
    projectfs.remove(stack.root, stack.planfile_rel)
    tf.check_version()
    say(f"terraform init in {stack.workdir.relative_to(stack.root)} ...")
    tf.init()
    say("terraform plan" + (" -destroy" if destroy else "") + " ...")
    try:
        progress = Progress(json_mode=json_out)
        try:
            result = tf.plan(stack.planfile, progress, destroy=destroy)
        finally:
            progress.close()
        if not json_out:
            for change in result.planned:
                say(f"  {ACTION_MARK.get(change['action'], '?'):>3} {change['address']}")
        say(f"Plan: {result.changes}" if result.changes.total else "No changes: the infrastructure matches the configuration.")
        yield result
    finally:
        projectfs.remove(stack.root, stack.planfile_rel)


def run_apply(stack: Stack, total: int, json_out: bool) -> RunResult:
    """Apply the plan file made by `planned`, with live progress."""
    progress = Progress(total=total, json_mode=json_out)
    try:
        return stack.terraform.apply(stack.planfile, progress)
    finally:
        progress.close()
