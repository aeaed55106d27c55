"""Worker mode: pull up to max_batch_size requests, run the predictor on them, write each result by
id, then delete them from the queue. A batch that runs longer than RUNNING_AFTER_S first has its
requests recorded `running`; a quicker one costs one record write per request.

While the predictor runs, the messages' visibility is extended, so a long prediction is not handed to
a second worker; a worker that dies stops extending, and its requests come back after the timeout.
A request whose predictor call fails is released for another attempt, and on its last attempt is
recorded `failed` with the predictor's error and dead-lettered. When a batch fails, its requests are
retried one by one, so that one poison request does not fail the others. On SIGTERM the worker stops
pulling and finishes what it holds (Runtime.stop gives it drain_timeout_s, then releases the rest).
"""

from __future__ import annotations

import asyncio
import binascii
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from .. import logs
from ..errors import PredictorRaised, Unreachable
from ..payloads import clip, parse_json, too_deep
from . import records
from .backend import Message, Queue, Store

if TYPE_CHECKING:
    from .host import Host

POLL_S = 1.0  # longest receive wait: bounds how long SIGTERM waits for the pull in progress
# A batch still running after this long gets its `running` records. A shorter one goes from `queued`
# straight to its final record: one store write per request instead of two, which is most of what a
# fast model's request costs on the async path (a record write is a file replace or an object PUT).
RUNNING_AFTER_S = 0.25


class Failed(Exception):
    """This request's predictor call failed; the message is what the record says."""


class Worker:
    def __init__(self, runtime: Host, queue: Queue, store: Store):
        self.runtime = runtime
        self.queue = queue
        self.store = store
        s = runtime.settings
        self.visibility_s = s.visibility_timeout_s
        self.max_attempts = s.max_attempts
        # Queue and store calls of a batch run side by side, apart from the predictor's threads.
        self.io = ThreadPoolExecutor(max_workers=max(4, min(32, s.max_batch_size)), thread_name_prefix="queue-io")
        self.held: list[Message] = []
        self.task: asyncio.Task[None] | None = None
        self.abandoned = False  # a predictor call outlived the drain timeout: its requests were released, its thread runs on

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name="async-worker")

    async def _io(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.io, fn, *args)

    async def run(self) -> None:
        rt = self.runtime
        while not rt.draining:
            try:
                messages = await self._receive(rt.settings.max_batch_size)
            except Unreachable as exc:
                logs.log.warning("worker: the queue did not answer (%s); trying again in 1 s", exc)
                await asyncio.sleep(1)
                continue
            if not messages:
                continue
            self.held = messages
            keeper = asyncio.create_task(self._keep(messages))
            try:
                await self._process(messages)
            except Unreachable as exc:  # not written, not deleted: the queue hands them out again after the timeout
                logs.log.warning("worker: %d requests left for another attempt: %s", len(messages), exc)
            except Exception as exc:  # the worker's own fault: the batch comes back after its timeout; keep pulling
                logs.log.error(
                    "worker: internal error on a batch of %d; it returns after the visibility timeout\n%s", len(messages), logs.format_exception(exc)
                )
                await asyncio.sleep(1)
            finally:
                keeper.cancel()
                self.held = []

    async def _receive(self, most: int) -> list[Message]:
        if not self.queue.blocking:  # in memory: what is there now without a hop to a thread, and wait in one only when empty
            got = self.queue.receive(most, 0)
            if got:
                return got
        messages: list[Message] = await self._io(self.queue.receive, most, POLL_S)
        return messages

    async def stop(self, timeout: float) -> None:
        """Called after SIGTERM (draining is set, so no more pulls): finish the batch held, or release it."""
        if self.task is None:
            return
        done, _ = await asyncio.wait({self.task}, timeout=timeout)
        if not done:
            held = list(self.held)
            self.abandoned = True
            self.task.cancel()
            if held:
                logs.log.warning("worker: drain timeout; releasing %d requests for another worker", len(held))
                try:
                    await self._io(self.queue.release, held)
                except Unreachable as exc:  # they come back after their visibility timeout anyway
                    logs.log.warning("worker: releasing failed (%s); they return after the visibility timeout", exc)
        self.io.shutdown(wait=False)

    async def _keep(self, messages: list[Message]) -> None:
        every = max(1.0, self.visibility_s / 3)
        while True:
            await asyncio.sleep(every)
            try:
                await self._io(self.queue.extend, messages, self.visibility_s)
            except Unreachable as exc:
                logs.log.warning("worker: extending visibility failed: %s", exc)

    async def _open(self, message: Message) -> tuple[dict[str, Any], Any]:
        envelope = records.open_envelope(message.body)
        depth = self.runtime.settings.max_json_depth
        if "payload" in envelope:  # JSON, parsed with the message; the message nests it one level deeper
            if too_deep(message.body, depth + 1):
                raise ValueError(f"its payload nests more than {depth} levels deep")
            return envelope, envelope["payload"]
        if "key" in envelope:
            raw = await self._io(self.store.get, envelope["key"])
            if raw is None:
                raise ValueError(f"its payload {envelope['key']} is not in the store")
        else:
            raw = binascii.a2b_base64(envelope["body"])  # what base64.b64decode does, without its copy of the text
        payload = parse_json(raw, depth) if envelope.get("json") else raw
        return envelope, payload

    async def _process(self, messages: list[Message]) -> None:
        rt = self.runtime
        started = records.now()
        work: list[tuple[Message, dict[str, Any], Any]] = []
        for message in messages:
            try:
                envelope, payload = await self._open(message)
            except Unreachable:
                raise
            except Exception as exc:  # not a request the front wrote: nothing to record it under
                logs.log.error("worker: dead-lettering a message that is not a request: %s", clip(str(exc), 200))
                await self._io(self.queue.dead_letter, message)
                continue
            work.append((message, envelope, payload))
            if (waited := records.seconds_since(envelope.get("created_at", ""))) is not None:
                rt.metrics.async_wait.observe(waited)
        if not work:
            return
        start = time.perf_counter()
        marker = _RunningMarker(self, work, started)
        try:
            outcomes = await self._predict([p for _, _, p in work])
        finally:
            # Before any final record: a `running` write still in flight must not land after `completed`.
            await marker.settle()
        finished = records.now()
        done: list[Message] = []
        results: list[tuple[str, bytes]] = []
        writes = []
        statuses = []
        for (message, envelope, _), outcome in zip(work, outcomes, strict=True):
            rid, created = envelope["id"], envelope["created_at"]
            if not isinstance(outcome, Failed):
                try:
                    data = records.record(
                        rid, "completed", created, started_at=started, finished_at=finished, attempt=message.attempt, **records.result_value(outcome)
                    )
                except TypeError as exc:  # what the predictor returned cannot be kept as JSON
                    self.runtime.metrics.predictor_errors.inc()
                    outcome = Failed(f"predictor error: {clip(str(exc), 500)}")
            statuses.append(500 if isinstance(outcome, Failed) else 200)
            if not isinstance(outcome, Failed):
                results.append((records.result_key(rid), data))
                done.append(message)
            elif message.attempt >= self.max_attempts:
                writes.append(self._fail(message, rid, created, started, finished, str(outcome)))
            else:
                logs.log.warning("request %s: attempt %d of %d failed: %s", rid, message.attempt, self.max_attempts, outcome)
                rt.metrics.async_retried.inc()
                writes.append(self._io(self.queue.release, [message]))
        if writes:
            await asyncio.gather(self._put_all(results), *writes)
        else:  # every request done: no task to gather them in
            await self._put_all(results)
        # Deleted only once every result is written: a crash before this line means a redelivery, never a loss.
        if done:
            if self.queue.blocking:
                await self._io(self.queue.delete, done)
            else:
                self.queue.delete(done)
            rt.metrics.async_completed.inc(len(done))
        if rt.settings.access_log:
            seconds = time.perf_counter() - start
            for (_, envelope, _), status in zip(work, statuses, strict=True):
                logs.access(envelope["id"], "worker", status, seconds, len(work))

    async def _put_all(self, items: list[tuple[str, bytes]]) -> None:
        """A batch's records in as many thread calls as the store runs side by side (one for a folder)."""
        groups = min(len(items), self.store.parallel_puts)
        if groups <= 1:
            if items:
                await self._io(self._put_each, items)
            return
        await asyncio.gather(*(self._io(self._put_each, items[i::groups]) for i in range(groups)))

    def _put_each(self, items: list[tuple[str, bytes]]) -> None:
        for key, data in items:
            self.store.put(key, data)

    async def _fail(self, message: Message, rid: str, created: str, started: str, finished: str, error: str) -> None:
        logs.log.error("request %s failed its last attempt (%d): %s", rid, message.attempt, error)
        await self._io(self.store.put, records.result_key(rid), records.record(
            rid, "failed", created, started_at=started, finished_at=finished, attempt=message.attempt, error=error
        ))
        await self._io(self.queue.dead_letter, message)
        self.runtime.metrics.async_failed.inc()

    async def _predict(self, payloads: list[Any]) -> list[Any]:
        """One outcome per payload: its result, or Failed with the predictor's error."""
        rt = self.runtime
        predictor = rt.predictor
        assert predictor is not None
        if predictor.batches:
            try:
                results = await predictor.predict_batch(payloads)
                rt.metrics.batch_size.observe(len(payloads))
            except PredictorRaised as exc:
                if len(payloads) == 1:
                    return [self._failure(exc)]
                # One bad request fails the whole batch: find it by running each alone.
                return [(await self._predict([p]))[0] for p in payloads]
        else:
            outcomes = await asyncio.gather(*(predictor.predict(p) for p in payloads), return_exceptions=True)
            results = [self._failure(o) if isinstance(o, PredictorRaised) else o for o in outcomes]
            for o in outcomes:
                if isinstance(o, BaseException) and not isinstance(o, PredictorRaised):
                    raise o
        if rt.monitor is not None:
            for r in results:
                if not isinstance(r, Failed):
                    rt.monitor.observe(r)
        return results

    def _failure(self, raised: BaseException) -> Failed:
        cause = raised.__cause__ or raised
        self.runtime.metrics.predictor_errors.inc()
        logs.log.error("predictor raised on a queued request\n%s", logs.format_exception(cause))
        return Failed(f"the predictor raised {type(cause).__name__}: {clip(str(cause), 500)}")


class _RunningMarker:
    """Writes a batch's `running` records once the batch has run for RUNNING_AFTER_S (a task beside the prediction)."""

    def __init__(self, worker: Worker, work: list[tuple[Message, dict[str, Any], Any]], started: str):
        self.worker = worker
        self.work = work
        self.started = started
        self.writing = False
        self.task = asyncio.create_task(self._mark())

    async def _mark(self) -> None:
        await asyncio.sleep(RUNNING_AFTER_S)
        self.writing = True
        await self.worker._put_all([
            (records.result_key(e["id"]), records.record(e["id"], "running", e["created_at"], started_at=self.started, attempt=m.attempt))
            for m, e, _ in self.work
        ])

    async def settle(self) -> None:
        """Cancel the marker if it has not begun writing; otherwise wait for its writes (their threads cannot be cancelled)."""
        if not self.writing:
            self.task.cancel()
            return
        try:
            await asyncio.shield(self.task)
        except Unreachable as exc:  # only a status shown while it ran: the final record follows
            logs.log.warning("worker: writing `running` records failed: %s", exc)
