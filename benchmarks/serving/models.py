"""The three benchmark models, built in code with a fixed seed (no download), and their payloads.

- mlp: 784-256-256-10, so small that serving overhead dominates;
- cnn: an MNIST-sized convnet, a typical small model;
- encoder: a 2-layer Transformer encoder, d=256, sequence 128, which gains from batching;
- image: a small convnet over a 224x224x3 image (height, width, channels as images come), whose
  input is 150k floats: as JSON over a megabyte per request, as binary tensors 588 KiB.
"""

from __future__ import annotations

import os
import random
import time

import numpy as np
import torch
from torch import nn

SEQ = 128
VOCAB = 1000
IMAGE = (224, 224, 3)
# Each model's input per sample, as OIP v2 clients send it (oip.py).
SHAPES = {"mlp": [784], "cnn": [784], "encoder": [SEQ], "image": list(IMAGE)}


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    if name == "mlp":
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    elif name == "cnn":
        model = nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, 32, 3), nn.ReLU(),
            nn.Conv2d(32, 64, 3), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(9216, 128), nn.ReLU(),
            nn.Linear(128, 10),
        )
    elif name == "encoder":
        model = Encoder()
    elif name == "image":
        model = ImageNet()
    else:
        raise ValueError(f"unknown model {name!r} (valid: mlp, cnn, encoder, image)")
    return model.eval()


class Encoder(nn.Module):
    def __init__(self, d: int = 256, layers: int = 2):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d)
        layer = nn.TransformerEncoderLayer(d, nhead=4, dim_feedforward=4 * d, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d, 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.embed(tokens)).mean(dim=1))


class ImageNet(nn.Module):
    """A strided stem and two convolutions, pooled: about 11 M multiply-adds per image."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 7, stride=4, padding=3), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(32, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.reshape(-1, *IMAGE).permute(0, 3, 1, 2)  # NHWC as sent -> NCHW
        return self.head(self.features(x))


def payload(name: str) -> dict:
    rng = random.Random(0)
    if name == "encoder":
        return {"x": [rng.randrange(VOCAB) for _ in range(SEQ)]}
    if name == "image":
        return {"x": [round(rng.random(), 4) for _ in range(IMAGE[0] * IMAGE[1] * IMAGE[2])]}
    return {"x": [round(rng.random(), 4) for _ in range(784)]}


def to_tensor(name: str, rows: list[list]) -> torch.Tensor:
    # Through numpy: three times faster than torch.tensor() on nested lists. Every server uses this.
    return torch.from_numpy(np.asarray(rows, dtype=np.int64 if name == "encoder" else np.float32))


def setup_torch() -> None:
    torch.set_num_threads(int(os.environ.get("BENCH_TORCH_THREADS", "1")))


def bare_throughput(name: str, batch_sizes=(1, 8, 32), seconds: float | None = None, device: str = "cpu") -> dict[int, float]:
    """Samples per second of the model alone at each batch size (input already a tensor on the device),
    `seconds` at each (BENCH_BARE_SECONDS, 2 by default; the benchmarks' smoke tests shorten it)."""
    if seconds is None:
        seconds = float(os.environ.get("BENCH_BARE_SECONDS", "2"))
    setup_torch()
    # BENCH_CLOCK=cpu: samples per CPU-second of this process, which other processes on a shared core do not shrink.
    clock = time.process_time if os.environ.get("BENCH_CLOCK") == "cpu" else time.perf_counter
    model = build(name).to(device)
    row = payload(name)["x"]
    out = {}
    with torch.inference_mode():
        for bs in batch_sizes:
            x = to_tensor(name, [row] * bs).to(device)
            for _ in range(3):
                model(x)
            sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
            sync()
            n = 0
            start = clock()
            while clock() - start < seconds:
                model(x)
                n += bs
            sync()
            out[bs] = n / (clock() - start)
    return out


if __name__ == "__main__":
    import json
    import sys

    device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
    sizes: tuple[int, ...] = (1, 8, 32, 64) if device.startswith("cuda") else (1, 8, 32)
    if len(sys.argv) > 3:  # the batch sizes to measure, comma-separated (fronts.py: batch 8 between runs)
        sizes = tuple(int(size) for size in sys.argv[3].split(","))
    print(json.dumps(bare_throughput(sys.argv[1], sizes, device=device)))
