"""A batch-job test predictor: doubles `x`, raises on chosen items, sleeps per batch when asked, counts calls.

config: {"poison": [values of x that raise ValueError], "fatal": [values of x that raise MemoryError],
"sleep_s": seconds per batch, "calls_file": a file that gets one line per predict_batch call}.
"""

from __future__ import annotations

import time


class Predictor:
    def __init__(self, config: dict, model_dir: str):
        self.poison = set(config.get("poison", []))
        self.fatal = set(config.get("fatal", []))
        self.sleep_s = float(config.get("sleep_s", 0))
        self.calls_file = config.get("calls_file")

    def predict(self, payload):
        return self.predict_batch([payload])[0]

    def predict_batch(self, payloads: list) -> list:
        if self.calls_file:
            with open(self.calls_file, "a") as out:
                out.write(f"{len(payloads)}\n")
        time.sleep(self.sleep_s)
        out = []
        for p in payloads:
            if p["x"] in self.fatal:
                raise MemoryError(f"x={p['x']} does not fit")
            if p["x"] in self.poison:
                raise ValueError(f"x={p['x']} is poison")
            out.append({"y": p["x"] * 2})
        return out


class OneByOne:
    """predict only, async: the worker must call it per item on its own loop."""

    def __init__(self, config: dict, model_dir: str):
        pass

    async def predict(self, payload):
        return {"y": payload["x"] * 2}


class Sizes:
    """Files as items: the predictor gets each file's bytes."""

    def __init__(self, config: dict, model_dir: str):
        pass

    def predict(self, payload):
        return self.predict_batch([payload])[0]

    def predict_batch(self, payloads: list) -> list:
        return [{"bytes": len(p), "head": p[:4].decode()} for p in payloads]
