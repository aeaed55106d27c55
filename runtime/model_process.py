"""The model process of a runtime with several HTTP fronts (runtime/fronts.py): it loads the predictor
once, warms it up, and answers every front over its link (runtime/model_link.py), batching across
all of them. It ignores SIGTERM and SIGINT: it exits when the last front has closed its link, so that
it is the last to go and every request a front admitted is answered.

No event loop between a link and a sync model: two threads take turns waiting on every link at once
(epoll); the one that reads a batch while none runs runs it (a sync `predict_batch`) and writes each
answer, while the other waits for the next messages (serve() says why two threads, and why in
turns). A batch never waits for more: a lone request leaves at once, and under load the next batch
fills from every front while one runs (waiting for requests the fronts had admitted but not yet
sent, as one process waits for its own, idled the model's core while the fronts were the
bottleneck: c=64 fell from 0.99 to 0.68 of the bare forward). A sync `predict` without
predict_batch goes to the thread pool (max_in_flight threads), as in a single process, since such
predictors may run side by side. Everything else (async methods, `generate`, token counts, streamed
results) runs on an event loop in a third thread, as in a single process. The loop and the executor
handoff it replaced were most of the CPU a request cost here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import os
import selectors
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

import orjson

from . import input_form, logs, streaming
from .admission import Admission
from .batching import Batcher, RequestState, current
from .errors import PredictorLoadError
from .metrics import Metrics
from .model_link import LinkEnd, describe, error_to_wire, frame
from .predictor import Predictor, construct, load_class
from .settings import Settings
from .shared_buffers import Mapped
from .startup import Startup

Call = tuple[int, LinkEnd, int, Any]  # the front, its link, the call's id there, the payload

# How long an idle model process polls its links before it sleeps in epoll. A lone request's message
# reached a sleeping reader about 50 µs later than a polling one (the wake-up of the idle core,
# benchmarks/serving/fronts.py --latency); at one request at a time the next message comes some
# 450 µs after the answer, within this bound.
SPIN_S = 0.001


def spins() -> bool:
    """Whether to poll before sleeping: only where this process is pinned to one CPU (the predictor or
    the pod pinned it there), so that the polling takes no time another process on that CPU, or a
    CPU quota shared with the fronts, would have had. Elsewhere it sleeps at once, as before."""
    try:
        return len(os.sched_getaffinity(0)) == 1
    except (AttributeError, OSError):  # no affinity calls (not Linux)
        return False


class ModelServer:
    def __init__(self, settings: Settings, instance: Any, regions: list[Mapped] | None = None) -> None:
        self.settings = settings
        self.instance = instance
        self.regions = regions or []  # each front's shared memory, by front number
        self.executor = ThreadPoolExecutor(max_workers=max(1, settings.max_in_flight), thread_name_prefix="predict")
        self.predictor = Predictor(instance, self.executor)
        self.input_form = input_form.of(type(instance))  # POST /predict's check, asked by the fronts ("check")
        # Counted in the pod's one metrics view (prometheus multiprocess files): batch sizes are seen here.
        self.metrics = Metrics(Admission(1, 0))
        p = self.predictor
        self.batches_here = p.batches and not p.batch_is_async  # formed by the thread that reads the links, run by the model thread
        self.predicts_in_pool = not p.batches and p._predict is not None and not p.predict_is_async
        self.loop = asyncio.new_event_loop()
        self.loop_thread = threading.Thread(target=self.loop.run_forever, name="mlkit-model-loop", daemon=True)
        self.loop_thread.start()
        self.batcher: Batcher | None = None  # an async predict_batch's, on the loop
        self.streams: dict[tuple[int, int], asyncio.Task[None]] = {}  # touched on the loop only
        self.work: set[concurrent.futures.Future[Any]] = set()  # answers still running off this thread
        self.work_lock = threading.Lock()

    def on_loop(self, coroutine: Coroutine[Any, Any, Any]) -> concurrent.futures.Future[Any]:
        return self.track(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def track(self, future: concurrent.futures.Future[Any]) -> concurrent.futures.Future[Any]:
        with self.work_lock:
            self.work.add(future)

        def done(f: concurrent.futures.Future[Any]) -> None:
            with self.work_lock:
                self.work.discard(f)

        future.add_done_callback(done)
        return future

    def warmup(self) -> None:
        self.on_loop(self.predictor.warmup()).result()

    def run(self, socks: list[socket.socket]) -> None:
        if self.predictor.batches and self.predictor.batch_is_async:
            async def start() -> Batcher:
                batcher = Batcher(self.predictor, self.settings.max_batch_size, self.settings.max_wait_ms, self.metrics)
                batcher.start()
                return batcher

            self.batcher = self.on_loop(start()).result()
        s = self.settings
        mode = f"batching up to {s.max_batch_size} across fronts" if self.predictor.batches else "no batching (no predict_batch)"
        pinned = f" on CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}" if "CUDA_VISIBLE_DEVICES" in os.environ else ""
        logs.log.info("model process %d ready%s: %s", os.getpid(), pinned, mode)
        self.serve([LinkEnd(sock) for sock in socks])
        logs.log.info("model process %d: all %d fronts closed their links; exiting", os.getpid(), len(socks))
        while True:  # the front closed its link: it has nothing waiting, but let what runs end
            with self.work_lock:
                running = list(self.work)
            if not running:
                break
            concurrent.futures.wait(running)
        if self.batcher is not None:
            self.on_loop(self.batcher.stop()).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.loop_thread.join()
        self.executor.shutdown(wait=True)

    def serve(self, ends: list[LinkEnd]) -> None:
        """Until every front has closed its link: read what arrived, run batches, answer. Two threads
        take turns (leader/follower): the one whose turn it is waits on every link; when what it read
        makes a batch and no batch runs, it hands the turn to the other thread and runs that batch
        itself, then every batch that formed meanwhile, and waits for the turn again. A lone request
        is read and run by one thread, with no hand-off between them on its way (a hand-off was a
        futex wake, the GIL passed over and a second wake-up to say the batch was done), and the
        thread that waits for the next message is never the one running a forward: Linux's scheduler
        (EEVDF) wakes a thread that just ran one only when its turn comes, so a thread that read and
        ran everything alone answered a lone request in twice the time under other load
        (benchmarks/serving/fronts.py). Under load the batches form from every front while one runs."""
        selector = selectors.DefaultSelector()
        for front, end in enumerate(ends):
            selector.register(end.sock, selectors.EVENT_READ, (front, end))
        turn = threading.Lock()  # held by the thread that waits on the links
        state = threading.Lock()  # guards pending and running
        pending: deque[Call] = deque()  # predict calls for the next batch
        running = False  # a thread runs batches: what is read meanwhile joins pending, and it takes them next
        open_links = len(ends)
        size = self.settings.max_batch_size

        def take() -> list[Call]:
            return [pending.popleft() for _ in range(min(size, len(pending)))]

        # Polled briefly before sleeping (see spins() and SPIN_S) while requests come one at a time and
        # close together: the last run of batches was one lone call, and its message came within SPIN_S of the model
        # falling idle (or while it was busy). Not under load: there a reader that sleeps wakes to several
        # messages, one batch, where a polling one took the first alone (c=64 lost 10-15% of its
        # throughput to batches of one). The reader sleeps in epoll while a batch runs (polling would
        # take the core from the forward): the thread that ran it wakes it through `wake` when it falls
        # idle, so that it polls from then on.
        spin = spins()
        dense = False
        lone = False  # the last batch was one call
        idle_since = 0.0  # when the last batch ended
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        selector.register(wake_r, selectors.EVENT_READ, None)

        # Where this process has one CPU (`spin`), nobody waits on the links while a batch runs: the thread
        # that runs batches reads what came meanwhile between them (`collect` of a poll), and the other
        # waits on `wake` alone until the model falls idle. On one CPU a reader that woke for each
        # message took that CPU from the forward (a context switch, an epoll and a recv a message, and
        # the forward's caches) and gained nothing: the next batch cannot start before the forward
        # ends. Elsewhere (several CPUs, a GPU's forward) the reader works beside the forward, as before.
        hold = spin
        woken = selectors.DefaultSelector()  # the wake alone: where a holding process's reader waits while a batch runs
        woken.register(wake_r, selectors.EVENT_READ, None)

        def wait() -> list[tuple[selectors.SelectorKey, int]]:
            nonlocal dense
            if hold and running:  # read by the runner between batches: wait until it falls idle
                woken.select()
                try:
                    os.read(wake_r, 64)
                except BlockingIOError:  # read by the runner's poll meanwhile
                    pass
                if not open_links:  # the runner saw the last link close
                    return []
            if dense and lone and not running and not self.work:  # idle, with nothing on other threads to take the core or the GIL from
                deadline = time.perf_counter() + SPIN_S
                while time.perf_counter() < deadline:
                    events = selector.select(0)
                    if events:
                        return events
            events = selector.select()
            dense = spin and (running or time.perf_counter() - idle_since < SPIN_S)
            return events

        def collect(events: list[tuple[selectors.SelectorKey, int]]) -> deque[Call]:
            """What the links that `events` name hold: predict calls returned, other messages dispatched,
            closed links dropped, the wake consumed."""
            nonlocal open_links
            arrived: deque[Call] = deque()
            for key, _ in events:
                if key.data is None:  # the wake: the model fell idle, poll from now
                    os.read(wake_r, 64)
                    continue
                front, end = key.data
                for message in end.read():
                    self.dispatch(front, end, message, arrived)
                if not end.open:
                    selector.unregister(end.sock)
                    open_links -= 1
            return arrived

        def read() -> list[Call] | None:
            """Wait on the links until a batch is due and none runs (it is returned, and running set)
            or every link is closed (None). Called holding the turn."""
            nonlocal running
            while open_links:
                arrived = collect(wait())
                with state:
                    pending.extend(arrived)
                    if pending and not running:
                        running = True
                        return take()
            return None

        def run(batch: list[Call]) -> None:
            """This batch, then every batch that formed while it ran, until none is left."""
            nonlocal running, idle_since, lone
            calls = 0  # in this run of batches
            while True:
                calls += len(batch)
                try:
                    self.run_batch(batch)
                except Exception as exc:  # the runtime's own fault: the callers get a 500, the next batch runs
                    logs.log.error("the model process failed to answer a batch\n%s", logs.format_exception(exc))
                    for _, end, i, _ in batch:
                        end.send((i, "err", error_to_wire(exc)))
                arrived = collect(selector.select(0)) if hold and open_links else None
                with state:
                    if arrived:
                        pending.extend(arrived)
                    if not pending:
                        running = False
                        idle_since = time.perf_counter()
                        lone = calls == 1  # one call, and nothing came while it ran: not a straggler after a batch
                        break
                    batch = take()
            if hold or (dense and lone):  # the reader waits on the wake alone (hold), or sleeps in epoll and should poll
                try:
                    os.write(wake_w, b"w")
                except BlockingIOError:  # wakes already waiting to be read
                    pass

        finished = False

        def take_turns() -> None:
            nonlocal finished
            while True:
                with turn:  # released before the batch runs: the other thread reads meanwhile
                    if finished:
                        return
                    batch = read()
                    if batch is None:
                        finished = True  # every link closed; what was read is run (the turn's holder never leaves pending behind)
                        return
                run(batch)

        other = threading.Thread(target=take_turns, name="mlkit-model")
        other.start()
        take_turns()
        other.join()
        selector.close()
        woken.close()
        os.close(wake_r)
        os.close(wake_w)

    def dispatch(self, front: int, end: LinkEnd, message: tuple[Any, ...], pending: deque[Call]) -> None:
        i, op, *args = message
        if op == "json":  # a request's JSON body, checked by the front: parsed as the front parsed it (payloads.parse_json)
            try:
                op, args = "predict", [orjson.loads(args[0])]
            except Exception as exc:
                end.send((i, "err", error_to_wire(exc)))
                return
        if op == "shm":  # a predict message whose large buffers are in the front's region: views of it, not copies
            try:
                i, op, *args = self.regions[front].unpack(*args)
            except Exception as exc:
                end.send((i, "err", error_to_wire(exc)))
                return
        if op == "predict" and self.batches_here:
            pending.append((front, end, i, args[0]))
        elif op == "predict" and self.predicts_in_pool:
            self.track(self.executor.submit(self.alone, front, end, i, args[0], self.predictor.predict_sync, 0))
        elif op == "check":
            try:
                result = input_form.problem(self.input_form, args[0]) if self.input_form is not None else None
            except Exception as exc:
                end.send((i, "err", error_to_wire(exc)))
                return
            end.send((i, "ok", result, 0))
        elif op == "cancel":
            self.loop.call_soon_threadsafe(self.cancel, front, i)
        else:
            self.on_loop(self.answer(front, i, op, args, end))

    def cancel(self, front: int, i: int) -> None:
        task = self.streams.pop((front, i), None)
        if task is not None:
            task.cancel()

    def run_batch(self, batch: list[Call]) -> None:
        try:
            self.answer_batch(batch)
        finally:
            # Counted once the answers are on their way: the pod's metrics live in files (prometheus'
            # multiprocess mode), an observation is a lock, a pid check and writes into them.
            self.metrics.batch_size.observe(len(batch))

    def answer_batch(self, batch: list[Call]) -> None:
        try:
            results = self.predictor.predict_batch_sync([payload for _, _, _, payload in batch])
        except Exception as exc:
            if len(batch) == 1:
                _, end, i, _ = batch[0]
                end.send((i, "err", error_to_wire(exc)))
                return
            # Rule (runtime/batching.py): one payload the predictor cannot take fails only its own
            # request: each is run again alone, side by side in the pool.
            def one(payload: Any) -> Any:
                return self.predictor.predict_batch_sync([payload])[0]

            list(self.executor.map(lambda call: self.alone(call[0], call[1], call[2], call[3], one, 1), batch))
            return
        # One write a front: a batch's answers to one front go in one send (one wake-up of that front,
        # one syscall here) rather than one each.
        frames: dict[LinkEnd, list[bytes]] = {}
        for (front, end, i, _), result in zip(batch, results, strict=True):
            if streaming.is_generator(result):
                self.reply(front, end, i, result, len(batch))
            else:
                frames.setdefault(end, []).append(answer_frame(i, result, len(batch)))
        for end, framed in frames.items():
            end.send_framed(framed)

    def alone(self, front: int, end: LinkEnd, i: int, payload: Any, run: Callable[[Any], Any], batch_size: int) -> None:
        """One call run by itself (`run`: a sync predict, or predict_batch of one), answered or its error sent."""
        try:
            result = run(payload)
        except Exception as exc:
            end.send((i, "err", error_to_wire(exc)))
            return
        self.reply(front, end, i, result, batch_size)

    def reply(self, front: int, end: LinkEnd, i: int, result: Any, batch_size: int) -> None:
        if streaming.is_generator(result):
            self.on_loop(self.stream(front, i, result, end))
            return
        end.send_framed([answer_frame(i, result, batch_size)])

    async def answer(self, front: int, i: int, op: str, args: list[Any], end: LinkEnd) -> None:
        state = RequestState()  # the batch size this request went in, for the front's access log
        current.set(state)
        try:
            if op == "predict":
                if self.batcher is not None:
                    result = await self.batcher.submit(args[0])
                else:
                    result = await self.predictor.predict(args[0])
            elif op == "generate":
                prompt, kwargs = args
                result = self.instance.generate(prompt, **kwargs)
                if inspect.iscoroutine(result):
                    result = await result
            elif op == "count":
                result = self.instance.count_tokens(args[0])
                if inspect.iscoroutine(result):
                    result = await result
            else:
                raise ValueError(f"unknown operation {op!r}")
        except Exception as exc:
            end.send((i, "err", error_to_wire(exc)))
            return
        if streaming.is_generator(result) or (op == "generate" and (hasattr(result, "__next__") or hasattr(result, "__anext__"))):
            await self.stream(front, i, result, end)
            return
        self.reply(front, end, i, result, state.batch_size)

    async def stream(self, front: int, i: int, result: Any, end: LinkEnd) -> None:
        """A generator's items as they come, until its end, an error, or the front's cancel."""
        end.send((i, "stream"))
        task = asyncio.current_task()
        assert task is not None
        self.streams[(front, i)] = task
        source = streaming.Source(result, self.executor)
        cancelled = False
        try:
            async for item in source:
                end.send((i, "chunk", item))
            end.send((i, "end"))
        except asyncio.CancelledError:
            cancelled = True
        except Exception as exc:
            end.send((i, "err", error_to_wire(exc)))
        finally:
            self.streams.pop((front, i), None)
            await source.aclose()
            if cancelled:  # the front's cancel confirmed once the generator is closed: the call's shared-memory slots may be reused
                end.send((i, "end"))


def answer_frame(i: int, result: Any, batch_size: int) -> bytes:
    """Call i's answer as a link frame; a result that cannot be pickled is answered with that error."""
    try:
        return frame((i, "ok", result, batch_size))
    except Exception as exc:
        return frame((i, "err", error_to_wire(TypeError(f"the result cannot be sent to the front: {exc}"))))


def main(settings: Settings, socks: list[socket.socket], front_ends: list[socket.socket], status: Connection, process_seconds: float | None,
         device: str | None = None, region_fds: list[int] | None = None) -> None:
    """The model process: load, tell the parent (`status`) the predictor's facts or the error, serve.
    `device`: the CUDA_VISIBLE_DEVICES it sees (one model process per device), set before the
    predictor imports torch; None leaves the pod's. `region_fds`: each front's shared memory
    (runtime/shared_buffers.py), mapped here once and the descriptors closed."""
    from .parent_death import die_with_parent

    die_with_parent()
    regions = []
    for fd in region_fds or []:
        regions.append(Mapped(fd, settings.shared_memory_mb << 20))
        os.close(fd)
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    for end in front_ends:  # the fronts' ends: held here, they would never report the fronts gone
        end.close()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logs.setup(settings.log_level)
    startup = Startup(Metrics(Admission(1, 0)).registry)
    if process_seconds is not None:
        startup._record("process", process_seconds)
    try:
        cls = load_class(settings.predictor)
        startup.end("imports")
        instance = construct(cls, settings.predictor_config(), settings.model_dir, settings.predictor.rpartition(":")[0])
        startup.end("construct")
        server = ModelServer(settings, instance, regions)
        try:
            server.warmup()
        except Exception as exc:
            where = settings.predictor.rpartition(":")[0]
            raise PredictorLoadError(f"{where}: warmup() failed: {exc.__class__.__name__}: {str(exc)[:300]}") from exc
        startup.end("warmup")
        status.send(("ready", describe(instance), startup.phases))
        status.close()
        server.run(socks)
    except PredictorLoadError as exc:
        status.send(("error", str(exc)))
        status.close()
