"""One exception type per HTTP status the runtime answers with; each carries a message naming the fix.
And SettingsError, the one a setting raises before anything listens (settings.py and auth.py both raise it)."""

from __future__ import annotations


class SettingsError(ValueError):
    """A setting has a value the runtime cannot use; the message names the flag and the variable."""


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


class MethodNotAllowed(HTTPError):
    status = 405


class RequestTimeout(HTTPError):
    status = 408


class PayloadTooLarge(HTTPError):
    status = 413


class UnsupportedMediaType(HTTPError):
    status = 415


class HeadersTooLarge(HTTPError):
    status = 431


class ClientClosed(HTTPError):
    """The client left before its answer: the work stopped; the status (nginx's) is for the log and metrics."""

    status = 499


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


class Unreachable(Exception):
    """An async API's queue or result bucket did not answer: the request is not queued, so 503 with Retry-After."""


class PredictorLoadError(Exception):
    """The predictor could not be imported or constructed; the server must not start."""


class PredictorRaised(Exception):
    """The predictor's own code raised (the original is `__cause__`): a 500 counted as a predictor
    error. Anything else unexpected is the server's fault, and is neither counted nor blamed on it."""


class PredictorFault(Exception):
    """What the predictor returned contradicts itself (an OIP output whose shape does not match its
    data, a datatype OIP does not have): found by the runtime's code that reads the result, but the
    predictor's fault, so answered like PredictorRaised, with this message. Raised only where that code
    has checked the predictor's value; any other exception there stays the server's own fault."""


def from_exception(exc: BaseException) -> HTTPError | None:
    """Exceptions that are the client's doing, raised by the frameworks beneath us, as HTTP errors."""
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    if isinstance(exc, Unreachable):
        return Unavailable(f"the request was not queued: {exc}; retry after Retry-After")
    if isinstance(exc, ClientDisconnect):
        return BadRequest("the connection closed before the whole body (Content-Length bytes) arrived")
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            return NotFound("no such route; see /docs for the routes this server has (no redirects: /predict/ is not /predict)")
        if exc.status_code == 405:
            return MethodNotAllowed("this route does not take that method; see /docs", dict(exc.headers or {}))
        error = HTTPError(str(exc.detail)[:200], dict(exc.headers or {}))
        error.status = exc.status_code
        return error
    return None
