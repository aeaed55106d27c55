"""Runtime, what one server holds (settings, predictor, admission, batcher, metrics, readiness), and
`handle`, the one request path every predict route shares (admission, call, errors, metrics, access
log). Routes find it with `runtime_of`; app.py builds the FastAPI app around it. The async front and
worker take it as an `asyncq.host.Host`, so that nothing here is imported back by what it constructs."""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from . import input_form, logs, streaming
from .admission import Admission
from .auth import ApiKeys
from .batching import Batcher, RequestState, current
from .errors import HTTPError, NotFound, Overloaded, PredictorFailed, PredictorFault, PredictorLoadError, PredictorRaised, Unavailable, from_exception
from .generate import Generator
from .metrics import Metrics, PredictionMonitor
from .payloads import clip, dumps, to_response
from .predictor import Predictor, construct, describe, load_class
from .settings import Settings
from .startup import Startup

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .asyncq.front import Front
    from .asyncq.worker import Worker

class Runtime:
    """Everything one server holds: settings, predictor, admission, batcher, metrics, readiness."""

    def __init__(self, settings: Settings):
        self.settings = settings
        # Set in a front process (runtime/fronts.py): its number, and whether the model process batches.
        # Only front 0 logs start-up, so that N fronts do not print N copies of the same lines.
        self.front_process: tuple[int, bool] | None = None
        self.admission = Admission(settings.max_in_flight, settings.max_queue)
        self.metrics = Metrics(self.admission)
        self.startup = Startup(self.metrics.registry)
        monitoring = settings.monitoring()
        self.monitor: PredictionMonitor | None = None
        if monitoring is not None:
            key, kind, buckets = monitoring
            self.monitor = PredictionMonitor(self.metrics.registry, key, kind, *((buckets,) if buckets else ()))
        self.instance: Any = None  # the user's object, constructed by load()
        # The class's `Input` model (input_form.py): POST /predict's JSON payloads are checked against it.
        self.input_form: type[BaseModel] | None = None
        # With --fronts the class lives in the model process: a front asks it (model_link) whether a payload fits.
        self.remote_input_check: Callable[[Any], Awaitable[str | None]] | None = None
        self.predictor: Predictor | None = None
        self.load_error: PredictorLoadError | None = None
        self.batcher: Batcher | None = None
        self.generator: Generator | None = None  # the predictor's generate(), for the OpenAI routes
        self.started = int(time.time())
        self.ready = False
        self.draining = False
        self.api_keys = ApiKeys(settings.api_keys_file) if settings.api_keys_file else None
        # Async modes (runtime/asyncq/): the front queues and reads results, the worker runs the predictor from the queue.
        self.front: Front | None = None
        self.worker: Worker | None = None
        # Enough threads that every admitted request can run; sync predictors release the GIL in native code.
        self.executor = ThreadPoolExecutor(max_workers=max(1, settings.max_in_flight), thread_name_prefix="predict")

    def load(self) -> None:
        """Import and construct the predictor. The server calls it before it starts listening, so
        that a predictor that cannot load is one line and exit 1, not a server that fails to start."""
        s = self.settings
        if s.mode == "front":  # the front never runs the predictor: no import, no model
            return
        self.startup.begin()
        cls = load_class(s.predictor)
        self.input_form = input_form.of(cls)
        self.startup.end("imports")
        self.instance = construct(cls, s.predictor_config(), s.model_dir, s.predictor.rpartition(":")[0])
        self.startup.end("construct")

    async def start(self) -> None:
        s = self.settings
        if s.mode != "realtime":
            from .asyncq.opening import open_backend

            try:
                queue, store = await asyncio.get_running_loop().run_in_executor(self.executor, open_backend, s, s.visibility_timeout_s)
            except Exception as exc:  # no credentials, a malformed path: one line and exit 1, like a predictor that cannot load
                raise PredictorLoadError(f"--queue {s.queue[:100]} / --results {s.results[:100]}: {describe(exc, None)}") from exc
            if s.mode in ("front", "async"):
                from .asyncq.front import Front

                self.front = Front(self, queue, store)
            if s.mode == "front":
                self.ready = True
                logs.log.info("async front ready: queue %s, results %s", s.queue, s.results)
                return
        if self.instance is None:  # an app served by someone else's server (or a TestClient)
            await asyncio.get_running_loop().run_in_executor(self.executor, self.load)
        self.predictor = Predictor(self.instance, self.executor)
        self.startup.end("serve")
        if callable(getattr(self.instance, "generate", None)):
            try:
                self.generator = Generator(self.instance, self.executor)
            except PredictorLoadError as exc:
                raise PredictorLoadError(f"{s.predictor.rpartition(':')[0]}: {exc}") from None
        try:
            await self.predictor.warmup()
            self.startup.end("warmup")
        except Exception as exc:
            where = s.predictor.rpartition(":")[0]
            raise PredictorLoadError(f"{where}: warmup() failed: {describe(exc, where)}") from exc
        if s.mode != "realtime":
            from .asyncq.worker import Worker

            self.worker = Worker(self, queue, store)
            self.worker.start()
            self.ready = True
            logs.log.info("async worker ready: pulling up to %d requests from %s; results to %s", s.max_batch_size, s.queue, s.results)
            return
        if self.predictor.batches:
            self.batcher = Batcher(self.predictor, s.max_batch_size, s.max_wait_ms, self.metrics)
            self.batcher.start()
        self.ready = True
        if self.front_process is None or self.front_process[0] == 0:
            logs.log.info("%s", self.startup.ready())
        # Work that can wait until after ready: the OIP tensor code and numpy (about 0.1 s), which the
        # first OIP request would otherwise import. In a thread, so that requests are served meanwhile.
        threading.Thread(target=importlib.import_module, args=(f"{__package__}.oip_messages",), name="after-ready-imports", daemon=True).start()
        if self.front_process is not None:
            if self.front_process[0] == 0:
                mode = "batched in the model process" if self.front_process[1] else "no batching (no predict_batch)"
                logs.log.info("predictor %s ready in every front: %s; max_in_flight=%d max_queue=%d for the pod",
                              s.predictor, mode, s.max_in_flight, s.max_queue)
            return
        mode = f"batching up to {s.max_batch_size} within {s.max_wait_ms:g} ms" if self.batcher else "no batching (no predict_batch)"
        logs.log.info("predictor %s ready: %s; max_in_flight=%d max_queue=%d", s.predictor, mode, s.max_in_flight, s.max_queue)

    async def stop(self) -> None:
        self.ready = False
        if self.worker is not None:
            self.draining = True  # a stop without SIGTERM (a test's lifespan) stops pulling too
            await self.worker.stop(self.settings.drain_timeout_s)
        if self.batcher is not None:
            await self.batcher.stop()
        # A worker's released requests belong to another worker now: do not wait for the predictor call that still runs.
        self.executor.shutdown(wait=not (self.worker is not None and self.worker.abandoned), cancel_futures=True)

    async def predict_one(self, payload: Any) -> Any:
        if self.settings.mode != "realtime":
            raise NotFound("this is an async API: POST /predict queues a request and answers its id; GET /predict/{id} answers its result")
        assert self.predictor is not None
        if self.batcher is not None:
            result = await self.batcher.submit(payload)
        else:
            result = await self.predictor.predict(payload)
        if self.monitor is not None:  # prediction monitoring: off unless the API's spec asks for it
            self.monitor.observe(result)
        return result

    async def handle(
        self,
        request: Request,
        route: str,
        call: Callable[[], Awaitable[Any]],
        render: Callable[[Any, dict[str, str]], Response] = to_response,
        errors: Callable[[HTTPError, str, dict[str, str]], Response] | None = None,
    ) -> Response:
        """Admit, run `call`, and turn its result or error into a response; count and log it.
        A generator or Stream result is streamed (runtime/streaming.py). `errors` renders errors
        in a protocol's own shape (the OpenAI routes); the default is the runtime's."""
        errors = errors or default_error
        start = time.perf_counter()
        request_id = logs.request_id(request.headers.get("x-request-id"))
        headers = {"x-request-id": request_id}
        state = RequestState()
        current.set(state)
        try:
            if self.api_keys is not None:
                self.api_keys.check(request.headers)
            if not self.ready:
                raise Unavailable("the predictor is not loaded yet; wait for /readyz")
            await self.admission.acquire()
            batcher = self.batcher
            if batcher is not None:
                batcher.arrive(state)
            streams = False
            try:
                result = await call()
                if streaming.is_generator(result):
                    result = streaming.from_generator(result, request, self.executor, request_id)
                streams = isinstance(result, streaming.Stream)
            finally:
                if batcher is not None:
                    batcher.arrived(state)
                if not streams:
                    self.admission.release()
            if streams:
                # The slot is held until the last chunk is sent or the client goes: then it is
                # released, and the request counted and logged, once (Stream.aclose).
                return self.stream_response(result, route, request_id, headers, start)
            try:
                response = render(result, headers)
            except Exception as exc:  # what the predictor returned cannot be sent
                raise PredictorRaised() from exc
        except HTTPError as exc:
            if isinstance(exc, Overloaded):
                self.metrics.rejected.inc()
            response = errors(exc, request_id, exc.headers | headers)
        except (PredictorRaised, PredictorFault) as raised:
            cause = (raised.__cause__ or raised) if isinstance(raised, PredictorRaised) else raised
            self.metrics.predictor_errors.inc()
            if isinstance(cause, PredictorFault):  # the runtime found the fault in what the predictor returned
                what, message = "predictor error", f"predictor error: {clip(str(cause), 500)}"
            else:
                what, message = "predictor raised", f"the predictor raised {type(cause).__name__}: {clip(str(cause), 500)}"
            logs.log.error("request %s on %s: %s\n%s", request_id, route, what, logs.format_exception(cause))
            failed = PredictorFailed(message)
            response = errors(failed, request_id, headers)
        except Exception as exc:
            error = from_exception(exc)
            if error is None:  # our own fault, not the predictor's: not counted as a predictor error
                logs.log.error("request %s on %s: internal error\n%s", request_id, route, logs.format_exception(exc))
                error = HTTPError("internal server error; the log has the details under this request id")
            response = errors(error, request_id, error.headers | headers)
        elapsed = time.perf_counter() - start
        self.metrics.observe(route, response.status_code, elapsed)
        if self.settings.access_log:
            logs.access(request_id, route, response.status_code, elapsed, state.batch_size or None)
        return response

    def stream_response(self, stream: streaming.Stream, route: str, request_id: str, headers: dict[str, str], start: float) -> Response:
        def finish(status: int) -> None:
            self.admission.release()
            if status >= 500:
                self.metrics.predictor_errors.inc()
            elapsed = time.perf_counter() - start
            self.metrics.observe(route, status, elapsed)
            if self.settings.access_log:
                logs.access(request_id, route, status, elapsed, None)

        stream.finish = finish
        stream.request_id = request_id
        return streaming.StreamResponse(stream, headers)


def error_response(status: int, message: str, request_id: str, headers: dict[str, str]) -> Response:
    """Every error the runtime answers: JSON naming the problem, and the request id in body and header."""
    return Response(
        dumps({"error": message, "request_id": request_id}), status_code=status, media_type="application/json", headers=headers | {"x-request-id": request_id}
    )


def default_error(error: HTTPError, request_id: str, headers: dict[str, str]) -> Response:
    return error_response(error.status, error.message, request_id, headers)


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime  # set by create_app; starlette's State is untyped
    return runtime
