"""The capacity search: for each configuration, the highest offered rate a replica serves with p99
within the target and at least 99% of requests answered 2xx.

Each configuration gets a fresh runtime. A short closed-loop burst finds the ceiling; open-loop runs
(Poisson arrivals) then step from 70% of it: up by 25% while the target holds, down by 40% while it
does not, and one geometric bisection between the best pass and the lowest failure. So each
configuration costs about five runs of `seconds` each, and the capacity is known to within about
12% (the bisection halves the last 25% step, geometrically).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import UserError
from . import loadgen
from .server import Config, Target, running

SUCCESS = 0.99  # answered 2xx; fewer means the replica shed load (503) or timed out at this rate
MAX_STEPS = 4  # steps up, or down, before the search gives up on finding the edge


@dataclass(frozen=True)
class Point:
    """One open-loop run at one offered rate."""

    offered_rps: float
    served_rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    success: float
    passed: bool


@dataclass
class Outcome:
    """A configuration's runs and its capacity (the best passing point, None when none passed)."""

    config: Config
    ceiling_rps: float
    points: list[Point] = field(default_factory=list)

    @property
    def capacity(self) -> Point | None:
        passing = [p for p in self.points if p.passed]
        return max(passing, key=lambda p: p.offered_rps) if passing else None

    def as_json(self) -> dict[str, Any]:
        cap = self.capacity
        return {
            "config": asdict(self.config),
            "ceiling_rps": round(self.ceiling_rps, 1),
            "capacity_rps": round(cap.offered_rps, 1) if cap else 0.0,
            "at_capacity": _rounded(cap) if cap else None,
            "points": [_rounded(p) for p in sorted(self.points, key=lambda p: p.offered_rps)],
        }


def _rounded(point: Point) -> dict[str, Any]:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(point).items()}


def measure(result: loadgen.Result, p99_target_ms: float) -> Point:
    p99 = result.percentile_ms(0.99)
    return Point(
        offered_rps=result.offered_rps,
        served_rps=result.served_rps,
        p50_ms=result.percentile_ms(0.50),
        p99_ms=p99,
        mean_ms=result.mean_ms,
        success=result.success,
        passed=result.success >= SUCCESS and p99 <= p99_target_ms,
    )


def search(run: Callable[[float], Point], ceiling: float, floor: float = 1.0) -> list[Point]:
    """Step from 70% of the closed-loop ceiling to the edge of the target; see the module docstring."""
    points: list[Point] = []
    rate = max(floor, 0.7 * ceiling)
    first = run(rate)
    points.append(first)
    factor = 1.25 if first.passed else 0.6
    for _ in range(MAX_STEPS):
        if first.passed != points[-1].passed:
            break
        rate *= factor
        if rate < floor:
            break
        points.append(run(rate))
    passing = [p.offered_rps for p in points if p.passed]
    if passing:
        above = [p.offered_rps for p in points if not p.passed and p.offered_rps > max(passing)]
        if above:
            points.append(run(math.sqrt(max(passing) * min(above))))
    return points


def bench_config(
    target: Target,
    config: Config,
    route: str,
    body: bytes,
    seconds: float,
    p99_target_ms: float,
    progress: Callable[[str], None],
) -> Outcome:
    """Start the runtime with `config`, find its capacity, stop it."""
    with running(target, config) as base:
        url = base + route
        connections = config.max_in_flight + target.max_queue + 16  # more than the server admits: its own limits shed, not ours
        # Warm up (imports, first batches, connection setup) before anything is timed.
        asyncio.run(loadgen.saturate(url, body, min(config.max_in_flight, 64), 0.3))
        ceiling = asyncio.run(loadgen.saturate(url, body, config.max_in_flight, max(0.5, seconds / 2)))
        if ceiling == 0:
            raise UserError(f"{target.name} answered no request with 2xx ({config.label()}): try the payload with `mlkit serve` and curl, then fix --payload")
        outcome = Outcome(config, ceiling)
        progress(f"  closed-loop ceiling {ceiling:.0f} req/s")

        def run(rate: float) -> Point:
            grace = max(2.0, 10 * p99_target_ms / 1000)
            point = measure(asyncio.run(loadgen.run(url, body, rate, seconds, poisson=True, connections=connections, grace_s=grace)), p99_target_ms)
            verdict = "ok" if point.passed else ("p99 over target" if point.success >= SUCCESS else f"only {point.success:.1%} answered 2xx")
            progress(f"  {rate:8.1f} req/s offered: served {point.served_rps:8.1f}, p50 {point.p50_ms:7.1f} ms, p99 {point.p99_ms:7.1f} ms  {verdict}")
            return point

        outcome.points = search(run, ceiling)
    return outcome
