"""Tensor bytes from a front to the model process through shared memory rather than the link's socket.

Each front owns one region: an anonymous memory file (memfd) the parent makes before it forks the
model processes and the fronts, so both sides inherit the descriptor and map the same pages; the
front and the model process both map it read-write. A memfd has no name: nothing is ever in
/dev/shm, and its pages go when the last process that maps it exits, however it exits (SIGKILL
included), so there is nothing to unlink.

A payload is pickled (protocol 5) with a buffer_callback: every contiguous buffer of at least
THRESHOLD bytes (numpy arrays, bytearrays) is copied into a free slot of the region and leaves the
pickle out of band; smaller ones stay in it, since below that size a copy through the socket costs
less than the bookkeeping. The message carries each slot's (offset, length); the model process
unpickles with memoryviews of its own mapping, so np.frombuffer-style arrays see the front's bytes
without a copy. They are writable, as a single process's are: a predictor that changes its input in
place writes to a slot nobody else uses until the call is answered.

Lifetime: a slot is freed only when the model process has answered the call that used it (its
"ok" or "err", or a stream's "end" or "err"; a cancelled stream is answered "end" once it stopped).
Arrays handed to a predictor are valid for the call only: a predictor that keeps one past its call
must copy it (docs/guides/processes.md). When the region is full, a payload goes through the socket
as it would without shared memory.

Answers come back through the socket: a result is encoded by the front once (JSON or OIP binary),
so shared memory would save one copy of it at the price of a "release" message per answer and a
second allocator in the model process; results are mostly small (scores, classes, logits).
"""

from __future__ import annotations

import io
import mmap
import os
import pickle
import sys
from collections.abc import Callable
from typing import Any

THRESHOLD = 64 * 1024  # smaller buffers stay in the pickle
ALIGN = 64  # slots start on a cache line, so an array's data is aligned as numpy's own would be

Slots = list[tuple[int, int]]


def aligned(length: int) -> int:
    """The bytes a slot of `length` takes: rounded up to ALIGN."""
    return -(-length // ALIGN) * ALIGN


def create(size: int) -> int:
    """A region's descriptor, inheritable by the processes forked after it; pages are only taken when written."""
    fd = os.memfd_create("mlkit-front", os.MFD_CLOEXEC)
    os.ftruncate(fd, size)
    os.set_inheritable(fd, True)
    return fd


class _Pickler(pickle.Pickler):
    """Pickles a CPU torch tensor as the numpy array over its memory (torch.from_numpy on the other side,
    no copy there either): torch's own pickling writes the storage's bytes into the pickle."""

    def reducer_override(self, obj: Any) -> Any:
        torch = sys.modules.get("torch")  # only a predictor that asked for torch tensors imported it
        if torch is not None and type(obj) is torch.Tensor and obj.device.type == "cpu" and not obj.requires_grad:
            try:
                return torch.from_numpy, (obj.numpy(),)
            except (TypeError, RuntimeError):  # a dtype numpy has no form for (bfloat16): torch's way
                pass
        return NotImplemented


def dumps(payload: Any, buffer_callback: Callable[[pickle.PickleBuffer], bool]) -> bytes:
    out = io.BytesIO()
    _Pickler(out, protocol=5, buffer_callback=buffer_callback).dump(payload)
    return out.getvalue()


class Region:
    """A front's region: slots taken and freed first-fit over a sorted free list. Used from the front's
    event loop only, so it takes no lock."""

    def __init__(self, fd: int, size: int) -> None:
        self.map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.view = memoryview(self.map)
        self.size = size
        self.free: list[tuple[int, int]] = [(0, size)]  # (offset, length), sorted, never adjacent
        self.held: dict[Any, Slots] = {}  # call (link, id) -> its slots, until the model process answered it
        self.full = 0  # payloads sent through the socket because the region had no room (for tests and logs)

    def take(self, length: int) -> int | None:
        need = aligned(length)
        for k, (offset, free) in enumerate(self.free):
            if free >= need:
                if free == need:
                    del self.free[k]
                else:
                    self.free[k] = (offset + need, free - need)
                return offset
        return None

    def give(self, offset: int, length: int) -> None:
        need = aligned(length)
        k = 0
        while k < len(self.free) and self.free[k][0] < offset:
            k += 1
        self.free.insert(k, (offset, need))
        if k + 1 < len(self.free) and offset + need == self.free[k + 1][0]:  # joins the next block
            self.free[k] = (offset, need + self.free[k + 1][1])
            del self.free[k + 1]
        if k > 0 and self.free[k - 1][0] + self.free[k - 1][1] == offset:  # and the previous one
            self.free[k - 1] = (self.free[k - 1][0], self.free[k - 1][1] + self.free[k][1])
            del self.free[k]

    def pack(self, call: Any, payload: Any) -> tuple[bytes, Slots]:
        """The payload's pickle (the link's whole message) and the slots of its large buffers, held for
        `call` (none: all of it is in the pickle, sent through the socket as any message)."""
        slots: Slots = []

        def place(buffer: pickle.PickleBuffer) -> bool:
            raw = buffer.raw()
            if raw.nbytes < THRESHOLD:
                return True  # in band
            offset = self.take(raw.nbytes)
            if offset is None:
                self.full += 1
                return True
            self.view[offset:offset + raw.nbytes] = raw
            slots.append((offset, raw.nbytes))
            return False

        try:
            data = dumps(payload, place)
        except BaseException:
            self.release_slots(slots)
            raise
        if slots:
            self.held[call] = slots
        return data, slots

    def release(self, call: Any) -> None:
        """The model process answered `call`: its slots may be written again."""
        slots = self.held.pop(call, None)
        if slots:
            self.release_slots(slots)

    def release_slots(self, slots: Slots) -> None:
        for offset, length in slots:
            self.give(offset, length)


class Mapped:
    """A front's region as the model process sees it, mapped once at start."""

    def __init__(self, fd: int, size: int) -> None:
        self.map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.view = memoryview(self.map)

    def unpack(self, data: bytes, slots: Slots) -> Any:
        return pickle.loads(data, buffers=[self.view[offset:offset + length] for offset, length in slots])
