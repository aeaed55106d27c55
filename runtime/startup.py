"""How long this server took to start, phase by phase: one log line and two Prometheus gauges.

A cold start is node, image pull, model download (the pod's timestamps, `mlkit status`) and then this
process. The phases here split the process's part so that the slow one can be found and cut:

- `process`: from exec to the runtime loading the predictor: the interpreter and the runtime's own
  imports (FastAPI, uvicorn, ...), and under `mlkit serve` the CLI's.
- `imports`: importing the predictor's module, with whatever it imports at the top (torch, ...).
- `construct`: the predictor's `__init__`: reading the model.
- `warmup`: the predictor's `warmup()`, if it has one.
- `fronts`: with several HTTP front processes (runtime/fronts.py), from the model process being ready to
  a front starting its server: forking it and building its app. The phases before are the model process's.
- `serve`: the server's own setup around these (uvicorn's start, the app's lifespan, the batcher).

`mlkit_startup_phase_seconds{phase}` holds each; `mlkit_startup_seconds` the whole, process start to ready.
"""

from __future__ import annotations

import os
import time

from prometheus_client import CollectorRegistry, Gauge

PHASES = ("process", "imports", "construct", "warmup", "fronts", "serve")


def process_age() -> float | None:
    """Seconds since this process was exec'd, from the kernel's record (Linux: /proc/self/stat, 10 ms steps)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read().decode()
        # Field 22 is starttime in clock ticks after boot; the command name (field 2) may hold spaces, so count after its ')'.
        start_ticks = int(stat.rpartition(")")[2].split()[19])
        return time.clock_gettime(time.CLOCK_BOOTTIME) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None  # not Linux: the process phase is unknown, and left out


class Startup:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.phases: dict[str, float] = {}
        self.total: float | None = None
        self._mark = time.monotonic()
        self._gauge = Gauge(
            "mlkit_startup_phase_seconds", "Seconds each start phase of this server took: process, imports, construct, warmup, serve.",
            ["phase"],
            registry=registry,
            multiprocess_mode="max",  # several processes (runtime/fronts.py): the slowest one's
        )
        self._total = Gauge("mlkit_startup_seconds", "Seconds from process start until this server was ready.", registry=registry, multiprocess_mode="max")

    def begin(self) -> None:
        """The runtime starts loading the predictor: what came before is the process phase."""
        self._mark = time.monotonic()
        age = process_age()
        if age is not None:
            self._record("process", max(age, 0.0))

    def end(self, phase: str) -> None:
        """`phase` ran from the previous mark until now (added to what it took before)."""
        now = time.monotonic()
        self._record(phase, self.phases.get(phase, 0.0) + now - self._mark)
        self._mark = now

    def ready(self) -> str:
        """The server is ready: the whole, and the one line that says it."""
        self.end("serve")
        self.total = sum(self.phases.values())
        if "process" in self.phases:
            self._total.set(self.total)
        parts = ", ".join(f"{name} {self.phases[name]:.3f}s" for name in PHASES if name in self.phases)
        whole = f"ready {self.total:.3f}s after the process started" if "process" in self.phases else "process start unknown"
        return f"startup: {parts}; {whole}"

    def _record(self, phase: str, seconds: float) -> None:
        self.phases[phase] = seconds
        self._gauge.labels(phase).set(seconds)
