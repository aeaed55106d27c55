"""Which project files leave the machine: into image build contexts and into the model bucket.

One walk for both, so a secret kept out of an image is kept out of an upload too. Rules, in order
(gitignore syntax, read with `pathspec`; a later rule wins, so `!pattern` re-includes):

1. HIDDEN_AND_CACHES: hidden files, virtual environments and caches; a `.mlkitignore` may re-include.
2. the project's `.mlkitignore`, one gitignore pattern a line.
3. ALWAYS_OUT: secrets and state. These come last, so no `.mlkitignore` line can let them in.

A symlink is followed only while it stays inside the boundary (the project, or a model folder that
lies outside it); one leading out is refused, naming it, because following it would ship whatever
it points at (a home directory, a key).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pathspec

from ..errors import UserError

IGNORE_FILE = ".mlkitignore"
HIDDEN_AND_CACHES = [".*", "__pycache__/", "*.pyc", "venv/", "node_modules/"]
ALWAYS_OUT = [".env*", "*.pem", "*.key", "id_*", "credentials*", "*.tfstate*", ".git/", ".terraform/", "infra/", ".mlkit/"]


def rules(root: Path) -> pathspec.PathSpec:
    """The ignore rules of the project at root: defaults, its .mlkitignore, then what always stays out."""
    own: list[str] = []
    path = root / IGNORE_FILE
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UserError(f"{path}: must be a plain file of gitignore patterns, not a link or a folder")
    if path.is_file():
        try:
            own = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: cannot read it ({exc}); it must be UTF-8 text, one gitignore pattern a line") from None
    return pathspec.GitIgnoreSpec.from_lines(HIDDEN_AND_CACHES + own + ALWAYS_OUT)


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
        if is_dir:
            yield from _walk(top, path, base, boundary, ignore, seen)
        elif entry.is_file():
            yield path.relative_to(top).as_posix(), path
