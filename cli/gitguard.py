"""Refuse to merge into uncommitted changes (as copier does): a bad merge must be undoable with git."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .errors import UserError


def uncommitted(project_dir: Path, paths: list[str]) -> list[str]:
    """Tracked files under `paths` with uncommitted changes; empty outside a git work tree."""
    git = shutil.which("git")
    if git is None:
        return []
    proc = subprocess.run(
        [git, "status", "--porcelain", "--untracked-files=no", "--", *paths],
        cwd=project_dir,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:  # not a git work tree
        return []
    return [line[3:] for line in proc.stdout.splitlines() if line.strip()]


def require_clean(project_dir: Path, paths: list[str]) -> None:
    dirty = uncommitted(project_dir, paths)
    if dirty:
        listed = "\n".join(f"  {p}" for p in dirty[:10]) + ("\n  ..." if len(dirty) > 10 else "")
        raise UserError(
            f"uncommitted changes under {', '.join(paths)}:\n{listed}\n"
            "Commit or stash them first, so that the merge can be undone with git, or pass --allow-dirty."
        )
