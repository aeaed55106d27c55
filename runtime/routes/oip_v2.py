"""Open Inference Protocol v2 (KServe v2, Triton): inference, model metadata and health."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..app import runtime_of
from ..errors import BadRequest
from ..payloads import payload
from .kserve_v1 import check_name

router = APIRouter(tags=["open-inference-protocol-v2"])

DATATYPES = {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES"}


@router.get("/v2", summary="Server metadata")
async def server_metadata() -> dict:
    from .. import __version__

    return {"name": "mlkit_runtime", "version": __version__, "extensions": []}


@router.get("/v2/health/live", summary="Liveness (OIP v2)")
async def live() -> dict:
    return {"live": True}


@router.get("/v2/health/ready", summary="Readiness (OIP v2)")
async def ready(request: Request) -> Response:
    rt = runtime_of(request)
    is_ready = rt.ready and not rt.draining
    return Response(b'{"ready":true}' if is_ready else b'{"ready":false}', status_code=200 if is_ready else 503, media_type="application/json")


@router.get("/v2/models/{name}", summary="Model metadata (OIP v2)")
async def model_metadata(request: Request, name: str) -> dict:
    check_name(request, name)
    return {"name": name, "versions": [], "platform": "mlkit", "inputs": [], "outputs": []}


@router.get("/v2/models/{name}/ready", summary="Model readiness (OIP v2)")
async def model_ready(request: Request, name: str) -> Response:
    check_name(request, name)
    return await ready(request)


def _flatten(data: Any) -> list:
    if isinstance(data, list) and data and isinstance(data[0], list):
        return [x for row in data for x in _flatten(row)]
    return data if isinstance(data, list) else [data]


def validate(body: Any) -> dict:
    """Check each input tensor's fields and that its shape matches its data; data comes back flattened."""
    if not isinstance(body, dict) or not isinstance(body.get("inputs"), list) or not body["inputs"]:
        raise BadRequest('the body must be a JSON object with a non-empty "inputs" list of tensors {name, shape, datatype, data}')
    for i, tensor in enumerate(body["inputs"]):
        where = f"inputs[{i}]"
        if not isinstance(tensor, dict):
            raise BadRequest(f"{where}: must be an object with name, shape, datatype and data")
        missing = [k for k in ("name", "shape", "datatype", "data") if k not in tensor]
        if missing:
            raise BadRequest(f"{where}: missing {', '.join(missing)}")
        shape = tensor["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise BadRequest(f"{where}.shape: must be a list of non-negative integers, got {shape!r}")
        if tensor["datatype"] not in DATATYPES:
            raise BadRequest(f"{where}.datatype: {tensor['datatype']!r} is not an OIP datatype (valid: {', '.join(sorted(DATATYPES))})")
        flat = _flatten(tensor["data"])
        if len(flat) != math.prod(shape):
            raise BadRequest(f"{where}: shape {shape} holds {math.prod(shape)} elements but data has {len(flat)}")
        tensor["data"] = flat
    return body


def _datatype(values: list) -> str:
    if values and all(isinstance(v, bool) for v in values):
        return "BOOL"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def _shape(value: Any) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        value = value[0] if value else None
    return shape


def to_v2(name: str, request_id: str | None, result: Any) -> dict:
    """A predictor's result as an OIP response: passed through if it already has "outputs"."""
    if isinstance(result, dict) and "outputs" in result:
        return {"model_name": name, **({"id": request_id} if request_id else {}), **result}
    tolist = getattr(result, "tolist", None)
    if tolist is not None:
        result = tolist()
    outputs = []
    items = result.items() if isinstance(result, dict) else [("output-0", result)]
    for key, value in items:
        value = value.tolist() if hasattr(value, "tolist") else value
        flat = _flatten(value)
        outputs.append({"name": str(key), "shape": _shape(value) or [1], "datatype": _datatype(flat), "data": flat})
    return {"model_name": name, **({"id": request_id} if request_id else {}), "outputs": outputs}


@router.post("/v2/models/{name}/infer", summary="Inference (OIP v2): the predictor receives the validated request")
async def infer(request: Request, name: str) -> Response:
    return await respond(request, name)


async def respond(request: Request, name: str) -> Response:
    rt = runtime_of(request)

    async def call():
        check_name(request, name)
        body = validate(await payload(request, rt.settings.max_body_bytes, json_only=True))
        return to_v2(name, body.get("id"), await rt.predict_one(body))

    return await rt.handle(request, "/v2/models/:infer", call)
