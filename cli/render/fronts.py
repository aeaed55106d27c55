"""How many HTTP front processes a realtime API's pods run (the runtime's MLKIT_FRONTS): the spec's
`concurrency.fronts`, else the runtime's rule over the API's CPU request (the rule `--fronts auto`
applies in a container, `mlkit_runtime.cpus.fronts_for`): 1 up to 1 CPU, else one core for the model
process and the rest for fronts, at least 2 (docs/guides/processes.md). Written here again rather than
imported: `mlkit render` imports no part of the runtime (tests/test_startup_imports.py), and
tests/render/test_fronts.py checks that both give the same count for every CPU request.

The split was opt-in while it cost a lone request a hop (c=1 p50 1.44x single-process in its first
version) and tensors were pickled through a socket. Both are gone: tensors cross through shared memory
(session 9) and c=1 p50 is 0.92x single-process, while the CNN at c=16 reaches 0.87-0.90 of the bare
forward on one core against one process's 0.66-0.76 (benchmarks/serving/fronts.py, session 12). A pod
of one CPU or less stays one process, as before; `concurrency.fronts: 1` keeps a bigger one there.
"""

from __future__ import annotations

import math
from fractions import Fraction

from ..spec.schema import Api, quantity_value


def api_fronts(api: Api) -> int:
    if api.kind != "realtime" or api.engine is not None:
        return 1
    if api.concurrency.fronts is not None:
        return api.concurrency.fronts
    cpus = quantity_value(api.compute.cpu)
    return fronts_for(cpus) if cpus is not None else 1


MAX_FRONTS = 64  # the spec's bound on concurrency.fronts and the runtime's on MLKIT_FRONTS


def fronts_for(cpus: Fraction | float) -> int:
    """The runtime's `cpus.fronts_for` for a known CPU count: 1 up to 1 CPU, else one core for the model
    process and the rest for fronts, at least 2 and at most MAX_FRONTS."""
    return 1 if cpus <= 1 else min(MAX_FRONTS, max(2, math.floor(cpus) - 1))


def api_model_processes(api: Api) -> int:
    """Model processes in a realtime API's pods: one per GPU where `concurrency.model_per_gpu` asks (the
    runtime pins each to one of the GPUs the device plugin gave the container), else one that sees them all."""
    if api.kind != "realtime" or api.engine is not None or not api.concurrency.model_per_gpu:
        return 1
    return max(1, api.compute.gpu)
