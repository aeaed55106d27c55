"""Predictors for the shared-memory tests (tests/runtime/test_fronts_shm.py): each says whether its
input's bytes were in a front's shared memory, and checks they did not change while it ran."""

import mmap
import os
import time

import numpy as np


def shared(array):
    """Whether the array's memory is a mapping of a front's region (a memoryview of an mmap)."""
    base = array
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


class Held:
    """Sync predict (the thread pool, side by side): each input is filled with one value; it holds the
    array for `delay` seconds, then answers whether every element still has the first one's value
    (and writes corrupt.txt in the model dir when not, for requests whose client has gone)."""

    def __init__(self, config, model_dir):
        self.delay = float(config.get("delay", 0))
        self.model_dir = model_dir

    def predict(self, payload):
        x = payload["inputs"][0]["data"]
        first = x.reshape(-1)[0]
        time.sleep(self.delay)
        if not (x == first).all():  # seen by the tests even when the client has gone
            with open(os.path.join(self.model_dir, "corrupt.txt"), "a") as f:
                f.write(f"{first}\n")
        return {
            "value": np.array([first]),
            "intact": np.array([bool((x == first).all())]),
            "shared": np.array([shared(x)]),
            "writeable": np.array([x.flags.writeable]),
            "pid": np.array([os.getpid()]),
        }


class Echo:
    """predict_batch that sends each input back, and whether it came through shared memory."""

    def __init__(self, config, model_dir):
        pass

    def predict(self, payload):
        return self.predict_batch([payload])[0]

    def predict_batch(self, payloads):
        return [{"y": p["inputs"][0]["data"], "shared": np.array([shared(p["inputs"][0]["data"])])} for p in payloads]
