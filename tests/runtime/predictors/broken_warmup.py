"""Loads, then fails in warmup(): the server must stop before it is ready, in one line."""


class Predictor:
    def __init__(self, config, model_dir):
        pass

    def predict(self, payload):
        return payload

    async def warmup(self):
        raise OSError("the GPU is not there")
