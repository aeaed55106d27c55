"""Predictors for the tests of several HTTP fronts and one model process (runtime/fronts.py)."""

import os
import time
from pathlib import Path


class Counted:
    """Writes a line per construction into the model folder, so a test can count the model's copies;
    answers the pid that ran it. `sleep` holds the request."""

    def __init__(self, config, model_dir):
        with open(Path(model_dir) / "loads.txt", "a") as f:
            f.write(f"{os.getpid()}\n")

    def predict(self, payload):
        time.sleep(payload.get("sleep", 0) if isinstance(payload, dict) else 0)
        return {"pid": os.getpid()}

    def predict_batch(self, payloads):
        time.sleep(max((p.get("sleep", 0) if isinstance(p, dict) else 0) for p in payloads))
        return [{"pid": os.getpid(), "batch": len(payloads)} for _ in payloads]


class OnDevice(Counted):
    """Counted, answering also the CUDA_VISIBLE_DEVICES its model process was pinned to."""

    def predict_batch(self, payloads):
        return [dict(answer, device=os.environ.get("CUDA_VISIBLE_DEVICES")) for answer in super().predict_batch(payloads)]


class Raises(Counted):
    """predict_batch raises from a helper, so a traceback has the predictor's own frames."""

    def predict_batch(self, payloads):
        return self.check(payloads)

    def check(self, payloads):
        raise ValueError("the model cannot take this")


class WhereItRuns(Counted):
    """Answers which thread ran predict_batch."""

    def predict_batch(self, payloads):
        import threading

        time.sleep(max((p.get("sleep", 0) if isinstance(p, dict) else 0) for p in payloads))
        here = threading.current_thread()
        return [{"pid": os.getpid(), "batch": len(payloads), "main": here is threading.main_thread(), "thread": here.name} for _ in payloads]


class PinnedWhereItRuns(WhereItRuns):
    """WhereItRuns pinned to one CPU, as a predictor that owns a core pins itself: its model process
    polls its links briefly before it sleeps (runtime/model_process.py, spins())."""

    def __init__(self, config, model_dir):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
        super().__init__(config, model_dir)


class Alone:
    """predict only (no predict_batch): requests run side by side in the model process's pool."""

    def __init__(self, config, model_dir):
        pass

    def predict(self, payload):
        import threading

        time.sleep(payload["sleep"])
        return {"thread": threading.current_thread().name}
