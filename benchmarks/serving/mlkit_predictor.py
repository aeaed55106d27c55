"""The benchmark models as an mlkit predictor (config: {"model": "cnn"}); batching through predict_batch."""

from __future__ import annotations

import models
import numpy as np
import torch

from mlkit_runtime.torch_utils import pick_device


class Predictor:
    def __init__(self, config, model_dir):
        models.setup_torch()
        self.name = config["model"]
        self.device = pick_device(config.get("device", "cpu"))  # "auto": CUDA where present
        self.model = models.build(self.name).to(self.device)

    def predict(self, payload):
        return self.predict_batch([payload])[0]

    def predict_batch(self, payloads):
        x = models.to_tensor(self.name, [p["x"] for p in payloads]).to(self.device, non_blocking=True)
        with torch.inference_mode():
            return self.model(x).tolist()

    def warmup(self):
        self.predict(models.payload(self.name))


class Unbatched(Predictor):
    """The same predictor without predict_batch: one forward per request."""

    predict_batch = None  # type: ignore[assignment]

    def predict(self, payload):
        x = models.to_tensor(self.name, [payload["x"]]).to(self.device)
        with torch.inference_mode():
            return self.model(x)[0].tolist()


class NoModel:
    """The same request path with a model that costs nothing: what the server itself spends (breakdown.py)."""

    def __init__(self, config, model_dir):
        pass

    def predict(self, payload):
        return [0.0] * 10

    def predict_batch(self, payloads):
        return [[0.0] * 10 for _ in payloads]


class Oip(Predictor):
    """For /v2/models/{name}/infer (oip.py): the input arrives as a numpy array (the runtime's default,
    from JSON or binary tensors alike) and the logits go back as arrays, binary when the client asks."""

    def predict(self, payload):
        return self.predict_batch([payload])[0]

    def predict_batch(self, payloads):
        # /predict bodies ({"x": [...]}, run.py's readiness probe) become arrays here; OIP ones already are.
        rows = [p["inputs"][0]["data"] if "inputs" in p else np.asarray(p["x"], dtype=np.int64 if self.name == "encoder" else np.float32) for p in payloads]
        x = torch.from_numpy(np.stack(rows))
        with torch.inference_mode():
            logits = self.model(x.reshape(len(payloads), -1).to(self.device)).cpu().numpy()
        return [{"logits": row} for row in logits]



class Pinned(Predictor):
    """The model pinned to one core (config "core"): in a runtime with fronts, the model process only,
    since the predictor is constructed there; the fronts stay where the parent was started."""

    def __init__(self, config, model_dir):
        import os

        os.sched_setaffinity(0, {int(config["core"])})
        super().__init__(config, model_dir)


class TensorSum:
    """An OIP tensor in, its sum out, pinned to one core (config "core"): nearly all a request costs is
    moving the tensor to the model and reading it once (benchmarks/serving/fronts.py --tensor-mb)."""

    def __init__(self, config, model_dir):
        import os

        os.sched_setaffinity(0, {int(config["core"])})

    def predict(self, payload):
        return self.predict_batch([payload])[0]

    def predict_batch(self, payloads):
        return [{"sum": np.array([p["inputs"][0]["data"].sum(dtype=np.float64)])} for p in payloads]


class PinnedOip(Pinned, Oip):
    """Oip pinned to one core (config "core") by Pinned's constructor: fronts.py --oip."""
