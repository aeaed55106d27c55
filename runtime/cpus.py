"""How many HTTP front processes fit the CPU a pod has (docs/guides/processes.md).

The split into fronts and one model process costs a process hop per request, which pays only where
the fronts and the model each get a core: one CPU or less stays one process.
"""

from __future__ import annotations

import math
from pathlib import Path

CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "QUOTA PERIOD", or "max PERIOD" without a limit


def cgroup_cpus(path: Path = CPU_MAX) -> float | None:
    """The CPU quota of this container in cores, or None where there is none (a laptop) or no cgroup v2."""
    try:
        quota, period = path.read_text().split()[:2]
        if quota == "max":
            return None
        return int(quota) / int(period)
    except (OSError, ValueError):
        return None


MAX_FRONTS = 64  # what --fronts / MLKIT_FRONTS accept (settings.py), and the spec's concurrency.fronts


def fronts_for(cpus: float | None) -> int:
    """Fronts for a pod of `cpus` cores (None: the cgroup's quota): 1 up to 1 CPU, else one core for the
    model process and the rest for fronts, at least 2 and at most MAX_FRONTS (a pod of 100 CPUs would
    otherwise get 99, a count the runtime refuses when it is written out)."""
    if cpus is None:
        cpus = cgroup_cpus()
    if cpus is None or cpus <= 1:
        return 1
    return min(MAX_FRONTS, max(2, math.floor(cpus) - 1))
