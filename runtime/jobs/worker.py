"""Run a predictor over one shard of a job: batches through `predict_batch` (or `predict`), results
committed in parts as it goes, the shard's output and done marker at the end.

Resuming: every `checkpoint_s` the items processed so far are written as one part (its name is the
index of its first item) and then the shard's progress (the next item and the committed parts). A
worker killed at any point leaves committed parts and a progress that names only those; the retry
starts at that progress, and a part it writes again replaces the uncommitted one of the same name.
So each item's result is written exactly once, whatever the kills.

Per-item errors: a batch that raises is run again item by item to find the item at fault; that item
(or a line that is not JSON, or an item the predictor's Input refuses where the items were not
checked before sharding: job.json's `checked`) fails the shard (`on_error: fail`, retried by the
Job) or goes to the shard's errors file (`skip`). An exception named in `fatal_errors` fails the shard at once with
FATAL_EXIT, which the Job's pod failure policy turns into "do not retry this shard".
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from .. import input_form
from ..predictor import one_per_payload
from .layout import Job, JobError, shard_key
from .prefetch import Prefetch, threaded
from .storage import StorageError, Store, split_uri

FATAL_EXIT = 42  # the podFailurePolicy's exit code for "fail this shard, no retries"
FAILED_EXIT = 1  # the shard failed; the Job retries it up to backoffLimitPerIndex
_DUMP = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


class ShardFailed(Exception):
    """An item failed under `on_error: fail`; the shard is retried from its progress."""


class FatalError(Exception):
    """The predictor raised an exception named in fatal_errors: the shard is not retried."""


@dataclass
class ShardReport:
    shard: int
    items: int
    ok: int
    failed: int
    seconds: float
    resumed_at: int  # the shard's item where this run started (0: from the start; items: it was already done)
    cpu_seconds: float = 0.0  # this process's CPU time on the shard: other processes on a shared machine do not inflate it


class Model:
    """The predictor instance, called synchronously on a list of payloads."""

    def __init__(self, instance: Any):
        self.instance = instance
        self._batch = getattr(instance, "predict_batch", None)
        self._one = getattr(instance, "predict", None)
        if self._batch is None and self._one is None:
            raise TypeError(f"{type(instance).__name__} has neither predict_batch(payloads) nor predict(payload)")
        self._loop: asyncio.AbstractEventLoop | None = None
        self.form = input_form.of(type(instance))  # the class's Input: items of a job not checked before sharding are checked here

    def _call(self, fn: Callable[..., Any], arg: Any) -> Any:
        out = fn(arg)
        if inspect.isawaitable(out):  # an async predictor: one loop for the worker's life
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
            out = self._loop.run_until_complete(out)
        return out

    def run(self, payloads: list[Any]) -> list[Any]:
        if self._batch is not None:
            return one_per_payload(self._call(self._batch, payloads), payloads)
        assert self._one is not None
        return [self._call(self._one, p) for p in payloads]


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:500]}"


def is_fatal(exc: BaseException, names: list[str]) -> bool:
    """Whether the exception's class, or a class it derives from, is named (bare or module-qualified)."""
    wanted = set(names)
    return any(c.__name__ in wanted or f"{c.__module__}.{c.__qualname__}" in wanted for c in type(exc).__mro__)


def _lines(raw: bytes) -> list[bytes]:
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def run_shard(store: Store, job: Job, shard: int, model: Model, checkpoint_s: float = 2.0, log: Callable[[str], None] | None = None) -> ShardReport:
    """Process one shard to its done marker; raise ShardFailed or FatalError when an item decides so."""
    started, cpu_started = time.monotonic(), time.process_time()
    if not 0 <= shard < job.shards:
        raise JobError(f"shard {shard}: job {job.id} has shards 0 to {job.shards - 1}")
    done = store.read(shard_key("done", shard))
    if done is not None:  # finished by an earlier attempt: nothing to do, nothing to write again
        marker = json.loads(done)
        return ShardReport(shard, marker["items"], marker["ok"], marker["failed"], 0.0, marker["items"])
    raw = store.read(shard_key("shards", shard))
    if raw is None:
        raise JobError(f"{store.uri}/{shard_key('shards', shard)}: missing; the job's input was not split into this prefix")
    lines = _lines(raw)
    work = f"work/{shard:05d}"
    progress_raw = store.read(f"{work}/progress.json")
    progress: dict[str, Any] = json.loads(progress_raw) if progress_raw else {"next": 0, "parts": [], "ok": 0, "failed": 0}
    first_index = shard * job.shard_size
    pos: int = progress["next"]
    resumed_at = pos
    results: list[bytes] = []  # result lines, a batch's at a time from the fast path
    counted = [0]  # the items in `results`
    errors: list[bytes] = []
    part_start = pos
    last_commit = time.monotonic()
    form = None if job.checked or job.form != "jsonl" else model.form  # as `mlkit job run` checks before sharding

    def commit() -> None:
        nonlocal part_start, last_commit
        if pos == part_start:
            return
        name = f"{work}/{part_start:09d}"
        store.write(f"{name}.results.jsonl", b"".join(results))
        store.write(f"{name}.errors.jsonl", b"".join(errors))
        progress["parts"].append(part_start)
        progress["next"] = pos
        progress["ok"] += counted[0]
        progress["failed"] += len(errors)
        store.write(f"{work}/progress.json", json.dumps(progress).encode())  # after the part: it commits it
        results.clear()
        errors.clear()
        counted[0] = 0
        part_start, last_commit = pos, time.monotonic()
        if log:
            log(f"shard {shard}: {pos}/{len(lines)} items")

    def fail_item(offset: int, message: str, exc: BaseException | None) -> None:
        nonlocal pos
        index = first_index + offset
        if exc is not None and is_fatal(exc, job.fatal_errors):
            pos = offset
            commit()
            raise FatalError(f"shard {shard}, item {index} (line {index + 1}): {message} (a fatal error: not retried)")
        if job.on_error == "fail":
            pos = offset
            commit()  # what came before the item is kept; the retry starts at the item
            raise ShardFailed(f"shard {shard}, item {index} (line {index + 1}): {message}")
        errors.append(orjson.dumps({"index": index, "line": index + 1, "error": message}, option=_DUMP))

    def fast(offset0: int, payloads: list[Any]) -> bool:
        """A batch of parsed JSON lines the predictor takes whole and whose results are JSON: the common case,
        kept lean (the item-by-item path below is what a line, an item or a result at fault needs)."""
        if form is not None and any(input_form.problem(form, p) for p in payloads):
            return False  # the item-by-item path names the misfit
        try:
            out = model.run(payloads)
            base = first_index + offset0
            done = result_lines(base, out)
        except Exception:
            return False  # run again item by item, to find the one at fault
        results.append(done)
        counted[0] += len(out)
        return True

    # JSONL batches arrive parsed (prefetch.py: a block ahead in a thread for large items); files are read item by item.
    feed = Prefetch(lines, pos, job.batch_size, thread=threaded(lines, pos, job.batch_size)) if job.form == "jsonl" else None
    batches = iter(feed) if feed is not None else ((o, lines[o:o + job.batch_size], None) for o in range(pos, len(lines), job.batch_size))
    try:
        for offset0, chunk, parsed in batches:
            if parsed is not None and fast(offset0, parsed):
                pos = offset0 + len(chunk)
                if time.monotonic() - last_commit >= checkpoint_s:
                    commit()
                continue
            payloads: list[Any] = []
            slots: list[int] = []  # offsets of the items that decoded
            extras: dict[int, dict[str, Any]] = {}
            bad: dict[int, tuple[str, BaseException | None]] = {}
            for k, line in enumerate(chunk):
                offset = offset0 + k
                try:
                    if job.form == "files":
                        uri = orjson.loads(line)
                        file_store, key = split_uri(uri)
                        data = file_store.read(key)
                        if data is None:
                            raise FileNotFoundError(f"{uri}: no such file")
                        payloads.append(data)
                        extras[offset] = {"file": uri}
                    else:
                        item = orjson.loads(line)
                        if form is not None and (misfit := input_form.problem(form, item)):
                            bad[offset] = (f"does not fit the predictor's Input: {misfit}", None)
                            continue
                        payloads.append(item)
                    slots.append(offset)
                except orjson.JSONDecodeError as exc:
                    bad[offset] = (f"line {first_index + offset + 1} is not JSON: {exc}", None)
                except (OSError, StorageError) as exc:
                    bad[offset] = (describe(exc), exc)
            outcomes: dict[int, tuple[bool, Any]] = {}
            if payloads:
                try:
                    for offset, result in zip(slots, model.run(payloads), strict=True):
                        outcomes[offset] = (True, result)
                except Exception as exc:
                    if is_fatal(exc, job.fatal_errors) or len(payloads) == 1:
                        if len(payloads) == 1:
                            outcomes[slots[0]] = (False, exc)
                        else:
                            pos = offset0
                            commit()
                            raise FatalError(f"shard {shard}, items {first_index + offset0} to {first_index + offset0 + len(chunk) - 1}: "
                                             f"{describe(exc)} (a fatal error: not retried)") from exc
                    else:  # find the item at fault: each alone
                        for offset, payload in zip(slots, payloads, strict=True):
                            try:
                                outcomes[offset] = (True, model.run([payload])[0])
                            except Exception as one:
                                outcomes[offset] = (False, one)
            for k in range(len(chunk)):
                offset = offset0 + k
                if offset in bad:
                    fail_item(offset, *bad[offset])
                    continue
                ok, value = outcomes[offset]
                if not ok:
                    fail_item(offset, describe(value), value)
                    continue
                try:
                    results.append(orjson.dumps({"index": first_index + offset, **extras.get(offset, {}), "result": value}, option=_DUMP))
                    counted[0] += 1
                except TypeError as exc:
                    fail_item(offset, f"the result is not JSON: {exc}", None)
            pos = offset0 + len(chunk)
            if time.monotonic() - last_commit >= checkpoint_s:
                commit()
    finally:
        if feed is not None:
            feed.close()
    commit()
    return _finish(store, job, shard, progress, len(lines), time.monotonic() - started, resumed_at, time.process_time() - cpu_started)


# Between two items of one orjson.dumps of a batch's result lines: `},{"index":`. It cannot occur inside a JSON string
# (its quote would be escaped), so only a result holding an object that starts with an "index" key can add one.
_BETWEEN = b'},{"index":'


def result_lines(base: int, results: list[Any]) -> bytes:
    """`{"index": N, "result": R}` lines of a batch's results, one orjson.dumps call for the batch.

    Each orjson.dumps call costs some 1.7 us of CPU whatever its size (orjson 3.13, measured in
    benchmarks/results/batch-cpu.md), half of what the sentiment example's predictor spends on an item; one
    call for the batch, then its items' separators turned into newlines, costs 0.06 us an item. The split is
    exact when the separator occurs exactly once between each two items (each boundary holds one); a
    result that holds it too is written item by item instead."""
    if len(results) == 1:
        return orjson.dumps({"index": base, "result": results[0]}, option=_DUMP)
    # zip over a range: half the cost of enumerate plus an addition per item (0.11 against 0.21 us)
    body = orjson.dumps([{"index": i, "result": r} for i, r in zip(range(base, base + len(results)), results, strict=True)], option=orjson.OPT_SERIALIZE_NUMPY)
    if body.count(_BETWEEN) != len(results) - 1:
        return b"".join(orjson.dumps({"index": base + k, "result": r}, option=_DUMP) for k, r in enumerate(results))
    return body[1:-1].replace(_BETWEEN, b'}\n{"index":') + b"\n"


def _finish(store: Store, job: Job, shard: int, progress: dict[str, Any], items: int, seconds: float, resumed_at: int, cpu: float) -> ShardReport:
    """Join the committed parts into the shard's output, then the marker, then drop the parts."""
    work = f"work/{shard:05d}"
    results, errors = [], []
    for start in progress["parts"]:
        results.append(store.read(f"{work}/{start:09d}.results.jsonl") or b"")
        errors.append(store.read(f"{work}/{start:09d}.errors.jsonl") or b"")
    store.write(shard_key("results", shard), b"".join(results))
    if any(errors):
        store.write(shard_key("errors", shard), b"".join(errors))
    report = ShardReport(shard, items, progress["ok"], progress["failed"], round(seconds, 3), resumed_at, round(cpu, 3))
    store.write(shard_key("done", shard), json.dumps(asdict(report)).encode())
    for key in store.list(work):
        store.delete(key)
    return report
