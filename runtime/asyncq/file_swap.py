"""Replacing a file whole by a new one, without making the caller write the new one out to disk.

The results folder replaces each `queued` record by the worker's result: a temporary file renamed over
it. On ext4 (auto_da_alloc, the default) a rename over an existing file makes the caller allocate and
send to the disk the new file's data at once, as if half fsync'd: a disk request per result, half of a
record write's CPU on a fast model's worker. Exchanging the two names (renameat2 RENAME_EXCHANGE) is as
atomic for a reader of the name, leaves that data to the kernel's writeback (which batches it), and the
old file, now under the temporary name, is then unlinked, or kept to be written over (local.FileStore).
Where exchanging is not possible (not Linux, a filesystem without it, no file to replace yet) it is a
plain os.replace.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
# errno values that say exchanging is not possible here at all (rather than for this one file).
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


def _renameat2() -> Callable[..., int] | None:
    try:
        call = ctypes.CDLL(None, use_errno=True).renameat2  # glibc 2.28 and later
    except (AttributeError, OSError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


_exchange = _renameat2()


def swap(new: str, path: str) -> bool:
    """Put the file `new` at `path` in one step (a reader sees the old file or the new one, whole). True: the
    files were exchanged, and the old one is at `new` now, for the caller to unlink or reuse; False: there
    was nothing to exchange (or no exchange here), `new` was renamed onto `path` and is gone."""
    global _exchange
    if _exchange is not None:
        if _exchange(_AT_FDCWD, os.fsencode(new), _AT_FDCWD, os.fsencode(path), _RENAME_EXCHANGE) == 0:
            return True
        if ctypes.get_errno() in _UNSUPPORTED:
            _exchange = None
    os.replace(new, path)  # nothing to replace yet (the first write of a key), or no exchange here
    return False


def replace(new: str, path: str) -> None:
    """Put the file `new` at `path` in one step; `new` is gone after."""
    if swap(new, path):
        os.unlink(new)  # the old file, under the temporary name now
