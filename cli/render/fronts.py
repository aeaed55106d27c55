"""How many HTTP front processes a realtime API's pods run (the runtime's MLKIT_FRONTS): the spec's
`concurrency.fronts`, else 1 (docs/guides/processes.md).

Why not yet the CPU request by default (the runtime's `cpus.fronts_for`, which `--fronts auto` applies): in
this first version a lone request pays a hop to the model process (c=1 p50 1.44x single-process on the
benchmark, issue 26 asks for at most 1.10x) and tensors are pickled rather than shared, so a pod that
upgrades mlkit would get slower at low load without asking. Until those land the split is opt-in; the
rule stays in one place so that switching the default is this function's change alone.
"""

from __future__ import annotations

from ..spec.schema import Api


def api_fronts(api: Api) -> int:
    if api.kind != "realtime" or api.engine is not None:
        return 1
    return api.concurrency.fronts or 1


def api_model_processes(api: Api) -> int:
    """Model processes in a realtime API's pods: one per GPU where `concurrency.model_per_gpu` asks (the
    runtime pins each to one of the GPUs the device plugin gave the container), else one that sees them all."""
    if api.kind != "realtime" or api.engine is not None or not api.concurrency.model_per_gpu:
        return 1
    return max(1, api.compute.gpu)
