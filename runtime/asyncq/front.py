"""Front mode: `POST /predict` stores a `queued` record and queues the request, then answers 202 with
the id; `GET /predict/{id}` answers the record. Both go through Runtime.handle (keys, admission,
request ids, errors, metrics, access log) like every predict route."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from ..errors import NotFound
from ..payloads import checked_body, dumps
from . import records
from .backend import Queue, Store

if TYPE_CHECKING:
    from .host import Host


class Front:
    def __init__(self, runtime: Host, queue: Queue, store: Store):
        self.runtime = runtime
        self.queue = queue
        self.store = store

    def _enqueue(self, request_id: str, created: str, raw: bytes, is_json: bool) -> None:
        stored = len(raw) > records.INLINE_BYTES
        if stored:
            self.store.put(records.payload_key(request_id), raw)
        # The record first: a worker may finish before this returns, and its result must not be overwritten by `queued`.
        self.store.put(records.result_key(request_id), records.record(request_id, "queued", created))
        self.queue.send(records.envelope(request_id, created, raw, is_json, stored, inline_json=self.queue.one_release))

    async def submit(self, request: Request) -> Response:
        rt = self.runtime

        async def call() -> Any:
            raw, is_json = await checked_body(request, rt.settings.max_body_bytes, parse=True)
            request_id, created = records.new_id(), records.now()
            # 202 only once the queue has the request: a failure here is Unreachable, answered 503 + Retry-After.
            await asyncio.get_running_loop().run_in_executor(rt.executor, self._enqueue, request_id, created, raw, is_json)
            rt.metrics.async_submitted.inc()
            return {"id": request_id, "status": "queued", "created_at": created}

        def accepted(body: Any, headers: dict[str, str]) -> Response:
            return Response(dumps(body), status_code=202, media_type="application/json", headers=headers | {"location": f"/predict/{body['id']}"})

        return await rt.handle(request, "/predict", call, render=accepted)

    async def status(self, request: Request, request_id: str) -> Response:
        rt = self.runtime

        async def call() -> Any:
            # Checked whole before the store sees it: a key is never built from arbitrary client text.
            if not records.ID.fullmatch(request_id):
                raise NotFound("no request has this id (ids are 32 lowercase hex digits, from POST /predict)")
            data = await asyncio.get_running_loop().run_in_executor(rt.executor, self.store.get, records.result_key(request_id))
            if data is None:
                raise NotFound("no request has this id (or its result is past the API's retention)")
            return data

        def found(data: Any, headers: dict[str, str]) -> Response:
            return Response(data, media_type="application/json", headers=headers)

        return await rt.handle(request, "/predict/{id}", call, render=found)
