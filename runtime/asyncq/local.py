"""The embedded queue and the results folder: an async API on a laptop (`mlkit serve`), nothing to install.

The queue lives in the process (front and worker share it), with the cloud queues' semantics: a
received message is hidden for the visibility timeout and comes back if it is not deleted. It is
not durable across a restart; the results folder is.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
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
    """Objects as files under a folder, each written whole (a temporary file, then a rename)."""

    parallel_puts = 1

    def __init__(self, root: str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        # Paths as strings: pathlib's joins cost about as much as the system calls of a small record's write.
        self._root = os.fspath(self.root)
        # Temporary names unique to this store (two processes may share a folder), without mkstemp's
        # random tries and file object: a record write is most of a fast model's request on the async path.
        self._tag = f".tmp-{os.getpid()}-{secrets.token_hex(4)}-"
        self._serial = itertools.count()

    def _path(self, key: str) -> str:
        if not KEY.fullmatch(key):
            raise ValueError(f"not a store key: {key[:80]!r}")
        return f"{self._root}/{key}"

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = f"{path.rpartition('/')[0]}/{self._tag}{next(self._serial)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileNotFoundError:  # the first object under this prefix (or the folder was removed)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(tmp, flags, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            file_swap.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def get(self, key: str) -> bytes | None:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
