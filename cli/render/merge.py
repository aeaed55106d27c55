"""Regeneration as a three-way merge per file, so that re-rendering never loses a team's edit.

For each file: base = what mlkit last wrote (kept under `.mlkit/base/`), theirs = what is on disk,
ours = what mlkit renders now. The line merge is `merge3` (the Bazaar/Breezy merge, maintained on
PyPI), not code of ours. Nothing is written until every file's outcome is known.

The record may come from a pull request someone else wrote: its paths must be relative,
normalised and under infra/, each base copy must match the hash the record keeps, and all file
access goes through projectfs (no links followed). A record that fails any of this stops the run
with the way out (RECORD_WAY_OUT) instead of steering what mlkit overwrites or deletes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import merge3

from .. import jsonbounds, kit, projectfs
from ..errors import UserError

RECORD_DIR = ".mlkit"
BASE_DIR = "base"
RECORD_FILE = "record.json"
RECORD = f"{RECORD_DIR}/{RECORD_FILE}"
# Every path mlkit renders is under infra/; a record naming anything else was not written by mlkit.
RENDERED_ROOT = "infra"
RECORD_WAY_OUT = (
    "restore .mlkit/ from git (`git checkout -- .mlkit`), or run `mlkit render --forget-record`: "
    "it writes a new record, and every file that differs from the new render becomes a conflict to review, "
    "so that no edit is overwritten on the word of a record mlkit cannot trust"
)

# Outcomes that leave the disk different from before; `render --check` fails on any of them.
CHANGING = frozenset({"created", "updated", "merged", "conflict", "removed", "unresolved"})
# "unresolved" (conflict markers still in the file) changes nothing on disk: mlkit stops until they are gone.
WRITES = CHANGING - {"unresolved"}

# Conflict markers at line starts: mlkit's own (`<<<<<<< your edits`, `>>>>>>> mlkit ... render`) and
# git's. A file holding both an opening and a closing marker has an unresolved conflict.
_OPEN = re.compile(r"^<{7}(?: |$)", re.MULTILINE)
_CLOSE = re.compile(r"^>{7}(?: |$)", re.MULTILINE)


def has_conflict_markers(text: str) -> bool:
    return bool(_OPEN.search(text)) and bool(_CLOSE.search(text))


@dataclass
class Outcome:
    path: str
    action: str  # created, updated, unchanged, kept-edits, merged, conflict, unresolved, kept-deleted, removed, kept-obsolete
    detail: str = ""


@dataclass
class MergePlan:
    root: Path
    writes: dict[str, str | None] = field(default_factory=dict)  # None deletes the file
    outcomes: list[Outcome] = field(default_factory=list)
    record: dict[str, str] = field(default_factory=dict)  # path -> content mlkit rendered this time
    previous: frozenset[str] = frozenset()  # paths of the record this plan merged against

    @property
    def conflicts(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action == "conflict"]

    @property
    def unresolved(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action == "unresolved"]

    @property
    def out_of_date(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.action in CHANGING]


def _corrupt(problem: str) -> UserError:
    return UserError(f"{RECORD}: {problem}; {RECORD_WAY_OUT}")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise _corrupt(f"lists {key!r} twice")
        seen[key] = value
    return seen


def _read_record_file(root: Path, rel: str) -> str | None:
    """A file of the record; one that is a link, a folder or binary names the way out too."""
    try:
        return projectfs.read_text(root, rel)
    except UserError as exc:
        raise UserError(f"{exc.message}; or {RECORD_WAY_OUT}") from None


def load_record(root: Path) -> dict[str, str]:
    """The record's paths and content hashes, each path checked: relative, normalised, under infra/."""
    text = _read_record_file(root, RECORD)
    if text is None:
        return {}
    try:
        data = jsonbounds.loads(text, object_pairs_hook=_no_duplicates)  # numbers and nesting bounded
    except jsonbounds.BadJson as exc:
        raise _corrupt(str(exc)) from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise _corrupt('expected an object with "files": {path: sha256}')
    folded: dict[str, str] = {}
    for rel, digest in files.items():
        projectfs.check_relative(rel, RECORD, RECORD_WAY_OUT, under=RENDERED_ROOT)
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise _corrupt(f"the hash of {rel} is not a sha256 hex digest")
        # Two entries that differ only in case are one file on macOS and Windows.
        if rel.casefold() in folded:
            raise _corrupt(f"lists {folded[rel.casefold()]!r} and {rel!r}, one file where case does not count")
        folded[rel.casefold()] = rel
    return files


def load_base(root: Path) -> dict[str, str]:
    """What mlkit wrote last time, by path; each base copy must match the hash the record keeps of it."""
    base: dict[str, str] = {}
    for rel, digest in load_record(root).items():
        text = _read_record_file(root, f"{RECORD_DIR}/{BASE_DIR}/{rel}")
        if text is None:
            continue  # no base copy: the file is merged as one mlkit never wrote (its differences conflict)
        if hashlib.sha256(text.encode()).hexdigest() != digest:
            raise _corrupt(f"{RECORD_DIR}/{BASE_DIR}/{rel} does not match the hash the record keeps of it")
        base[rel] = text
    return base


def plan(root: Path, rendered: dict[str, str], machine_owned: frozenset[str] = frozenset(), forget_record: bool = False) -> MergePlan:
    """Merge each rendered file with the disk. `forget_record` merges as if mlkit had never rendered
    here: files equal to the render are unchanged, every other difference is a conflict to review."""
    base_files = {} if forget_record else load_base(root)
    result = MergePlan(root=root, record=dict(rendered), previous=frozenset(base_files))
    folded = {rel.casefold(): rel for rel in rendered}
    for rel in base_files:
        if rel not in rendered and rel.casefold() in folded:
            raise _corrupt(f"lists {rel!r}, which differs only in case from the rendered {folded[rel.casefold()]!r}")
    for rel in sorted(set(rendered) | set(base_files)):
        ours = rendered.get(rel)
        base = base_files.get(rel)
        theirs = projectfs.read_text(root, rel)
        outcome, content = _merge_one(rel, base, theirs, ours, rel in machine_owned)
        result.outcomes.append(outcome)
        if outcome.action in WRITES:
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
    if theirs is not None and not owned and has_conflict_markers(theirs):
        return Outcome(rel, "unresolved", "conflict markers are still in the file; resolve them"), None
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


def refuse_unresolved(p: MergePlan) -> None:
    """Stop while conflict markers from an earlier merge are still in a file: merging on would bury them."""
    if p.unresolved:
        names = "\n".join(f"  {o.path}" for o in p.unresolved)
        raise UserError(
            f"unresolved merge conflicts in {len(p.unresolved)} files; resolve the <<<<<<< markers "
            f"(keep what each file should say, remove the marker lines), then run again:\n{names}"
        )


def apply(p: MergePlan) -> None:
    """Write the plan's files, then the record of what mlkit rendered (the base of the next merge)."""
    refuse_unresolved(p)
    for rel, content in p.writes.items():
        if content is None:
            projectfs.remove(p.root, rel)
        else:
            projectfs.write_text(p.root, rel, content)
    base_dir = f"{RECORD_DIR}/{BASE_DIR}"
    for rel in p.previous - set(p.record):
        projectfs.remove(p.root, f"{base_dir}/{rel}")
    for rel, content in p.record.items():
        # Only base copies the plan read and checked are compared; any other (a new file, or one
        # --forget-record ignored, a link or a damaged copy included) is simply replaced.
        if rel not in p.previous or projectfs.read_text(p.root, f"{base_dir}/{rel}") != content:
            projectfs.write_text(p.root, f"{base_dir}/{rel}", content)
    record = {
        "kit_version": kit.VERSION,
        "files": {rel: hashlib.sha256(c.encode()).hexdigest() for rel, c in sorted(p.record.items())},
    }
    projectfs.write_text(p.root, RECORD, json.dumps(record, indent=2) + "\n")
    gitignore = f"{RECORD_DIR}/.gitignore"
    if projectfs.read_text(p.root, gitignore) is None:
        # The record and deploy.json belong in version control (merge base, deploy values); locks,
        # plan files, image build contexts and new API keys do not.
        projectfs.write_text(p.root, gitignore, "lock\nplans/\nbuild/\nsecrets/\n")
