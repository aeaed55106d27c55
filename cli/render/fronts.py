"""How many HTTP front processes a realtime API's pods run (the runtime's MLKIT_FRONTS): the spec's
`concurrency.fronts`, or the runtime's own rule applied to the CPU the pod requests, so that the
rendered pod and `mlkit serve` agree (mlkit_runtime/cpus.py; docs/guides/processes.md)."""

from __future__ import annotations

from mlkit_runtime.cpus import fronts_for

from ..spec.schema import Api, quantity_value


def api_fronts(api: Api) -> int:
    if api.kind != "realtime" or api.engine is not None:
        return 1
    if api.concurrency.fronts is not None:
        return api.concurrency.fronts
    cpus = quantity_value(api.compute.cpu)  # range-checked by the schema: 1m to 1024
    return fronts_for(float(cpus)) if cpus is not None else 1
