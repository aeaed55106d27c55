"""Sentiment of a whole document, sentence by sentence: the kind of request that takes a while, served
as an async API (`kind: async`). Clients submit a document, get an id at once, and read the result later.

The model is the sentiment example's word weights (`model/weights.json`), so this runs anywhere without
downloads or a GPU; `config.seconds_per_document` stands in for a slow model.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

WORD = re.compile(r"[a-z']+")
SENTENCE = re.compile(r"[^.!?]+[.!?]?")


class Predictor:
    def __init__(self, config: dict, model_dir: str):
        self.seconds = float(config.get("seconds_per_document", 0))
        weights = json.loads((Path(model_dir) / "weights.json").read_text())
        self.bias = weights["bias"]
        self.words = weights["words"]

    def _score(self, sentence: str) -> float:
        score = self.bias + sum(self.words.get(w, 0.0) for w in WORD.findall(sentence.lower()))
        return 1 / (1 + math.exp(-score))

    def predict(self, payload):
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            raise ValueError('send a JSON object with a "text" string, e.g. {"text": "A great film. The ending dragged."}')
        time.sleep(self.seconds)
        sentences = [s.strip() for s in SENTENCE.findall(payload["text"]) if s.strip()]
        scores = [round(self._score(s), 4) for s in sentences]
        overall = round(sum(scores) / len(scores), 4) if scores else None
        return {
            "sentences": [{"text": s, "score": p} for s, p in zip(sentences, scores, strict=True)],
            "overall": overall,
            "label": None if overall is None else ("positive" if overall >= 0.5 else "negative"),
        }

    def predict_batch(self, payloads: list) -> list:
        # One bad document fails the batch; the worker then retries each document alone, so only that one fails.
        return [self.predict(p) for p in payloads]
