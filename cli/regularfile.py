"""Reading a file that a user, an environment variable or a pull request named.

Rules: every path option is a regular file where one is expected (a FIFO with no writer, a device such as
/dev/zero, or a folder is refused, never waited on or read without end: the file is opened without
blocking and checked with fstat on the descriptor read), and every byte read is bounded. Callers word the
refusal for their own option or file, so each error stays one line that names the fix.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotRegular(Exception):
    """The path is a folder, a device, a pipe or a socket."""

    def __init__(self, folder: bool):
        super().__init__("a folder" if folder else "not a regular file")
        self.folder = folder


class TooLarge(Exception):
    """The file holds more than the limit (at open, or by the time it was read: files grow)."""

    def __init__(self, size: int):
        super().__init__(f"{size:,} bytes")
        self.size = size


def read(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; NotRegular, TooLarge or OSError otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(stat.S_ISDIR(info.st_mode))
        if info.st_size > limit:
            raise TooLarge(info.st_size)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)  # the file may grow after fstat
    finally:
        os.close(fd)
    if len(data) > limit:
        raise TooLarge(len(data))
    return data
