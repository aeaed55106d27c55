"""Run the app under uvicorn (httptools + uvloop) with Kubernetes-style graceful drain.

On SIGTERM the server turns unready at once (/readyz 503) but keeps serving for `drain_delay_s`, so
load balancers can take it out of rotation; then it stops accepting connections and gives accepted
requests, running and queued, up to `drain_timeout_s` to finish, and exits 0. A second signal exits
at once.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from fastapi import FastAPI

from . import logs
from .app import create_app
from .core import Runtime
from .fastpath import FastPath
from .http_limits import MAX_HEAD_BYTES
from .settings import Settings


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, settings: Settings, runtime: Runtime):
        super().__init__(config)
        self.settings = settings
        self.runtime = runtime
        self.exit_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.exit_at is not None:  # a second signal: stop now
            return super().handle_exit(sig, frame)
        self.runtime.draining = True
        logs.log.info(
            "signal %s: unready now; serving %.1fs more, then finishing accepted requests (up to %.0fs)",
            sig, self.settings.drain_delay_s, self.settings.drain_timeout_s,
        )
        self.exit_at = time.monotonic() + self.settings.drain_delay_s

    async def on_tick(self, counter: int) -> bool:
        if self.exit_at is not None and time.monotonic() >= self.exit_at:
            self.should_exit = True
        return await super().on_tick(counter)


def build_config(settings: Settings, app: FastAPI) -> uvicorn.Config:
    fast = importlib.util.find_spec("uvloop") is not None and importlib.util.find_spec("httptools") is not None
    if fast:
        from .bounded_head import bounded_protocol
    return uvicorn.Config(
        FastPath(app),
        host=settings.host,
        port=settings.port,
        loop="uvloop" if fast else "asyncio",
        # Request heads bounded in size and time as they arrive (http_limits.py); h11 bounds their size itself.
        http=bounded_protocol(settings.body_timeout_s) if fast else "h11",
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        lifespan="on",
        access_log=False,  # we write our own JSON access log
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.drain_timeout_s) or None,
        timeout_keep_alive=30,
        server_header=False,
    )


def serve(settings: Settings, announce: Callable[[], None] | None = None) -> int:
    """Serve until drained; the exit code is 0 after a clean drain, 1 if the server did not start.

    Raises PredictorLoadError, before listening, when the predictor cannot be imported or
    constructed, and after uvicorn gives up when its warmup() fails: callers print it as one line.
    `announce` runs once the predictor is constructed, before the server listens.
    """
    logs.setup(settings.log_level)
    app = create_app(settings)
    runtime: Runtime = app.state.runtime
    runtime.load()
    if announce is not None:
        announce()
    server = DrainingServer(build_config(settings, app), settings, runtime)
    try:
        server.run()
    except SystemExit:  # uvicorn's exit 3 when the lifespan fails
        if runtime.load_error is None:
            raise
    if runtime.load_error is not None:
        raise runtime.load_error
    if not server.started:
        return 1
    return 0
