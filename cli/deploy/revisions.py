"""Revisions: each deploy of an API that changed what runs, kept in the deploy record.

A revision holds what the pods ran (image tag, model URI), where it came from (hashes of the API's
config and of its spec entry, the git commit) and when. `mlkit apply --only apis` adds one per API
whose values differ from its current revision; `mlkit rollback` adds one that restores an earlier
revision's image and model and pins them, so that rendering (a pure function of mlkit.yaml and the
record) keeps them until the next apply deploys the project as written again.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..render import runtime_view
from ..render.facts import KEEP, Facts, Revision
from ..spec.schema import Api, Spec

__all__ = ["KEEP", "Values", "check_changes", "current", "git_commit", "numbers", "record", "roll_back", "target", "values"]


@dataclass(frozen=True)
class Values:
    """What makes two deploys of an API the same deploy."""

    image: str | None
    model: str | None
    config_hash: str
    spec_hash: str


def values(spec: Spec, api: Api, facts: Facts) -> Values:
    """The values of API as `mlkit apply` renders it now (no pin: apply deploys the spec as written)."""
    return Values(
        image=facts.images.get(api.name),
        model=_model(api, facts),
        config_hash=runtime_view.short_hash(runtime_view.config_json(api.config)),
        # The entry as written (defaults left out): a kit upgrade that adds a field is not a new revision.
        spec_hash=runtime_view.short_hash(runtime_view.config_json(api.model_dump(mode="json", exclude_unset=True))),
    )


def _model(api: Api, facts: Facts) -> str | None:
    """The model URI the pods fetch: the spec's bucket URI, or where apply uploaded its folder."""
    if api.model is None or "://" in api.model:
        return api.model
    return facts.models.get(api.name)


def of(revision: Revision) -> Values:
    return Values(revision.image, revision.model, revision.config_hash, revision.spec_hash)


def current(facts: Facts, api: str) -> Revision | None:
    revisions = facts.revisions.get(api)
    return revisions[-1] if revisions else None


def record(root: Path, spec: Spec, facts: Facts, now: float | None = None) -> dict[str, int]:
    """Add a revision to each API of the spec whose values changed; API -> its new revision number."""
    added: dict[str, int] = {}
    commit = git_commit(root)
    for api in spec.apis:
        new = values(spec, api, facts)
        last = current(facts, api.name)
        if last is not None and of(last) == new:
            continue
        added[api.name] = _append(facts, api.name, new, commit, now)
    return added


def target(facts: Facts, api: str, to: int | None) -> Revision:
    """The revision `mlkit rollback API [--to N]` restores: N, or the one before the current one."""
    revisions = facts.revisions.get(api, [])
    if not revisions:
        raise UserError(f".mlkit/deploy.json has no revisions of {api}: `mlkit apply --only apis` records one per deploy")
    now = revisions[-1].number
    if to is None:
        if len(revisions) < 2:
            raise UserError(f"{api} has only revision {now}, the current one: there is nothing before it to roll back to")
        return revisions[-2]
    found = next((r for r in revisions if r.number == to), None)
    if found is None:
        raise UserError(f"--to {to}: {api} has no revision {to} (revisions: {numbers(revisions)}); `mlkit history {api}` lists them")
    if to == now:
        raise UserError(f"--to {to}: revision {to} is the current one of {api}; pick an earlier one (revisions: {numbers(revisions)})")
    return found


def check_changes(api: str, goal: Revision, last: Revision) -> None:
    """A rollback restores an image and a model; to a revision that ran the same ones it would change nothing."""
    if (goal.image, goal.model) == (last.image, last.model):
        raise UserError(
            f"revision {goal.number} of {api} ran the same image and model as the current one ({last.number}); a rollback restores only "
            f"those, and leaves mlkit.yaml as written: change the entry back there and run `mlkit apply --only apis`"
        )


def roll_back(root: Path, spec: Spec, facts: Facts, api: Api, to: Revision, now: float | None = None) -> Revision:
    """Record a rollback of API to revision `to` and pin its image and model; returns the new revision.

    The rest of the API (config, resources, ...) stays as mlkit.yaml says: the new revision records
    the config and spec hashes of the entry as it is now, since that is what its pods run with.
    """
    last = current(facts, api.name)
    assert last is not None  # target() found revisions
    now_values = values(spec, api, facts)
    new = Values(image=to.image or now_values.image, model=(to.model or now_values.model) if api.model else None,
                 config_hash=now_values.config_hash, spec_hash=now_values.spec_hash)
    number = _append(facts, api.name, new, git_commit(root), now, rolled_back=(last.number, to.number))
    facts.pins[api.name] = number
    return facts.revisions[api.name][-1]


def _append(facts: Facts, api: str, new: Values, commit: str | None, now: float | None,
            rolled_back: tuple[int, int] | None = None) -> int:
    revisions = facts.revisions.setdefault(api, [])
    number = revisions[-1].number + 1 if revisions else 1
    revisions.append(Revision(
        number=number,
        time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        image=new.image, model=new.model, config_hash=new.config_hash, spec_hash=new.spec_hash,
        git_commit=commit,
        rolled_back_from=rolled_back[0] if rolled_back else None,
        rolled_back_to=rolled_back[1] if rolled_back else None,
    ))
    del revisions[:-KEEP]  # bounded; numbers go on counting, so an old number never names a new deploy
    return number


def numbers(revisions: list[Revision]) -> str:
    """The revision numbers there are, short: "1, 2, 3" or "4 to 53"."""
    got = [r.number for r in revisions]
    if len(got) > 5 and got == list(range(got[0], got[-1] + 1)):
        return f"{got[0]} to {got[-1]}"
    return ", ".join(map(str, got))


def git_commit(root: Path) -> str | None:
    """The commit the project's git repository is at; None outside one (or without git, or before the first commit)."""
    git = shutil.which("git")
    if git is None:
        return None
    proc = subprocess.run([git, "rev-parse", "--verify", "--quiet", "HEAD"], cwd=root, capture_output=True, text=True)
    commit = proc.stdout.strip()
    return commit if proc.returncode == 0 and len(commit) in (40, 64) else None
