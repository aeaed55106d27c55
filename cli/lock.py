"""A lock in `.mlkit/` so that two mlkit runs on one project never interleave their writes or applies.

`.mlkit/lock` may come from a pull request like everything else in the project: it is opened without
following links, without truncating on open and without blocking on a FIFO, and must be a regular
file; otherwise the run stops and names it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from . import projectfs
from .errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not guarded there
    fcntl = None  # type: ignore[assignment]

REL = ".mlkit/lock"
FIX = "remove it (`rm .mlkit/lock`; it is not meant to be committed), then run again"


def _open(project_dir: Path) -> int:
    projectfs.make_dirs(project_dir, ".mlkit")
    path = project_dir / REL
    flags = os.O_RDWR | os.O_CREAT | projectfs.NOFOLLOW | projectfs.CLOEXEC | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        kind = "a symbolic link" if os.path.islink(path) else "a folder" if os.path.isdir(path) else f"not usable ({exc.strerror})"
        raise UserError(f"{REL} is {kind}, not mlkit's lock file; {FIX}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{REL} is not a regular file (a FIFO, socket or device), not mlkit's lock file; {FIX}")
    return fd


@contextlib.contextmanager
def project_lock(project_dir: Path, what: str) -> Iterator[None]:
    fd = _open(project_dir)
    with os.fdopen(fd, "r+", encoding="utf-8") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read(200).strip() or "another mlkit run"
                raise UserError(
                    f"{project_dir / REL}: {holder} holds this project's lock; wait for it to finish "
                    "(if no mlkit process is running, the lock is released already: try again)"
                ) from None
        # Only now, holding the lock on a regular file that is ours to write, is it emptied and signed.
        handle.seek(0)
        handle.truncate()
        handle.write(f"mlkit {what} (pid {os.getpid()})\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
