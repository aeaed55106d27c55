"""Open Inference Protocol v2 (KServe v2, Triton): inference, model metadata and health.

Inference takes JSON tensors and the binary tensor extension (oip_messages.py); predictors get each
input's data as a numpy array by default (tensors.py, `oip_tensors` on the predictor class).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..core import runtime_of
from ..oip_schema import InferenceErrorBody, InferenceRequest, InferenceResponse, ServerMetadata, inline_schema
from ..tensor_formats import input_format
from .kserve_v1 import check_name

router = APIRouter(tags=["open-inference-protocol-v2"])

EXTENSIONS = ["binary_tensor_data"]


@router.get("/v2", summary="Server metadata", response_model=ServerMetadata)
async def server_metadata() -> dict[str, Any]:
    from .. import __version__

    return {"name": "mlkit_runtime", "version": __version__, "extensions": EXTENSIONS}


@router.get("/v2/health/live", summary="Liveness (OIP v2)")
async def live() -> dict[str, Any]:
    return {"live": True}


@router.get("/v2/health/ready", summary="Readiness (OIP v2)")
async def ready(request: Request) -> Response:
    rt = runtime_of(request)
    is_ready = rt.ready and not rt.draining
    return Response(b'{"ready":true}' if is_ready else b'{"ready":false}', status_code=200 if is_ready else 503, media_type="application/json")


@router.get("/v2/models/{name}", summary="Model metadata (OIP v2)")
async def model_metadata(request: Request, name: str) -> dict[str, Any]:
    check_name(request, name)
    return {"name": name, "versions": [], "platform": "mlkit", "inputs": [], "outputs": []}


@router.get("/v2/models/{name}/ready", summary="Model readiness (OIP v2)")
async def model_ready(request: Request, name: str) -> Response:
    check_name(request, name)
    return await ready(request)


# The body is read by `respond` itself (JSON or binary), so the schema is declared here for the docs.
_INFER_DOCS = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": inline_schema(InferenceRequest)}},
        "description": "JSON tensors; or, with the binary tensor extension, this JSON as a header of "
        "Inference-Header-Content-Length bytes followed by the inputs' raw bytes (application/octet-stream).",
    },
    "parameters": [{
        "name": "Inference-Header-Content-Length", "in": "header", "required": False,
        "description": "Binary tensor extension: the length of the JSON header that starts the body.",
        "schema": {"type": "integer", "minimum": 0},
    }],
}


@router.post(
    "/v2/models/{name}/infer",
    summary="Inference (OIP v2): JSON or binary tensors; the predictor gets numpy arrays unless it asks otherwise",
    openapi_extra=_INFER_DOCS,
    responses={
        200: {"model": InferenceResponse},
        **{status: {"model": InferenceErrorBody} for status in (400, 404, 413, 415)},
    },
)
async def infer(request: Request, name: str) -> Response:
    return await respond(request, name)


async def respond(request: Request, name: str) -> Response:
    rt = runtime_of(request)

    async def call() -> Response:
        # numpy comes with oip_messages: imported here, not at start-up, so a predictor that does not use
        # it is ready sooner (after the first time this is a dictionary lookup; app.py imports it once ready).
        from ..oip_messages import read_request, response

        check_name(request, name)
        assert rt.predictor is not None
        decoded = await read_request(request, rt.settings.max_body_bytes, input_format(rt.predictor.instance))
        return response(name, decoded, await rt.predict_one(decoded.payload))

    return await rt.handle(request, "/v2/models/:infer", call)
