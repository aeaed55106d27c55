"""KServe v1 protocol: `POST /v1/models/{name}:predict` with `{"instances": [...]}`."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..core import runtime_of
from ..errors import BadRequest, NotFound, PayloadTooLarge
from ..payloads import clip, payload

router = APIRouter(tags=["kserve-v1"])


def check_name(request: Request, name: str) -> None:
    known = runtime_of(request).settings.name
    if name != known:
        raise NotFound(f"model {clip(name)!r} is not served here (this server serves {known!r})")


@router.get("/v1/models/{name}", summary="Model readiness (KServe v1)")
async def model_ready(request: Request, name: str) -> dict[str, Any]:
    check_name(request, name)
    return {"name": name, "ready": runtime_of(request).ready}


@router.post("/v1/models/{name}:predict", summary="Predict a list of instances (KServe v1)")
async def predict(request: Request, name: str) -> Response:
    return await respond(request, name)


async def respond(request: Request, name: str) -> Response:
    rt = runtime_of(request)

    async def call() -> dict[str, list[Any]]:
        check_name(request, name)
        body = await payload(request, rt.settings.max_body_bytes, json_only=True)
        instances = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(instances, list):
            raise BadRequest('the body must be a JSON object with a list under "instances", e.g. {"instances": [{"text": "hi"}]}')
        if len(instances) > rt.settings.max_instances:  # before fanning out: one task per instance
            raise PayloadTooLarge(
                f"the request has {len(instances)} instances; the limit is {rt.settings.max_instances} "
                "(--max-instances / MLKIT_MAX_INSTANCES): split it into several requests"
            )
        # Each instance is its own payload (what POST /predict takes whole), so the Input is an instance's form.
        if rt.checks_input:
            for k, bad in enumerate(await asyncio.gather(*(rt.input_problem(i) for i in instances))):
                if bad:
                    raise BadRequest(f"instances[{k}] does not fit the predictor's Input: {bad}")
        # Each instance is its own payload, so instances of many requests share batches.
        predictions = await asyncio.gather(*(rt.predict_one(i) for i in instances))
        return {"predictions": list(predictions)}

    return await rt.handle(request, "/v1/models/:predict", call)
