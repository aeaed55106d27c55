"""The capacity search: for each configuration, the highest offered rate a replica serves with p99
within the target and at least 99% of requests answered 2xx, and how far that figure can be trusted.

Each configuration gets a fresh runtime. A short closed-loop burst finds the ceiling; open-loop rates
then step from 70% of it: up by 25% while the target holds, down by 40% while it does not, then
geometric bisections between the best pass and the lowest failure until the two are within the
stability tolerance of each other (three at most).

Each rate is measured the way Triton's perf_analyzer measures a load level: in consecutive windows (of
`seconds`, longer where a window would hold fewer than 50 requests, as its count_windows mode asks for,
or where three windows would span less than p99 target / tolerance, the time a queue growing at the
tolerance takes to show in the p99, see `horizon`; up to 10 s) until the last three agree, or
`max_windows` were measured (its --max-trials, default 10: the time bound). perf_analyzer calls three
windows stable when max/min of their throughput and of their latency are within its stability percentage
(default 10%); here the throughput must agree within the tolerance and the three must give the same
verdict on the targets. The verdict, not the latency figure, is what a capacity is read from, and a p99
of a few milliseconds on a shared machine moves by multiples from window to window while far below the
target. A rate whose windows settled is judged on those three together; one that did not settle in
`max_windows` is judged on all its windows together, and says so.

After every configuration's search, `second_look` measures each capacity rate once more (see there):
a capacity is the highest rate that passed every time, and its spread covers how far the edge moved.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import UserError
from . import loadgen
from .server import Config, Target, running

SUCCESS = 0.99  # answered 2xx; fewer means the replica shed load (503) or timed out at this rate
MAX_STEPS = 4  # steps up, or down, before the search gives up on finding the edge
STEP_UP, STEP_DOWN = 1.25, 0.6
MAX_BISECTIONS = 3
SETTLE_WINDOWS = 3  # perf_analyzer's: the last three measurements agree
MIN_REQUESTS = 50  # per window: perf_analyzer's --measurement-request-count default
MAX_WINDOW_S = 10.0  # ...but no longer than this: a model that serves 1 req/s would otherwise take 50 s a window


@dataclass(frozen=True)
class Point:
    """One offered rate: its windows taken together."""

    offered_rps: float
    served_rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    success: float
    passed: bool
    windows: int = 1
    settled: bool = True
    look: int = 1  # 2: the second look at a capacity, after every configuration had its first

    @property
    def missed(self) -> str:
        """Which target the rate missed: "p99", "2xx" (fewer than 99% answered 2xx), both, or ""."""
        if self.passed:
            return ""
        return "+".join(name for name, hit in (("p99", self.p99_ms > self.p99_limit_ms), ("2xx", self.success < SUCCESS)) if hit) or "p99"

    # The target the verdict was made against; set by `measure`, absent from hand-made points.
    p99_limit_ms: float = math.inf


@dataclass
class Outcome:
    """A configuration's rates, its capacity (the best passing rate, None when none passed) and the
    spread of that capacity."""

    config: Config
    ceiling_rps: float
    points: list[Point] = field(default_factory=list)
    tolerance: float = 0.10

    @property
    def capacity(self) -> Point | None:
        """The highest rate that passed every time it was measured."""
        failed = {p.offered_rps for p in self.points if not p.passed}
        passing = [p for p in self.points if p.passed and p.offered_rps not in failed]
        return max(passing, key=lambda p: (p.offered_rps, p.look)) if passing else None

    @property
    def spread_rps(self) -> float:
        """How far the capacity may move. The edge lies between the highest rate that ever passed and
        the lowest failure above that, so a repeat may land anywhere from the capacity up to that
        failure; where the second look failed a rate that passed before, that whole range is the
        spread (the machine moved the edge that far during the run). A failure below the capacity
        (the measurements disagree with each other) widens it to that failure; never less than the
        tolerance the windows were held to. With no failure above, the step not taken (25%)."""
        cap = self.capacity
        if cap is None:
            return 0.0
        rate = cap.offered_rps
        top = max(p.offered_rps for p in self.points if p.passed)
        above = [p.offered_rps for p in self.points if not p.passed and p.offered_rps > top]
        below = [p.offered_rps for p in self.points if not p.passed and p.offered_rps < rate]
        gaps = [(min(above) if above else STEP_UP * top) - rate, self.tolerance * rate]
        if below:
            gaps.append(rate - max(below))
        return max(gaps)

    def as_json(self) -> dict[str, Any]:
        cap = self.capacity
        return {
            "config": asdict(self.config),
            "ceiling_rps": round(self.ceiling_rps, 1),
            "capacity_rps": round(cap.offered_rps, 1) if cap else 0.0,
            "spread_rps": round(self.spread_rps, 1),
            "at_capacity": _rounded(cap) if cap else None,
            "points": [_rounded(p) for p in sorted(self.points, key=lambda p: p.offered_rps)],
        }


def _rounded(point: Point) -> dict[str, Any]:
    out = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(point).items() if k != "p99_limit_ms"}
    out["missed"] = point.missed
    return out


def verdict(window: loadgen.Window, p99_target_ms: float) -> bool:
    return window.success >= SUCCESS and window.percentile_ms(0.99) <= p99_target_ms


def agree(windows: list[loadgen.Window], p99_target_ms: float, tolerance: float) -> bool:
    """The last SETTLE_WINDOWS windows agree: the same verdict on the targets in each, and, where they
    pass, served throughput within `tolerance` (max/min, as perf_analyzer's stability percentage).
    Three failures in a row agree whatever their throughput: past the capacity the queue fills and
    the served figure drifts from window to window, and a failing rate is not a capacity to read."""
    if len(windows) < SETTLE_WINDOWS:
        return False
    last = windows[-SETTLE_WINDOWS:]
    verdicts = {verdict(w, p99_target_ms) for w in last}
    if verdicts == {False}:
        return True
    served = [w.served_rps for w in last]
    return verdicts == {True} and max(served) <= (1 + tolerance) * min(served)


def measure(windows: list[loadgen.Window], p99_target_ms: float, settled: bool) -> Point:
    """A rate's point: the settled windows taken together, or all of them when they did not settle."""
    taken = loadgen.pool(windows[-SETTLE_WINDOWS:] if settled else windows)
    p99 = taken.percentile_ms(0.99)
    return Point(
        offered_rps=taken.offered_rps,
        served_rps=taken.served_rps,
        p50_ms=taken.percentile_ms(0.50),
        p99_ms=p99,
        mean_ms=taken.mean_ms,
        success=taken.success,
        passed=taken.success >= SUCCESS and p99 <= p99_target_ms,
        windows=len(windows),
        settled=settled,
        p99_limit_ms=p99_target_ms,
    )


def search(run: Callable[[float], Point], ceiling: float, resolution: float = 0.10, floor: float = 1.0) -> list[Point]:
    """Step from 70% of the closed-loop ceiling to the edge of the target, then bisect the edge
    (geometrically) until the best pass and the lowest failure above it are within `resolution`."""
    points: list[Point] = []
    rate = max(floor, 0.7 * ceiling)
    first = run(rate)
    points.append(first)
    factor = STEP_UP if first.passed else STEP_DOWN
    for _ in range(MAX_STEPS):
        if first.passed != points[-1].passed:
            break
        rate *= factor
        if rate < floor:
            break
        points.append(run(rate))
    for _ in range(MAX_BISECTIONS):
        passing = [p.offered_rps for p in points if p.passed]
        if not passing:
            break
        above = [p.offered_rps for p in points if not p.passed and p.offered_rps > max(passing)]
        if not above or min(above) <= (1 + resolution) * max(passing):
            break
        points.append(run(math.sqrt(max(passing) * min(above))))
    return points


@dataclass(frozen=True)
class Windows:
    """How each rate is measured: window length, the agreement asked of the windows, the time bound."""

    seconds: float
    tolerance: float = 0.10
    max_windows: int = 10

    @property
    def rough(self) -> bool:
        """One window a rate (--quick): nothing to agree with, so nothing settles."""
        return self.max_windows == 1

    def length(self, rate: float, p99_target_ms: float) -> float:
        """A window's length at `rate`: `seconds`, longer where it would hold under MIN_REQUESTS
        requests, and long enough that the windows a verdict reads span `horizon` (up to MAX_WINDOW_S)."""
        judged = 1 if self.rough else SETTLE_WINDOWS
        return max(self.seconds, min(max(MIN_REQUESTS / rate, horizon(p99_target_ms, self.tolerance) / judged), MAX_WINDOW_S))


def horizon(p99_target_ms: float, tolerance: float) -> float:
    """Seconds of load after which a rate above capacity by more than `tolerance` must miss the p99 target.

    Why: each window's requests are answered within the lag as long as the backlog is younger than
    the target, so a replica offered (1 + e) times what it serves shows it only in the latency, and
    the queue starts empty (each rate begins on an idle replica). The backlog then grows by e x capacity
    requests a second, and a request sent t seconds in waits e x t for it; its latency reaches the
    target once e x t does. Windows spanning less than target / tolerance let a rate over capacity by
    more than the tolerance pass before its queue shows: 0.9 s of 0.3 s windows passed 1.17 x what a
    replica could serve at a 300 ms target, every window answered in time and their throughput
    agreeing. A run that lasts this long fails every rate over capacity by more than the tolerance."""
    return p99_target_ms / 1000 / tolerance


def _runner(url: str, body: bytes, connections: int, windows: Windows, p99_target_ms: float, progress: Callable[[str], None]) -> Callable[..., Point]:
    """Measure one rate in windows (see the module docstring) and say how it went."""
    # A request unanswered this long after its window counts as over the target: judge a window
    # once the target has passed since its end (the load goes on meanwhile).
    lag_s = p99_target_ms / 1000 + 0.05
    grace = max(2.0, 10 * p99_target_ms / 1000)

    def enough(so_far: list[loadgen.Window]) -> bool:
        return windows.rough or agree(so_far, p99_target_ms, windows.tolerance)

    def run(rate: float, look: int = 1) -> Point:
        measured = asyncio.run(
            loadgen.run_windows(
                url, body, rate, windows.length(rate, p99_target_ms), enough, windows.max_windows, lag_s, connections=connections, grace_s=grace
            )
        )
        settled = not windows.rough and agree(measured, p99_target_ms, windows.tolerance)
        point = replace(measure(measured, p99_target_ms, settled), look=look)
        misses = {"p99": "p99 over target", "2xx": f"only {point.success:.1%} answered 2xx"}
        verdict_text = " and ".join(misses[m] for m in point.missed.split("+")) if not point.passed else "ok"
        how = "" if windows.rough else (f"  ({point.windows} windows, settled)" if settled else f"  ({point.windows} windows, did not settle)")
        progress(f"  {rate:8.1f} req/s offered: served {point.served_rps:8.1f}, p50 {point.p50_ms:7.1f} ms, p99 {point.p99_ms:7.1f} ms  {verdict_text}{how}")
        return point

    return run


@contextmanager
def _serving(target: Target, config: Config, route: str, body: bytes) -> Iterator[tuple[str, int]]:
    """The runtime with `config`, warmed up (imports, first batches, connection setup) before anything is timed."""
    with running(target, config) as base:
        url = base + route
        asyncio.run(loadgen.saturate(url, body, min(config.max_in_flight, 64), 0.3))
        yield url, config.max_in_flight + target.max_queue + 16  # more connections than the server admits: its own limits shed, not ours


def bench_config(
    target: Target,
    config: Config,
    route: str,
    body: bytes,
    windows: Windows,
    p99_target_ms: float,
    progress: Callable[[str], None],
) -> Outcome:
    """Start the runtime with `config`, find its capacity, stop it."""
    with _serving(target, config, route, body) as (url, connections):
        ceiling = asyncio.run(loadgen.saturate(url, body, config.max_in_flight, max(0.5, windows.seconds)))
        if ceiling == 0:
            raise UserError(f"{target.name} answered no request with 2xx ({config.label()}): try the payload with `mlkit serve` and curl, then fix --payload")
        # --quick measures each rate once: its capacity is rough, and its spread says at least a step.
        outcome = Outcome(config, ceiling, tolerance=STEP_UP - 1 if windows.rough else windows.tolerance)
        progress(f"  closed-loop ceiling {ceiling:.0f} req/s")
        run = _runner(url, body, connections, windows, p99_target_ms, progress)
        outcome.points = search(run, ceiling, resolution=STEP_UP - 1 if windows.rough else windows.tolerance)
    return outcome


def second_look(
    target: Target,
    outcome: Outcome,
    route: str,
    body: bytes,
    windows: Windows,
    p99_target_ms: float,
    progress: Callable[[str], None],
) -> None:
    """Measure a configuration's capacity rate, and the lowest failure above it, again once every
    configuration has had its first look.

    The windows of one rate agree over a few seconds; what moves a capacity between runs is the
    machine changing over minutes (other work starting and stopping). Coming back to the edge a
    configuration-search later samples that drift within the run, both ways: if the capacity rate
    fails now, the capacity falls to the highest rate that passed every time; if the failure above
    passes now, the edge was higher than it looked. The spread covers the range the edge wandered
    over (Outcome.spread_rps), and the configurations are compared on the machine as it was for all
    of them."""
    cap = outcome.capacity
    if cap is None:
        return
    above = [p.offered_rps for p in outcome.points if not p.passed and p.offered_rps > cap.offered_rps]
    with _serving(target, outcome.config, route, body) as (url, connections):
        run = _runner(url, body, connections, windows, p99_target_ms, progress)
        outcome.points.append(run(cap.offered_rps, 2))
        if above:
            outcome.points.append(run(min(above), 2))
