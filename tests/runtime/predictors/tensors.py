"""Predictors for the OIP v2 tensor tests: each echoes its inputs as outputs and says what it received."""

import time

import numpy as np


def describe(data):
    """type:dtype:shape:writeable:aligned of one input's data, as the predictor saw it."""
    if isinstance(data, list):
        return f"list:{type(data[0]).__name__ if data else ''}:{len(data)}::"
    if hasattr(data, "numpy") and not isinstance(data, np.ndarray):  # torch
        return f"Tensor:{str(data.dtype).removeprefix('torch.')}:{tuple(data.shape)}::"
    return f"ndarray:{data.dtype}:{data.shape}:{data.flags.writeable}:{data.flags.aligned}"


class Tensors:
    """The default (numpy arrays): outputs are the inputs, by name, plus `received`."""

    def __init__(self, config, model_dir):
        pass

    def predict(self, payload):
        if not isinstance(payload, dict) or "inputs" not in payload:  # KServe v1: an instance
            return {"error": "not an OIP request", "instance": payload}
        out = {"received": np.array([describe(t["data"]) for t in payload["inputs"]], dtype=object)}
        for t in payload["inputs"]:
            out[t["name"]] = t["data"]
        return out


class TorchTensors(Tensors):
    oip_tensors = "torch"


class ListTensors(Tensors):
    oip_tensors = "list"


class BatchTensors(Tensors):
    """predict_batch over arrays: each result is its request's input doubled, and the batch size."""

    def __init__(self, config, model_dir):
        self.delay = float(config.get("delay", 0))

    def predict_batch(self, payloads):
        time.sleep(self.delay)  # so that requests arriving meanwhile share the next batch
        stacked = np.stack([p["inputs"][0]["data"] for p in payloads])
        return [{"doubled": row * 2, "batch": np.int64(len(payloads))} for row in stacked]


class Outputs:
    """Writes its outputs out itself, as before the runtime made arrays of them."""

    def __init__(self, config, model_dir):
        pass

    def predict(self, payload):
        return {"outputs": [{"name": "y", "shape": [2], "datatype": "FP32", "data": [0.5, 1.5]}], "parameters": {"note": "given"}}


class BadFormat(Tensors):
    oip_tensors = "tensorflow"


class WrongOutputs:
    """Outputs that contradict themselves: the predictor's fault, a 500 that says what is wrong."""

    def __init__(self, config, model_dir):
        pass

    def predict(self, payload):
        kind = payload["inputs"][0]["name"]
        if kind == "datatype":
            return {"outputs": [{"name": "y", "datatype": "FLOAT", "data": np.zeros(2)}]}
        return {"outputs": [{"name": "y", "shape": [3], "data": np.zeros(2)}]}
