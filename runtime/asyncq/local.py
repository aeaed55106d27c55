"""The embedded queue and the results folder: an async API on a laptop (`mlkit serve`), nothing to install.

The queue lives in the process (front and worker share it), with the cloud queues' semantics: a
received message is hidden for the visibility timeout and comes back if it is not deleted. It is
not durable across a restart; the results folder is.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import secrets
import threading
import time
import weakref
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

from . import file_swap
from .backend import Message

# Keys come from the runtime (an id checked by records.ID, a fixed prefix), never from a client as given;
# this whole-string check keeps a folder store inside its folder whatever happens upstream.
KEY = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*(\.json)?")


class LocalQueue:
    blocking = False  # in memory; receive waits only when asked to
    one_release = True  # in memory, in the front's own process: gone with it

    def __init__(self, visibility_s: float, dead_letter_dir: str | None = None):
        self.visibility_s = visibility_s
        self.dead_letter_dir = Path(dead_letter_dir) if dead_letter_dir else None
        self._lock = threading.Condition()
        self._next = 0
        # token -> [body, deliveries so far, visible from (monotonic)]; insertion order is arrival order
        self._messages: OrderedDict[int, list[Any]] = OrderedDict()
        self.dead: list[bytes] = []

    def send(self, body: bytes) -> None:
        with self._lock:
            self._next += 1
            self._messages[self._next] = [body, 0, 0.0]
            self._lock.notify()

    def receive(self, most: int, wait_s: float) -> list[Message]:
        deadline = time.monotonic() + wait_s
        with self._lock:
            while True:
                now = time.monotonic()
                got = []
                for token, entry in self._messages.items():
                    if entry[2] <= now:
                        entry[1] += 1
                        entry[2] = now + self.visibility_s
                        got.append(Message(entry[0], token, entry[1]))
                        if len(got) == most:
                            break
                if got or now >= deadline:
                    return got
                # A hidden message may come back before the deadline: wake at whichever is first.
                hidden = [e[2] for e in self._messages.values()]
                self._lock.wait(min([deadline, *hidden]) - now)

    def delete(self, messages: list[Message]) -> None:
        with self._lock:
            for m in messages:
                self._messages.pop(m.handle, None)

    def extend(self, messages: list[Message], seconds: float) -> None:
        with self._lock:
            for m in messages:
                if m.handle in self._messages:
                    self._messages[m.handle][2] = time.monotonic() + seconds

    def release(self, messages: list[Message]) -> None:
        with self._lock:
            for m in messages:
                if m.handle in self._messages:
                    self._messages[m.handle][2] = 0.0
            self._lock.notify_all()

    def dead_letter(self, message: Message) -> None:
        with self._lock:
            entry = self._messages.pop(message.handle, None)
            if entry is None:
                return
            self.dead.append(entry[0])
            if self.dead_letter_dir is not None:
                self.dead_letter_dir.mkdir(parents=True, exist_ok=True)
                (self.dead_letter_dir / f"{time.time_ns()}-{message.handle}.json").write_bytes(entry[0])

    def depth(self) -> int:
        with self._lock:
            return len(self._messages)


class FileStore:
    """Objects as files under a folder, each written whole (a temporary file, then a swap of the two names).

    The file a swap takes out of its name (a `queued` record the result replaced) is kept, under a hidden
    name, and written over for a later put instead of a new file being created and the old one deleted.
    On ext4 without a journal (common on VM disks) creating a file walks past every inode deleted in the
    last 1-6 minutes (ext4's `recently_deleted`), so with one file deleted per result, a create cost 120-180 us
    of CPU where a write over a kept file costs 11 (and varied with whatever else the machine had deleted).
    A reader may still hold such a file open from before the swap: writers lock it (flock) while they write
    over it, and get() reads under a shared lock, and only while the file is still under the name it opened.
    """

    parallel_puts = 1
    # Files kept to be written over, per folder: one is reused only once this many newer ones wait behind it,
    # so that a reader that does not lock (another tool, an older release's front) has long closed it.
    KEEP = 32

    def __init__(self, root: str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # Paths as strings: pathlib's joins cost about as much as the system calls of a small record's write.
        self._root = os.fspath(self.root)
        # Temporary names unique to this store (two processes may share a folder), without mkstemp's
        # random tries and file object: a record write is most of a fast model's request on the async path.
        self._tag = f".tmp-{os.getpid()}-{secrets.token_hex(4)}-"
        self._serial = itertools.count()
        self._spares: dict[str, deque[str]] = {}  # folder -> kept files, oldest first
        self._spares_lock = threading.Lock()  # the worker's record writes and its `running` marker's may overlap
        # Removed when the store goes (the process exits): a kept file holds an old record under a hidden name.
        weakref.finalize(self, _remove_spares, self._spares)

    def _path(self, key: str) -> str:
        if not KEY.fullmatch(key):
            raise ValueError(f"not a store key: {key[:80]!r}")
        return f"{self._root}/{key}"

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        folder = path.rpartition("/")[0]
        spare = self._take_spare(folder)
        if spare is not None and self._put_over(spare, path, data):
            return
        tmp = f"{folder}/{self._tag}{next(self._serial)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileNotFoundError:  # the first object under this prefix (or the folder was removed)
            os.makedirs(folder, exist_ok=True)
            fd = os.open(tmp, flags, 0o600)
        try:
            try:
                _write_all(fd, data)
            finally:
                os.close(fd)
            swapped = file_swap.swap(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if swapped:
            self._keep(folder, tmp)

    def _take_spare(self, folder: str) -> str | None:
        with self._spares_lock:
            kept = self._spares.get(folder)
            return kept.popleft() if kept is not None and len(kept) > self.KEEP else None

    def _keep(self, folder: str, name: str) -> None:
        with self._spares_lock:
            self._spares.setdefault(folder, deque()).append(name)

    def _put_over(self, spare: str, path: str, data: bytes) -> bool:
        """Write `data` over the kept file `spare` and swap it in at `path`; False (the spare handed back or
        dropped) where that cannot be done now, and the caller writes a new file."""
        try:
            # Not through a link: a kept file is reopened by name, and a link put there in its place (by
            # anyone who can write the folder) must not turn this put into a write somewhere else.
            fd = os.open(spare, os.O_WRONLY | os.O_NOFOLLOW)
        except OSError:  # removed under us (the folder cleaned), or no longer a file of ours: forget it
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a reader still reads it: try it again later
                self._keep(spare.rpartition("/")[0], spare)
                return False
            # Over the old bytes, then cut to length: not truncated to 0 first, which on ext4 (auto_da_alloc)
            # would make close() send the data to the disk at once, the cost file_swap avoids.
            _write_all(fd, data)
            os.ftruncate(fd, len(data))
            # Swapped in under the lock: a reader locks, then checks the file is still under its name.
            try:
                swapped = file_swap.swap(spare, path)
            except FileNotFoundError:  # a name was removed after the open (the folder cleaned): a new file instead
                with contextlib.suppress(OSError):
                    os.unlink(spare)
                return False
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spare)
            raise
        finally:
            os.close(fd)
        if swapped:
            self._keep(path.rpartition("/")[0], spare)
        return True

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        while True:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                return None
            try:
                # A put may be writing over this file for another key if a swap took it out of this name
                # after the open: wait for that write, and read only if the file is still this name's.
                fcntl.flock(fd, fcntl.LOCK_SH)
                try:
                    still = os.stat(path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    still = False
                if still:
                    return _read_all(fd)
            finally:
                os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _remove_spares(spares: dict[str, deque[str]]) -> None:
    for kept in spares.values():
        for name in kept:
            with contextlib.suppress(OSError):
                os.unlink(name)
