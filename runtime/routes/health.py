"""Health for Kubernetes probes and metrics for Prometheus."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from ..core import runtime_of

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@router.get("/readyz", summary="Readiness: predictor loaded and not draining (503 otherwise)")
async def readyz(request: Request) -> Response:
    rt = runtime_of(request)
    if rt.draining:
        return Response(b'{"status":"draining"}', status_code=503, media_type="application/json")
    if not rt.ready:
        return Response(b'{"status":"loading"}', status_code=503, media_type="application/json")
    return Response(b'{"status":"ready"}', media_type="application/json")


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    return Response(runtime_of(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
