"""Regeneration as a three-way merge per file, so that re-rendering never loses a team's edit.

For each file: base = what mlkit last wrote (kept under `.mlkit/base/`), theirs = what is on disk,
ours = what mlkit renders now. The line merge is `merge3` (the Bazaar/Breezy merge, maintained on
PyPI), not code of ours. Nothing is written until every file's outcome is known.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import merge3

from .. import kit

RECORD_DIR = ".mlkit"
BASE_DIR = "base"
RECORD_FILE = "record.json"

# Outcomes that leave the disk different from before; `render --check` fails on any of them.
CHANGING = frozenset({"created", "updated", "merged", "conflict", "removed"})


@dataclass
class Outcome:
    path: str
    action: str  # created, updated, unchanged, kept-edits, merged, conflict, kept-deleted, removed, kept-obsolete
    detail: str = ""


@dataclass
class MergePlan:
    root: Path
    writes: dict[str, str | None] = field(default_factory=dict)  # None deletes the file
    outcomes: list[Outcome] = field(default_factory=list)
    record: dict[str, str] = field(default_factory=dict)  # path -> content mlkit rendered this time

    @property
    def conflicts(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action == "conflict"]

    @property
    def out_of_date(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action in CHANGING]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def load_base(root: Path) -> dict[str, str]:
    """What mlkit wrote last time, by path."""
    record = _read(root / RECORD_DIR / RECORD_FILE)
    if record is None:
        return {}
    files = json.loads(record).get("files", {})
    base: dict[str, str] = {}
    for rel in files:
        text = _read(root / RECORD_DIR / BASE_DIR / rel)
        if text is not None:
            base[rel] = text
    return base


def plan(root: Path, rendered: dict[str, str], machine_owned: frozenset[str] = frozenset()) -> MergePlan:
    base_files = load_base(root)
    result = MergePlan(root=root, record=dict(rendered))
    for rel in sorted(set(rendered) | set(base_files)):
        ours = rendered.get(rel)
        base = base_files.get(rel)
        theirs = _read(root / rel)
        outcome, content = _merge_one(rel, base, theirs, ours, rel in machine_owned)
        result.outcomes.append(outcome)
        if outcome.action in CHANGING:
            result.writes[rel] = content
    return result


def _merge_one(rel: str, base: str | None, theirs: str | None, ours: str | None, owned: bool) -> tuple[Outcome, str | None]:
    if ours is None:  # mlkit no longer renders this file
        if theirs is None:
            return Outcome(rel, "unchanged"), None
        if theirs == base:
            return Outcome(rel, "removed", "no longer rendered"), None
        return Outcome(rel, "kept-obsolete", "no longer rendered, but edited: kept; delete it if unused"), theirs
    if theirs == ours:
        return Outcome(rel, "unchanged"), ours
    if theirs is None:
        if base is None:
            return Outcome(rel, "created"), ours
        return Outcome(rel, "kept-deleted", "you deleted it; mlkit leaves it deleted"), None
    if owned or theirs == base:
        return Outcome(rel, "updated"), ours
    if base is None:
        # A file mlkit never wrote is in the way: treat it as an edit of an empty file.
        base = ""
    if ours == base:
        return Outcome(rel, "kept-edits"), theirs
    m = merge3.Merge3(base.splitlines(True), theirs.splitlines(True), ours.splitlines(True))
    merged = "".join(
        m.merge_lines(
            name_a=f"your edits ({rel})",
            name_b=f"mlkit {kit.VERSION} render",
            start_marker="<<<<<<<",
            mid_marker="=======",
            end_marker=">>>>>>>",
        )
    )
    if any(region[0] == "conflict" for region in m.merge_regions()):
        return Outcome(rel, "conflict", "both you and mlkit changed the same lines; resolve the <<<<<<< markers"), merged
    return Outcome(rel, "merged", "your edits kept, mlkit's changes added"), merged


def apply(p: MergePlan) -> None:
    """Write the plan's files, then the record of what mlkit rendered (the base of the next merge)."""
    for rel, content in p.writes.items():
        target = p.root / rel
        if content is None:
            target.unlink(missing_ok=True)
            continue
        _atomic_write(target, content)
    record_dir = p.root / RECORD_DIR
    base_dir = record_dir / BASE_DIR
    for rel in load_base(p.root):
        if rel not in p.record:
            (base_dir / rel).unlink(missing_ok=True)
    for rel, content in p.record.items():
        target = base_dir / rel
        if _read(target) != content:
            _atomic_write(target, content)
    record = {
        "kit_version": kit.VERSION,
        "files": {rel: hashlib.sha256(c.encode()).hexdigest() for rel, c in sorted(p.record.items())},
    }
    _atomic_write(record_dir / RECORD_FILE, json.dumps(record, indent=2) + "\n")
    gitignore = record_dir / ".gitignore"
    if not gitignore.exists():
        # The record and deploy.json belong in version control (merge base, deploy values); locks,
        # plan files and image build contexts do not.
        _atomic_write(gitignore, "lock\nplans/\nbuild/\n")


def _atomic_write(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.mlkit-tmp")
    tmp.write_text(content, encoding="utf-8")
    os.replace(tmp, path)
