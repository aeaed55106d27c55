"""`POST /predict`: the payload as sent (JSON parsed, anything else as bytes), the result as returned."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..core import runtime_of
from ..errors import BadRequest, NotFound
from ..payloads import payload

router = APIRouter(tags=["predict"])

@router.post(
    "/predict",
    summary="Run the predictor on one payload",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"schema": {}}, "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    },
    responses={
        400: {"description": "Malformed JSON, or a payload the predictor's Input model refuses"},
        413: {"description": "Body too large"},
        415: {"description": "Unsupported content type"},
        500: {"description": "The predictor raised"},
        503: {"description": "Server full; retry after Retry-After"},
    },
)
async def predict(request: Request) -> Response:
    return await respond(request)


@router.get(
    "/predict/{request_id}",
    summary="Async APIs: the status and result of a queued request",
    responses={404: {"description": "No request has this id (or this API is realtime)"}, 503: {"description": "The result store cannot be reached"}},
)
async def result(request: Request, request_id: str) -> Response:
    rt = runtime_of(request)
    if rt.front is None:
        raise NotFound("this API answers POST /predict at once; GET /predict/{id} is for async APIs")
    return await rt.front.status(request, request_id)


async def respond(request: Request) -> Response:
    rt = runtime_of(request)
    if rt.front is not None:  # an async API: queue it, answer 202 with its id
        return await rt.front.submit(request)

    async def call() -> Any:
        body = await payload(request, rt.settings.max_body_bytes, keep_source=True)  # handed on untouched
        if bad := await rt.input_problem(body):
            raise BadRequest(f"the payload does not fit the predictor's Input: {bad}")
        return await rt.predict_one(body)

    return await rt.handle(request, "/predict", call)
