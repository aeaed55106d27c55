"""A lock in `.mlkit/` so that two mlkit runs on one project never interleave their writes or applies."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs are not guarded there
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def project_lock(project_dir: Path, what: str) -> Iterator[None]:
    state = project_dir / ".mlkit"
    state.mkdir(parents=True, exist_ok=True)
    path = state / "lock"
    with open(path, "a+", encoding="utf-8") as handle:
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another mlkit run"
                raise UserError(
                    f"{path}: {holder} holds this project's lock; wait for it to finish "
                    "(if no mlkit process is running, the lock is released already: try again)"
                ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"mlkit {what} (pid {os.getpid()})\n")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
