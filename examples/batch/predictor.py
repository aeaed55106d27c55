"""A sentiment predictor for batch jobs: a logistic model over a bag of words, scored a batch at a time.

The model is `model/weights.json` (a few dozen word weights), so the example runs anywhere without
downloads or a GPU. Swap in your own model by changing __init__ and predict.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from pydantic import BaseModel, Field

WORD = re.compile(r"[a-z']+")


class Predictor:
    class Input(BaseModel):
        """What predict takes: `mlkit job run/submit` check every item against it before any shard is
        written (the first misfit is one line, its line number and field), and POST /predict answers 400."""

        text: str = Field(max_length=100_000)

    def __init__(self, config: dict, model_dir: str):
        self.threshold = float(config.get("threshold", 0.5))
        weights = json.loads((Path(model_dir) / "weights.json").read_text())
        self.bias = weights["bias"]
        self.words = weights["words"]

    def predict(self, payload):
        text = payload.get("text", "") if isinstance(payload, dict) else str(payload)
        score = self.bias + sum(self.words.get(w, 0.0) for w in WORD.findall(text.lower()))
        p = 1 / (1 + math.exp(-score))
        return {"label": "positive" if p >= self.threshold else "negative", "score": round(p, 4)}

    def predict_batch(self, payloads: list) -> list:
        return [self.predict(p) for p in payloads]
