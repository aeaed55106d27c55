"""Helpers for torch predictors: load a model from `model_dir`, pick the device, size the thread pool
to the container's CPU limit, run in inference mode and warm up before the server reports ready.

Imported only by predictors that use torch (`from mlkit_runtime.torch_utils import load_model`); the server
itself never imports torch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

MODEL_FILES = ("model.ts", "model.torchscript", "model.pt", "model.pth")


def cpu_limit() -> int:
    """CPUs this process may use: the cgroup quota (a container's CPU limit) or the affinity mask."""
    try:
        max_quota, max_period = Path("/sys/fs/cgroup/cpu.max").read_text().split()  # cgroup v2
        if max_quota != "max":
            return max(1, math.ceil(int(max_quota) / int(max_period)))
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())  # cgroup v1
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota > 0:
            return max(1, math.ceil(quota / period))
    except (OSError, ValueError):
        pass
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def configure_threads(threads: int | None = None) -> int:
    """torch intra-op threads = the CPU limit (or MLKIT_TORCH_THREADS), not the host's core count."""
    n = threads or int(os.environ.get("MLKIT_TORCH_THREADS", 0)) or cpu_limit()
    torch.set_num_threads(n)
    return n


def pick_device(prefer: str | None = None) -> torch.device:
    """CUDA where present, else Apple MPS, else CPU; MLKIT_DEVICE or `prefer` overrides."""
    choice = prefer or os.environ.get("MLKIT_DEVICE")
    if choice and choice != "auto":
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_model(model_dir: str | Path, device: torch.device | None = None, build: Callable[[], torch.nn.Module] | None = None) -> torch.nn.Module:
    """Load a TorchScript file, a whole saved module, or a state dict (into `build()`), in eval mode.

    Looks for model.ts / model.torchscript (TorchScript), then model.pt / model.pth (a saved module,
    or a state dict when `build` is given).
    """
    device = device or pick_device()
    folder = Path(model_dir)
    found = next((folder / n for n in MODEL_FILES if (folder / n).is_file()), None)
    if found is None:
        raise FileNotFoundError(f"{folder}: no model file (looked for {', '.join(MODEL_FILES)})")
    if found.suffix in (".ts", ".torchscript"):
        model: torch.nn.Module = torch.jit.load(str(found), map_location=device)  # type: ignore[no-untyped-call]
    else:
        obj = torch.load(str(found), map_location=device, weights_only=build is not None)
        if isinstance(obj, dict):
            if build is None:
                raise ValueError(f"{found} holds a state dict; pass build=<function returning the module> to load it")
            model = build()
            model.load_state_dict(obj)
        elif isinstance(obj, torch.nn.Module):
            model = obj
        else:
            raise ValueError(f"{found} holds a {type(obj).__name__}, not a module or a state dict")
    loaded: torch.nn.Module = model.to(device).eval()
    return loaded


def infer(model: torch.nn.Module, *inputs: Any) -> Any:
    with torch.inference_mode():
        return model(*inputs)


def warmup(model: torch.nn.Module, example: torch.Tensor, runs: int = 3) -> None:
    """Run a few forwards so lazy initialisation (kernels, allocator, JIT) happens before traffic."""
    with torch.inference_mode():
        for _ in range(runs):
            model(example)
    if example.is_cuda:
        torch.cuda.synchronize()
