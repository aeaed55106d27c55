"""Which project files leave the machine: into image build contexts and into the model bucket.

One walk for both, so a secret kept out of an image is kept out of an upload too. Rules, in order
(gitignore syntax, read with `pathspec`; a later rule wins, so `!pattern` re-includes):

1. HIDDEN_AND_CACHES: hidden files, virtual environments and caches; a `.mlkitignore` may re-include.
2. the project's `.mlkitignore`, one gitignore pattern a line.
3. ALWAYS_OUT: secrets and state. These come last, so no `.mlkitignore` line can let them in.

A symlink is followed only while it stays inside the boundary (the project, or a model folder that
lies outside it); one leading out is refused, naming it, because following it would ship whatever
it points at (a home directory, a key). A file reached through a link must also pass the rules under
its own path: `app/settings.txt -> .env` or `model/vocab.bin -> .mlkit/secrets/API.key` would
otherwise ship what the rules keep out. Such a link is refused, naming it, rather than skipped: a
model folder silently missing a file is worse than one line to fix.

The rules are compiled for RE2 (linear time): Python's backtracking `re` took 51 s of CPU for
`*a*a*a*a*a*a*a*a*b` against one 60-character name, so one line in a pull request could stall CI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pathspec

from ..errors import UserError

IGNORE_FILE = ".mlkitignore"
# Every byte read is bounded: an ignore file is a screenful of patterns, not megabytes.
IGNORE_MAX_BYTES = 256 * 1024
HIDDEN_AND_CACHES = [".*", "__pycache__/", "*.pyc", "venv/", "node_modules/"]
ALWAYS_OUT = [".env*", "*.pem", "*.key", "id_*", "credentials*", "*.tfstate*", ".git/", ".terraform/", "infra/", ".mlkit/"]


def rules(root: Path) -> pathspec.PathSpec:
    """The ignore rules of the project at root: defaults, its .mlkitignore, then what always stays out."""
    own: list[str] = []
    path = root / IGNORE_FILE
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UserError(f"{path}: must be a plain file of gitignore patterns, not a link or a folder")
    if path.is_file():
        if (size := path.stat().st_size) > IGNORE_MAX_BYTES:
            raise UserError(f"{path}: {size:,} bytes; an ignore file is at most {IGNORE_MAX_BYTES // 1024} KiB of gitignore patterns")
        try:
            own = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read it ({exc}); it must be UTF-8 text, one gitignore pattern a line") from None
    try:
        # backend="re2": never the backtracking fallback, whatever else is installed.
        return pathspec.GitIgnoreSpec.from_lines(HIDDEN_AND_CACHES + own + ALWAYS_OUT, backend="re2")
    except Exception as exc:  # pathspec's own errors and re2's (a pattern past its memory bound) share no base class
        raise UserError(f"{path}: a pattern mlkit cannot compile ({' '.join(str(exc).split())[:200]}); fix or remove it") from None


def walk(folder: Path, boundary: Path, ignore: pathspec.PathSpec, base: Path | None = None) -> Iterator[tuple[str, Path]]:
    """Every file under folder that the rules let through, as (path relative to folder, path to read).

    Rules match paths relative to `base` (the project root; folder itself by default). Links are
    followed while they resolve inside boundary; one that leads outside is a UserError naming it.
    """
    base = base or folder
    boundary = boundary.resolve()
    yield from _walk(folder, folder, base, boundary, ignore, set())


def _walk(top: Path, folder: Path, base: Path, boundary: Path, ignore: pathspec.PathSpec, seen: set[Path]) -> Iterator[tuple[str, Path]]:
    real = folder.resolve()
    if real in seen:  # a link back up the tree: its files are already listed
        return
    seen = seen | {real}
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        raise UserError(f"{folder}: cannot list it ({exc.strerror})") from None
    # Entries of a folder reached through a link lie elsewhere in the project: their own paths are checked too.
    linked = real != Path(os.path.abspath(folder))
    for entry in entries:
        path = Path(entry.path)
        rel = path.relative_to(base).as_posix()
        is_dir = entry.is_dir()  # follows links: a link to a folder is matched as a folder
        if ignore.match_file(rel + "/" if is_dir else rel):
            continue
        if entry.is_symlink():
            target = path.resolve()
            if not target.is_relative_to(boundary):
                raise UserError(f"{path}: a symlink to {target}, outside {boundary}; copy what it points at into the project, or list it in {IGNORE_FILE}")
            if not target.exists():
                raise UserError(f"{path}: a symlink to {target}, which does not exist; remove it or list it in {IGNORE_FILE}")
        else:
            target = real / entry.name
        if entry.is_symlink() or linked:
            _check_target(path, target, is_dir, entry.is_symlink(), base, ignore)
        if is_dir:
            yield from _walk(top, path, base, boundary, ignore, seen)
        elif entry.is_file():
            yield path.relative_to(top).as_posix(), path


def _check_target(path: Path, target: Path, is_dir: bool, is_link: bool, base: Path, ignore: pathspec.PathSpec) -> None:
    """A link ships its target only if the rules let the target through under its own path."""
    real_base = base.resolve()
    if not target.is_relative_to(real_base):
        return  # inside the boundary but outside the rules' base: a model folder outside the project
    own = target.relative_to(real_base).as_posix()
    if ignore.match_file(own + "/" if is_dir else own):
        how = "a symlink to" if is_link else "through a symlinked folder,"
        raise UserError(
            f"{path}: {how} {own}, which mlkit leaves out (secrets, state or {IGNORE_FILE}); "
            f"list the link in {IGNORE_FILE}, or copy what it should ship into the project"
        )
