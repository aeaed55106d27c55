"""`mlkit rollback API [--to N]`: run an earlier revision's image and model again."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from ..errors import UserError
from ..options import DEFAULT_SPEC, ApiName, JsonOut, SpecFile, confirm, say
from .apply import Timeout

To = Annotated[
    int | None,
    typer.Option("--to", min=1, help="Revision number to go back to (`mlkit history API` lists them); default: the one before the current one."),
]
Yes = Annotated[bool, typer.Option("--auto-approve", "--yes", "-y", help="Do not ask before rolling back (for automation).")]


def command(
    api: ApiName,
    to: To = None,
    file: SpecFile = DEFAULT_SPEC,
    auto_approve: Yes = False,
    timeout: Timeout = 600.0,
    json_out: JsonOut = False,
) -> None:
    """Roll API back to an earlier revision: its image and model run again, the rest stays as mlkit.yaml says.

    The revision's image tag and model URI are pinned in .mlkit/deploy.json and rendered into
    infra/k8s through the usual merge (a small diff to review); the manifests are then applied and
    the rollout awaited as `mlkit apply` does. The rollback is a new revision that names the one it
    restored. The pin holds until the next `mlkit apply --only apis`, which deploys the project as it
    is: fix or revert the change there first. When the revision was deployed from a different
    mlkit.yaml entry (config, resources, ...), a warning says so: those stay as written now.
    """
    from ..cluster.connect import api_named
    from ..deploy import apis, revisions
    from ..lock import project_lock
    from ..render import facts as facts_mod
    from ..render import runtime_view
    from ..spec.loader import load

    spec = load(file)
    root = file.resolve().parent
    entry = api_named(spec, api)
    with project_lock(root, "rollback"):
        facts = facts_mod.load(root)
        goal = revisions.target(facts, api, to)
        last = revisions.current(facts, api)
        assert last is not None  # target() found revisions
        revisions.check_changes(api, goal, last)
        warnings = _differences(goal, revisions.values(spec, entry, facts))
        for line in warnings:
            say(f"warning: {line}")
        image = runtime_view.image_ref(spec, api, goal.image, facts.aws_account_id) if goal.image else "the engine's image"
        if goal.image and not apis.in_registry(spec, image, api, goal.image):
            raise UserError(f"the image of revision {goal.number} ({image}) is no longer in the registry; "
                            f"pick another revision (`mlkit history {api}`) or push it again (`mlkit build {api}` from that commit)")
        question = f"Roll {api} back from revision {last.number} to {goal.number} ({image}, model {goal.model or 'none'})?"
        if not auto_approve and not confirm(question):
            raise UserError("rollback cancelled; nothing was changed")
        new = revisions.roll_back(root, spec, facts, entry, goal)
        report = apis.Report(revisions={api: new.number})
        report.rendered = apis.rerender(root, spec, facts, say, rerun=f"mlkit rollback {api} --to {goal.number}")
        # The record is saved once the cluster holds the rollback: a run that cannot reach it changes
        # nothing there, and running the same rollback again is the way on.
        apis.roll_out(root, spec, timeout, say, report, applied_hook=lambda: facts_mod.save(root, facts))
    say(f"{api}: revision {new.number} runs revision {goal.number}'s image and model; "
        "the next `mlkit apply --only apis` deploys mlkit.yaml as written")
    if json_out:
        print(json.dumps({
            "type": "mlkit_rollback", "api": api, "revision": asdict(new), "image": image, "warnings": warnings,
            # as apply's report, less the uploads and builds a rollback never makes; new keys never go to stdout
            **{k: getattr(report, k) for k in ("rendered", "rolled_out", "pruned", "key_files")},
        }))


def _differences(goal, now) -> list[str]:
    """What the rollback does not restore: the config and spec entry stay as written now."""
    if goal.spec_hash == now.spec_hash:
        return []
    what = "config and mlkit.yaml entry" if goal.config_hash != now.config_hash else "mlkit.yaml entry"
    return [f"revision {goal.number} was deployed with a different {what} (spec hash {goal.spec_hash[:8]}, now {now.spec_hash[:8]}); "
            "the rollback restores its image and model only, the rest stays as mlkit.yaml says now"]
