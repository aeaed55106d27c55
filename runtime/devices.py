"""Which device each model process is pinned to (`--model-processes`, docs/guides/processes.md).

One model process per device: each sees only its own device (its CUDA_VISIBLE_DEVICES), so `cuda:0` in
the predictor is that process's GPU and the model is loaded once per device, never per front. The
devices a container has are read from the environment rather than from torch, because the parent
forks the model processes before anything imports the predictor (or torch): CUDA_VISIBLE_DEVICES where
it is set, else NVIDIA_VISIBLE_DEVICES, which the NVIDIA device plugin sets in a pod that asks for
`nvidia.com/gpu` (inside the container those GPUs are numbered from 0).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from .errors import SettingsError

NOT_DEVICES = {"", "all", "none", "void"}  # NVIDIA_VISIBLE_DEVICES values that name no list of GPUs


def visible_gpus(env: Mapping[str, str]) -> list[str]:
    """The CUDA_VISIBLE_DEVICES value that pins a process to each GPU this container may use."""
    cuda = env.get("CUDA_VISIBLE_DEVICES")
    if cuda is not None:
        return [d.strip() for d in cuda.split(",") if d.strip() and d.strip() != "-1"]
    nvidia = env.get("NVIDIA_VISIBLE_DEVICES", "").strip()
    if nvidia.lower() in NOT_DEVICES:
        return []
    return [str(n) for n, d in enumerate(nvidia.split(",")) if d.strip()]


def model_process_devices(setting: str, env: Mapping[str, str] = os.environ) -> list[str | None]:
    """One entry per model process: the CUDA_VISIBLE_DEVICES it gets, or None to leave the environment
    as it is. `1` (the default) is one process that sees every device (a model sharded across GPUs
    needs that); `auto` is one per visible GPU (1 without GPUs); N is N processes, spread round-robin
    over the GPUs where there are any (N above the GPU count shares a GPU between processes)."""
    gpus = visible_gpus(env)
    if setting == "auto":
        return list(gpus) if len(gpus) > 1 else [None]
    if not setting.isdigit() or not 1 <= int(setting) <= 64:
        raise SettingsError(f"--model-processes / MLKIT_MODEL_PROCESSES must be auto or a number from 1 to 64, got {setting[:40]!r}")
    count = int(setting)
    if count == 1:
        return [None]
    return [gpus[n % len(gpus)] if gpus else None for n in range(count)]
