"""A shard's JSON lines parsed ahead of the predictor: the worker's batches arrive parsed.

Parsing is the job's largest cost besides the predictor (an MNIST-sized item of 784 floats is some
20 us of orjson, 4% of the CNN's forward; a short text 0.25 us, 7% of the sentiment example's
predictor). Large items are parsed in a thread: a predictor that spends its time in torch (or numpy,
or any C code that releases the GIL) runs its forward while the thread parses the next block, so that
cost leaves the worker's clock where a second core is free. Small items are parsed in line (see
`threaded`), a batch at a time as the worker asks (a 64 KiB block at a time measured 3-8% more CPU
an item for them). The thread parses a block of whole batches (some 64 KiB of JSON) per queue
hand-off, so the hand-off is paid once a block; either way by one `map(orjson.loads, ...)` call, some
15% less than a call per line from a comprehension.

A batch with a line that is not JSON arrives as None: the worker's item-by-item path parses that
batch again and reports the line under on_error. Nothing here writes or decides anything.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import orjson

BLOCK_BYTES = 64 << 10  # JSON parsed per hand-off (whole batches, at least one): parsed objects still in cache when used
THREAD_BYTES = 1024  # items this large on average (tensors, embeddings) are parsed in the thread; smaller ones in line


def _per_item(lines: list[bytes], start: int, size: int) -> int:
    sample = lines[start:start + size]
    return max(1, sum(map(len, sample)) // max(1, len(sample)))


def threaded(lines: list[bytes], start: int, batch_size: int) -> bool:
    """Whether to parse in a thread: for large items. A short line parses in a fraction of a microsecond and the
    thread's GIL hand-offs with a pure-Python predictor cost about what it saves (the sentiment example: 3% more CPU
    an item with the thread, measured in docs/guides/batch.md); 784 floats take some 20 us, which a predictor in
    torch or numpy (which release the GIL) overlaps with its forward."""
    return _per_item(lines, start, batch_size) >= THREAD_BYTES


_DONE = object()


def parse(chunk: list[bytes]) -> list[Any] | None:
    """A batch's lines parsed in one call, or None if one of them is not JSON (the worker finds which)."""
    try:
        return list(map(orjson.loads, chunk))
    except orjson.JSONDecodeError:
        return None


class Prefetch:
    """Batches `lines[start:]` of `batch_size`, each as (offset, its lines, payloads or None), parsed by a thread."""

    def __init__(self, lines: list[bytes], start: int, batch_size: int, thread: bool = True):
        self._lines, self._start, self._size = lines, start, batch_size
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=2 if thread else 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._parse, name="mlkit-job-prefetch", daemon=True) if thread else None
        if self._thread is not None:
            self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _parse(self) -> None:
        try:
            self._blocks()
        except BaseException as exc:  # noqa: BLE001 - handed to the worker, which raises it as its own
            self._put(exc)

    def _blocks(self) -> None:
        for block in self._iter_blocks():
            if not self._put(block):
                return
        self._put(_DONE)

    def _iter_blocks(self) -> Iterator[list[tuple[int, list[bytes], list[Any] | None]]]:
        lines, size = self._lines, self._size
        block = max(size, BLOCK_BYTES // _per_item(lines, self._start, size) // size * size)
        pos = self._start
        while pos < len(lines):
            end = min(len(lines), pos + block)
            batches: list[tuple[int, list[bytes], list[Any] | None]] = []
            parsed = parse(lines[pos:end])  # None: some line in the block is not JSON: find its batch, parse the others
            for b in range(pos, end, size):
                chunk = lines[b:min(b + size, end)]
                payloads = parsed[b - pos:b - pos + len(chunk)] if parsed is not None else parse(chunk)
                batches.append((b, chunk, payloads))
            yield batches
            pos = end

    def __iter__(self) -> Iterator[tuple[int, list[bytes], list[Any] | None]]:
        if self._thread is None:
            yield from self._inline()
            return
        while True:
            got = self._queue.get()
            if got is _DONE:
                return
            if isinstance(got, BaseException):
                raise got
            yield from got

    def _inline(self) -> Iterator[tuple[int, list[bytes], list[Any] | None]]:
        """Each batch parsed in the caller's thread as it asks for it: the parsed items are still in cache when
        the predictor reads them (a block at a time measured 3% more CPU an item for the sentiment example)."""
        lines, size = self._lines, self._size
        for b in range(self._start, len(lines), size):
            chunk = lines[b:b + size]
            yield b, chunk, parse(chunk)

    def close(self) -> None:
        """Stop the thread (the worker stopped early: a failed item, a fatal error) and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
