"""The predict routes without FastAPI's routing and dependency machinery, behind header limits.

The same handlers as the FastAPI routes (which stay, for the OpenAPI docs), reached by plain string
checks on the path: it takes about a fifth off the server's time per request, which matters when
the model is small. Everything else goes on to FastAPI.

Being the outermost app, it also bounds what no route should see (too many or too large headers,
which httptools accepts without limit), asks for the API key on the routes that do not go through
Runtime.handle (auth.py says which routes are open), and keeps a predictor that fails to warm up from filling
the log with uvicorn's traceback of the lifespan: serve() reports it as one line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import logs
from .auth import HANDLED_PATHS, OPEN_PATHS
from .errors import HeadersTooLarge, HTTPError
from .http_limits import MAX_HEADER_BYTES, MAX_HEADERS, error_document
from .payloads import dumps
from .routes import kserve_v1, oip_v2, predict


def check_headers(scope: Scope) -> HeadersTooLarge | None:
    headers = scope["headers"]
    if len(headers) > MAX_HEADERS:
        return HeadersTooLarge(f"the request has {len(headers)} headers; the limit is {MAX_HEADERS}")
    size = sum(len(name) + len(value) for name, value in headers)
    if size > MAX_HEADER_BYTES:
        return HeadersTooLarge(f"the request headers are {size} bytes; the limit is {MAX_HEADER_BYTES}")
    return None


class FastPath:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            error = check_headers(scope)
            if error is not None:
                await refuse(error, {"connection": "close"}, scope, receive, send)
                return
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            handler: Callable[..., Awaitable[Response]] | None = None  # respond(request, *args)
            args: tuple[str, ...] = ()
            if path == "/predict":
                handler = predict.respond
            elif path.startswith("/v1/models/") and path.endswith(":predict"):
                handler, args = kserve_v1.respond, (path[len("/v1/models/") : -len(":predict")],)
            elif path.startswith("/v2/models/") and path.endswith("/infer") and path.count("/") == 4:
                handler, args = oip_v2.respond, (path[len("/v2/models/") : -len("/infer")],)
            if handler is not None:
                scope["app"] = self.app  # request.app.state.runtime, as under FastAPI
                response = await handler(Request(scope, receive), *args)
                await response(scope, receive, send)
                return
        if scope["type"] == "lifespan":
            await self.app(scope, receive, _quiet_startup_failure(send))
            return
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS and scope["path"] not in HANDLED_PATHS:
            # Routes that do not go through Runtime.handle (which checks keys itself, and counts the 401s).
            keys = self.app.state.runtime.api_keys  # type: ignore[attr-defined]
            if keys is not None:
                try:
                    keys.check(Headers(scope=scope))
                except HTTPError as refused:
                    await refuse(refused, refused.headers, scope, receive, send)
                    return
        await self.app(scope, receive, send)


async def refuse(error: HTTPError, headers: dict[str, str], scope: Scope, receive: Receive, send: Send) -> None:
    """An error answered before any route: in the shape of the route the path names."""
    request_id = logs.request_id(None)
    document = error_document(error.status, error.message, request_id, scope["path"])
    response = Response(dumps(document), error.status, headers | {"x-request-id": request_id}, "application/json")
    await response(scope, receive, send)


def _quiet_startup_failure(send: Send) -> Send:
    async def quiet(message: Message) -> None:
        if message["type"] == "lifespan.startup.failed":
            message = {"type": message["type"], "message": ""}  # the traceback uvicorn would log
        await send(message)

    return quiet
