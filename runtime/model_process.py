"""The model process of a runtime with several HTTP fronts (runtime/fronts.py): it loads the predictor
once, warms it up, and answers every front over its link (runtime/model_link.py), batching across
all of them. It ignores SIGTERM and SIGINT: it exits when the last front has closed its link, so that
it is the last to go and every request a front admitted is answered."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from . import input_form, logs, streaming
from .admission import Admission
from .batching import Batcher, RequestState, current
from .errors import PredictorLoadError
from .metrics import Metrics
from .model_link import Framed, connect, describe, error_to_wire
from .predictor import Predictor, construct, load_class
from .settings import Settings
from .startup import Startup


class ModelServer:
    def __init__(self, settings: Settings, instance: Any) -> None:
        self.settings = settings
        self.instance = instance
        self.executor = ThreadPoolExecutor(max_workers=max(1, settings.max_in_flight), thread_name_prefix="predict")
        self.predictor = Predictor(instance, self.executor)
        self.input_form = input_form.of(type(instance))  # POST /predict's check, asked by the fronts ("check")
        # Counted in the pod's one metrics view (prometheus multiprocess files): batch sizes are seen here.
        self.metrics = Metrics(Admission(1, 0))
        self.batcher: Batcher | None = None
        self.streams: dict[tuple[int, int], asyncio.Task[None]] = {}

    async def run(self, socks: list[socket.socket]) -> None:
        if self.predictor.batches:
            self.batcher = Batcher(self.predictor, self.settings.max_batch_size, self.settings.max_wait_ms, self.metrics)
            self.batcher.start()
        s = self.settings
        mode = f"batching up to {s.max_batch_size} within {s.max_wait_ms:g} ms across fronts" if self.batcher else "no batching (no predict_batch)"
        pinned = f" on CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']}" if "CUDA_VISIBLE_DEVICES" in os.environ else ""
        logs.log.info("model process %d ready%s: %s", os.getpid(), pinned, mode)
        await asyncio.gather(*(self.serve(n, sock) for n, sock in enumerate(socks)))
        logs.log.info("model process %d: all %d fronts closed their links; exiting", os.getpid(), len(socks))
        if self.batcher is not None:
            await self.batcher.stop()
        self.executor.shutdown(wait=True)

    async def serve(self, front: int, sock: socket.socket) -> None:
        tasks: set[asyncio.Task[None]] = set()
        loop = asyncio.get_running_loop()
        link: Framed

        def received(message: tuple[Any, ...]) -> None:
            i, op, *args = message
            if op == "cancel":
                task = self.streams.pop((front, i), None)
                if task is not None:
                    task.cancel()
                return
            task = loop.create_task(self.answer(front, i, op, args, link))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        link = await connect(sock, received, lambda: None)
        await link.closed
        if tasks:  # the front closed its link: it has nothing waiting, but let what runs end
            await asyncio.gather(*tasks, return_exceptions=True)
        link.close()

    async def answer(self, front: int, i: int, op: str, args: list[Any], link: Framed) -> None:
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
            elif op == "check":
                result = input_form.problem(self.input_form, args[0]) if self.input_form is not None else None
            elif op == "count":
                result = self.instance.count_tokens(args[0])
                if inspect.iscoroutine(result):
                    result = await result
            else:
                raise ValueError(f"unknown operation {op!r}")
        except Exception as exc:
            link.send((i, "err", error_to_wire(exc)))
            return
        if streaming.is_generator(result) or (op == "generate" and (hasattr(result, "__next__") or hasattr(result, "__anext__"))):
            link.send((i, "stream"))
            task = asyncio.current_task()
            assert task is not None
            self.streams[(front, i)] = task
            source = streaming.Source(result, self.executor)
            try:
                async for item in source:
                    link.send((i, "chunk", item))
                    await link.drain()
                link.send((i, "end"))
            except asyncio.CancelledError:
                pass
            except Exception as exc:
                link.send((i, "err", error_to_wire(exc)))
            finally:
                self.streams.pop((front, i), None)
                await source.aclose()
            return
        try:
            link.send((i, "ok", result, state.batch_size))
        except Exception as exc:  # a result that cannot be pickled
            link.send((i, "err", error_to_wire(TypeError(f"the result cannot be sent to the front: {exc}"))))


def main(settings: Settings, socks: list[socket.socket], front_ends: list[socket.socket], status: Connection, process_seconds: float | None,
         device: str | None = None) -> None:
    """The model process: load, tell the parent (`status`) the predictor's facts or the error, serve.
    `device`: the CUDA_VISIBLE_DEVICES it sees (one model process per device), set before the
    predictor imports torch; None leaves the pod's."""
    from .parent_death import die_with_parent

    die_with_parent()
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
        server = ModelServer(settings, instance)

        async def warm_then_serve() -> None:
            try:
                await server.predictor.warmup()
            except Exception as exc:
                where = settings.predictor.rpartition(":")[0]
                raise PredictorLoadError(f"{where}: warmup() failed: {exc.__class__.__name__}: {str(exc)[:300]}") from exc
            startup.end("warmup")
            status.send(("ready", describe(instance), startup.phases))
            status.close()
            await server.run(socks)

        asyncio.run(warm_then_serve())
    except PredictorLoadError as exc:
        status.send(("error", str(exc)))
        status.close()
