"""The same model as a BentoML service (run in its own venv by run.py): `bentoml serve bento_service:Model`.

BENCH_BENTO_BATCH=1 turns on BentoML's adaptive batching (`batchable=True`).
"""

from __future__ import annotations

import os

import bentoml
import models
import torch

NAME = os.environ.get("BENCH_MODEL", "cnn")
BATCH = os.environ.get("BENCH_BENTO_BATCH") == "1"


@bentoml.service(workers=1)
class Model:
    def __init__(self) -> None:
        models.setup_torch()
        self.model = models.build(NAME)

    if BATCH:

        @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=1000)
        def predict(self, x: list[list[float]]) -> list[list[float]]:
            with torch.inference_mode():
                return self.model(models.to_tensor(NAME, x)).tolist()

    else:

        @bentoml.api
        def predict(self, x: list[float]) -> list[float]:
            with torch.inference_mode():
                return self.model(models.to_tensor(NAME, [x]))[0].tolist()
