"""One exception type per HTTP status the runtime answers with; each carries a message naming the fix."""

from __future__ import annotations


class HTTPError(Exception):
    status = 500
    headers: dict[str, str] = {}

    def __init__(self, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        if headers:
            self.headers = headers


class BadRequest(HTTPError):
    status = 400


class Unauthorized(HTTPError):
    status = 401

    def __init__(self, message: str):
        super().__init__(message, {"WWW-Authenticate": "Bearer"})


class NotFound(HTTPError):
    status = 404


class PayloadTooLarge(HTTPError):
    status = 413


class UnsupportedMediaType(HTTPError):
    status = 415


class PredictorFailed(HTTPError):
    """The predictor raised; the traceback goes to the log, the response carries the request id."""

    status = 500


class Unavailable(HTTPError):
    """503: not ready yet, or full; the client should retry after Retry-After."""

    status = 503

    def __init__(self, message: str):
        super().__init__(message, {"Retry-After": "1"})


class Overloaded(Unavailable):
    def __init__(self, message: str = "server is at capacity (max_in_flight + max_queue requests); retry shortly"):
        super().__init__(message)


class PredictorLoadError(Exception):
    """The predictor could not be imported or constructed; the server must not start."""
