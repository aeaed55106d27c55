"""The FastAPI application: the predictor loaded in `lifespan`, one router per concern, every error in
the runtime's own format. What a request goes through is `core.Runtime.handle`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response

from . import __version__, logs
from .core import Runtime, error_response
from .errors import HTTPError, PredictorLoadError, from_exception
from .settings import Settings


def create_app(settings: Settings) -> FastAPI:
    from .routes import health, kserve_v1, oip_v2, openai, predict

    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            await runtime.start()
        except PredictorLoadError as exc:
            runtime.load_error = exc  # serve() reports it, as one line, once uvicorn has given up
            raise
        yield
        await runtime.stop()

    app = FastAPI(
        title=f"mlkit predictor: {settings.name}",
        version=__version__,
        description="Model API served by mlkit_runtime: /predict, KServe v1, Open Inference Protocol v2, health and metrics.",
        lifespan=lifespan,
        redirect_slashes=False,  # a redirect would point clients at whatever the Host header said
    )
    app.state.runtime = runtime
    for module in (predict, kserve_v1, oip_v2, openai, health):
        app.include_router(module.router)
    openai.document(app)

    @app.exception_handler(HTTPError)
    async def _http_error(request: Request, exc: HTTPError) -> Response:
        return error_response(exc.status, exc.message, logs.request_id(request.headers.get("x-request-id")), exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _routing_error(request: Request, exc: StarletteHTTPException) -> Response:
        """Unknown routes and methods answer in the runtime's own error format."""
        error = from_exception(exc)
        assert error is not None
        return await _http_error(request, error)

    return app
