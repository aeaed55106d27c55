"""`mlkit history API`: the revisions of an API, from the deploy record."""

from __future__ import annotations

import json
from dataclasses import asdict

from ..errors import UserError
from ..options import DEFAULT_SPEC, ApiName, JsonOut, SpecFile, say

COLUMNS = ("rev", "time", "image", "model", "config", "spec", "commit", "")


def command(api: ApiName, file: SpecFile = DEFAULT_SPEC, json_out: JsonOut = False) -> None:
    """List the revisions of API, oldest first: number, time, image tag, model, config and spec hashes, git commit.

    `mlkit apply` records a revision for each deploy that changed an API's image, model, config or
    spec entry (the last 50 are kept, in .mlkit/deploy.json); `mlkit rollback` records one too. The
    current revision is marked, and so is a rollback's pin, which holds until the next apply.
    Reads the project only: no cluster is reached.
    """
    from ..deploy import revisions as revisions_mod
    from ..render import facts as facts_mod
    from ..spec.loader import load

    spec = load(file)
    facts = facts_mod.load(file.resolve().parent)
    names = [a.name for a in spec.apis] + sorted(set(facts.revisions) - {a.name for a in spec.apis})
    if api not in names:
        raise UserError(f"{file} has no API named '{api}' (APIs: {', '.join(names) or 'none'})")
    revisions = facts.revisions.get(api, [])
    last = revisions_mod.current(facts, api)
    pinned = facts.pins.get(api)
    if json_out:
        print(json.dumps({
            "type": "mlkit_history", "api": api, "current": last.number if last else None, "pinned": pinned,
            "revisions": [asdict(r) for r in revisions],
        }))
        return
    if not revisions:
        say(f"no revisions of {api} yet: `mlkit apply --only apis` records one per deploy")
        return
    rows = [[
        str(r.number), r.time, r.image or "(engine image)", r.model or "-", r.config_hash[:8], r.spec_hash[:8],
        (r.git_commit or "-")[:8], _note(r.number == last.number if last else False, r.rolled_back_to, r.rolled_back_from, r.number == pinned),
    ] for r in revisions]
    widths = [max(len(c) for c in [h.upper(), *[row[i] for row in rows]]) for i, h in enumerate(COLUMNS)]
    for row in [[h.upper() for h in COLUMNS], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if pinned:
        say(f"{api} is pinned to revision {pinned} by `mlkit rollback`; the next `mlkit apply --only apis` deploys mlkit.yaml as written")


def _note(is_current: bool, to: int | None, came_from: int | None, is_pinned: bool) -> str:
    notes = ["current"] if is_current else []
    if to is not None:
        notes.append(f"rollback to {to} (from {came_from})")
    if is_pinned:
        notes.append("pinned")
    return ", ".join(notes)
