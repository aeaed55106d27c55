"""What the front and the worker use of the server that holds them (`core.Runtime`). Named here, as a
protocol, so that asyncq needs nothing of core.py, which constructs them: Runtime conforms by shape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from ..errors import HTTPError
from ..metrics import Metrics, PredictionMonitor
from ..predictor import Predictor
from ..settings import Settings


class Host(Protocol):
    settings: Settings
    executor: ThreadPoolExecutor
    metrics: Metrics
    monitor: PredictionMonitor | None
    predictor: Predictor | None
    draining: bool

    async def handle(
        self,
        request: Request,
        route: str,
        call: Callable[[], Awaitable[Any]],
        render: Callable[[Any, dict[str, str]], Response] = ...,
        errors: Callable[[HTTPError, str, dict[str, str]], Response] | None = None,
    ) -> Response: ...
