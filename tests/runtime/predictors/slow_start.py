"""A predictor whose start phases take known times: an import, a constructor and a warm-up that sleep."""

import time

time.sleep(0.4)  # as a heavy import would (torch, ...)


class Predictor:
    def __init__(self, config, model_dir):
        time.sleep(0.3)  # as reading weights would

    def warmup(self):
        time.sleep(0.2)  # as a first compiled call would

    def predict(self, payload):
        return payload
