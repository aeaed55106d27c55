"""Predictors for the runtime tests: each exercises one part of the contract."""

import asyncio
import time

from starlette.responses import Response


class Echo:
    """Sync, no batching. The payload chooses the kind of result, a delay, or an exception."""

    def __init__(self, config, model_dir):
        self.delay = float(config.get("delay", 0))

    def predict(self, payload):
        if isinstance(payload, bytes):
            return {"bytes": len(payload)}
        if not isinstance(payload, dict):
            return {"echo": payload}
        if payload.get("raise") == "long":
            raise ValueError("x" * 100_000)
        if payload.get("raise") == "recursion":
            return _down(0)
        if payload.get("raise"):
            raise ValueError("asked to fail")
        time.sleep(payload.get("sleep", self.delay))
        kind = payload.get("kind")
        if kind == "str":
            return "plain text"
        if kind == "bytes":
            return b"\x00\x01\x02"
        if kind == "response":
            return Response("custom body", status_code=201, media_type="text/x-custom")
        return {"echo": payload}


def _down(n):
    return _down(n + 1) + 1


class BatchEcho(Echo):
    """Sync with predict_batch: each result says which batch size served it."""

    def predict_batch(self, payloads):
        if any(isinstance(p, dict) and p.get("raise") for p in payloads):
            raise RuntimeError("batch failed")
        time.sleep(self.delay)
        return [{"echo": p, "batch": len(payloads)} for p in payloads]


class AsyncEcho:
    def __init__(self, config, model_dir):
        self.delay = float(config.get("delay", 0))

    async def predict(self, payload):
        await asyncio.sleep(self.delay)
        return {"async": payload}


class WrongBatch(Echo):
    def predict_batch(self, payloads):
        return payloads[:-1]


class BrokenInit:
    def __init__(self, config, model_dir):
        raise RuntimeError("weights are corrupt")

    def predict(self, payload):
        return payload


class Fuzz:
    """Never raises: any 5xx under fuzzing is the server's fault."""

    def __init__(self, config, model_dir):
        pass

    def predict(self, payload):
        return {"ok": True}
