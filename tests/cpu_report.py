"""Where a test phase's time went: `python -m tests.cpu_report PHASE TESTS_JSONL STAT_SAMPLES START END`.

scripts/test.sh records each test's wall and CPU seconds (tests/conftest.py, MLKIT_TEST_CPU) and samples
the machine's /proc/stat every few seconds while the phases run. On a 2-core machine shared with other
work, wall time alone cannot say whether a phase is bound by the CPU (cutting CPU shortens it) or by
waits (more workers, or overlapping it with other work, shortens it), nor whether its end is a tail
where one worker runs a long test alone. This prints, for one phase: the CPU its tests used, how busy
the machine was (all its processes, not only the tests'), minute by minute, and the tests that used
the most CPU."""

from __future__ import annotations

import json
import sys
from pathlib import Path

TOP = 10


def samples(path: Path) -> list[tuple[float, float, float]]:
    """(time, busy jiffies, total jiffies) from lines `EPOCH cpu USER NICE SYSTEM IDLE IOWAIT ...`."""
    out = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "cpu":
            continue
        ticks = [float(f) for f in fields[2:]]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0.0)
        out.append((float(fields[0]), sum(ticks) - idle, sum(ticks)))
    return out


def busy_by_minute(points: list[tuple[float, float, float]], start: float, end: float) -> list[float]:
    """The machine's busy fraction (0..1 of all its cores) in each minute from start to end."""
    inside = [p for p in points if start <= p[0] <= end]
    minutes: list[float] = []
    t = start
    while t < end:
        span = [p for p in inside if t <= p[0] <= min(t + 60, end)]
        if len(span) >= 2 and span[-1][2] > span[0][2]:
            minutes.append((span[-1][1] - span[0][1]) / (span[-1][2] - span[0][2]))
        t += 60
    return minutes


def report(phase: str, tests: Path, stat: Path, start: float, end: float) -> str:
    rows = [json.loads(line) for line in tests.read_text().splitlines() if line.strip()] if tests.is_file() else []
    cpu = sum(r["cpu_s"] + r["children_cpu_s"] for r in rows)
    wall = end - start
    lines = [f"cpu report, {phase}: {wall:.0f} s of wall; its {len(rows)} tests used {cpu:.0f} CPU-s (their own and their waited-for children's)"]
    minutes = busy_by_minute(samples(stat), start, end)
    if minutes:
        lines.append("  machine busy, % of all cores, minute by minute: " + " ".join(f"{100 * m:.0f}" for m in minutes))
    for r in sorted(rows, key=lambda r: -(r["cpu_s"] + r["children_cpu_s"]))[:TOP]:
        lines.append(f"  {r['cpu_s'] + r['children_cpu_s']:7.1f} CPU-s {r['wall_s']:7.1f} s  {r['test']}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    phase, tests, stat, start, end = argv
    print(report(phase, Path(tests), Path(stat), float(start), float(end)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
