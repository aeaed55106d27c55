"""How busy the machine is before the bench starts: the load generator and the runtime share its CPUs
with whatever else runs, and a capacity measured under other work moves with that work. The figure
is the 1-minute load average against the CPU count, read before mlkit starts anything of its own."""

from __future__ import annotations

import os
from typing import Any

BUSY = 0.5  # runnable processes per CPU already: half the machine is someone else's


def load() -> dict[str, Any]:
    cpus = os.cpu_count() or 1
    try:
        average = os.getloadavg()[0]
    except OSError:  # no load average on this platform: say nothing rather than guess
        return {"cpus": cpus, "load_average_1m": None, "busy": False}
    return {"cpus": cpus, "load_average_1m": round(average, 2), "busy": average >= BUSY * cpus}


def warning(machine: dict[str, Any]) -> str | None:
    if not machine["busy"]:
        return None
    return (
        f"this machine is busy (load average {machine['load_average_1m']:g} on {machine['cpus']} CPUs before the bench started): "
        "the capacities are of what was left of it, and may move by tens of percent from run to run; bench on a quiet machine when the figures matter"
    )
