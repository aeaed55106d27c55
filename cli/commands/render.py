"""`mlkit render`: write infra/ from mlkit.yaml, merging with the team's edits."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..errors import UserError
from ..options import DEFAULT_SPEC, JsonOut, SpecFile, say

SYMBOLS = {
    "created": "+",
    "updated": "~",
    "merged": "M",
    "conflict": "C",
    "unresolved": "C",
    "removed": "-",
    "kept-edits": "=",
    "kept-deleted": "x",
    "kept-obsolete": "!",
}


def command(
    file: SpecFile = DEFAULT_SPEC,
    check: Annotated[bool, typer.Option("--check", help="Write nothing; exit 1 if infra/ is out of date with mlkit.yaml (for CI).")] = False,
    allow_dirty: Annotated[bool, typer.Option("--allow-dirty", help="Merge even if infra/ has uncommitted git changes.")] = False,
    forget_record: Annotated[
        bool,
        typer.Option(
            "--forget-record",
            help="Ignore .mlkit/record.json and .mlkit/base (when they are damaged): files equal to the render stay, "
            "every other difference becomes a conflict to review. Nothing is overwritten or deleted unseen.",
        ),
    ] = False,
    json_out: JsonOut = False,
) -> None:
    """Render infra/ (Terraform and Kubernetes manifests) from mlkit.yaml.

    Files you edited keep your edits and take mlkit's changes (a three-way merge against what mlkit
    wrote last, kept in .mlkit/). Files you deleted stay deleted; files you added are never touched.
    When you and mlkit changed the same lines, the file gets <<<<<<< markers and mlkit exits 1.
    """
    from ..lock import project_lock
    from ..render import facts, merge
    from ..render.infra import MACHINE_OWNED, render
    from ..spec.loader import load

    spec = load(file)
    root = file.resolve().parent
    rendered = render(spec, facts.load(root))
    with project_lock(root, "render"):
        result = merge.plan(root, rendered, MACHINE_OWNED, forget_record=forget_record)
        merge.refuse_unresolved(result)
        if check:
            _report(result, json_out, check=True)
            if result.out_of_date:
                raise UserError(f"infra/ is out of date with {file} ({len(result.out_of_date)} files); run `mlkit render`")
            say("infra/ is up to date")
            return
        if not allow_dirty:
            from ..gitguard import require_clean

            require_clean(root, ["infra", ".mlkit"])
        merge.apply(result)
    _report(result, json_out, check=False)
    if result.conflicts:
        names = "\n".join(f"  {o.path}" for o in result.conflicts)
        raise UserError(f"merge conflicts in {len(result.conflicts)} files; resolve the <<<<<<< markers, then run `mlkit render` again:\n{names}")


def _report(result, json_out: bool, check: bool) -> None:
    from ..render import merge

    if json_out:
        print(json.dumps({"check": check, "files": [o.__dict__ for o in result.outcomes]}, indent=2))
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.action] = counts.get(o.action, 0) + 1
        if o.action != "unchanged" and not json_out:
            verb = f"would be {o.action}" if check and o.action in merge.CHANGING else o.action
            say(f"  {SYMBOLS.get(o.action, ' ')} {o.path}: {verb}" + (f" ({o.detail})" if o.detail else ""))
    summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    say(f"render: {summary or 'nothing to render'}")
