"""A batching predictor for async API tests: it doubles `x`, fails on `poison`, and can be slowed down
(`sleep_s` in the payload, or config `sleep_s` for every batch) so that a worker can be killed mid-batch.
With config `log` it appends every id it predicted to that file, so tests can count attempts."""

import time


class Predictor:
    def __init__(self, config, model_dir):
        self.sleep_s = float(config.get("sleep_s", 0))
        self.log = config.get("log")

    def predict_batch(self, payloads):
        if any(isinstance(p, dict) and p.get("poison") for p in payloads):
            raise ValueError("poison request")
        if self.log:  # before the sleep: a test that sees a slow request here knows this worker is mid-batch
            with open(self.log, "a") as f:
                f.writelines(f"{p['n']}\n" for p in payloads if isinstance(p, dict) and "n" in p)
        time.sleep(self.sleep_s + max((p.get("sleep_s", 0) for p in payloads if isinstance(p, dict)), default=0))
        return [{"y": p["x"] * 2, "n": p.get("n")} if isinstance(p, dict) else {"bytes": len(p)} for p in payloads]

    def predict(self, payload):
        return self.predict_batch([payload])[0]
