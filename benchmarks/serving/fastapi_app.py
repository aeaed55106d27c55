"""The minimal FastAPI endpoint a user would write by hand: one sync route, one forward per request.

    BENCH_MODEL=cnn uvicorn fastapi_app:app --loop uvloop --http httptools
"""

from __future__ import annotations

import os

import models
import torch
from fastapi import FastAPI

models.setup_torch()
NAME = os.environ.get("BENCH_MODEL", "cnn")
MODEL = models.build(NAME)
app = FastAPI()


@app.post("/predict")
def predict(body: dict) -> list:
    with torch.inference_mode():
        return MODEL(models.to_tensor(NAME, [body["x"]]))[0].tolist()
