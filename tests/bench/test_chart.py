"""The bench chart on hand-made measurements: its elements, and the chart as Chromium lays it out."""

from __future__ import annotations

import pytest

from mlkit.bench import chart
from mlkit.bench.server import Config
from mlkit.bench.sweep import Outcome, Point
from tests.bench.chart_check import SVG, check_elements, check_rendered, coords

TARGET = 50.0


def point(rate: float, p99: float, success: float = 1.0) -> Point:
    return Point(rate, rate * min(1.0, success), p99 / 3, p99, p99 / 2, success, success >= 0.99 and p99 <= TARGET, windows=3, p99_limit_ms=TARGET)


def outcomes() -> list[Outcome]:
    # Points in the order a search measures them: up, over the edge, back down, bisect; one series
    # misses on p99, one on the 2xx share, one on both; one far above the axis's clip.
    slow = Outcome(Config(1, 5, 32), 700, [point(490, 20), point(612, 245, 0.93), point(550, 30), point(580, 40)])
    fast = Outcome(Config(16, 5, 32), 2800, [point(1980, 116), point(1190, 14), point(1540, 20), point(1860, 19)])
    shed = Outcome(Config(1024, 12.5, 128), 2700, [point(1900, 30, 0.56), point(1140, 14), point(1470, 14), point(1670, 16)])
    never = Outcome(Config(64, 100, 4), 10, [point(8, 400)])
    return [slow, fast, shed, never]


def test_chart_elements_and_rendering(tmp_path):
    runs = outcomes()
    path = tmp_path / "chart.svg"
    path.write_text(chart.svg(runs, TARGET, "mlkit bench sentiment: latency against offered load"))
    root = check_elements(path, configs=len(runs))
    # The capacities are marked where they are, with their spread.
    caps = {float(line.get("data-rps") or 0): float(line.get("x1") or 0) for line in root.iter(SVG + "line") if line.get("class") == "capacity"}
    assert sorted(caps) == [580.0, 1670.0, 1860.0]
    xs = [x for _, x in sorted(caps.items())]
    assert xs == sorted(xs)
    spreads = [r for r in root.iter(SVG + "rect") if r.get("class") == "spread"]
    assert len(spreads) == 3
    legend = " | ".join(t.text or "" for t in root.iter(SVG + "text"))
    assert "capacity 1860 ± 186 req/s" in legend and "no rate met the targets" in legend and "p99 above 158 ms: drawn at the top" in legend
    # The first series was measured out of order; drawn, it runs left to right through 490, 550, 580, 612.
    p99 = [line for line in root.iter(SVG + "polyline") if line.get("class") == "p99"][0]
    assert len(coords(p99)) == 4
    kinds = [(g.get("class") or "").split()[1] for g in root.iter(SVG + "g") if (g.get("class") or "").startswith("point ")]
    assert kinds.count("met") == 9 and (kinds.count("p99"), kinds.count("2xx"), kinds.count("p99+2xx")) == (2, 1, 1)
    report = check_rendered(path, tmp_path / "chart.png")
    assert report["entries"] >= 4 + 4 + 2 + 4
    # The rendered check sees a legend cut off at the right edge (the fault issue 28 found).
    width = root.get("width")
    cut = tmp_path / "cut.svg"
    cut.write_text(
        path.read_text()
        .replace(f'width="{width}" height=', f'width="{float(width or 0) - 120:g}" height=', 1)
        .replace(f'viewBox="0 0 {width} ', f'viewBox="0 0 {float(width or 0) - 120:g} ', 1)
    )
    with pytest.raises(AssertionError, match="legend-entry|outside|text"):
        check_rendered(cut, tmp_path / "cut.png")


def test_ticks_are_round_and_enough():
    assert chart.ticks(157.5) == [0, 20, 40, 60, 80, 100, 120, 140]
    assert chart.ticks(52.5) == [0, 10, 20, 30, 40, 50]
    assert chart.ticks(2100) == [0, 500, 1000, 1500, 2000]
    assert chart.ticks(4.2) == [0, 1, 2, 3, 4]
    for top in (0.7, 3.3, 9.9, 10, 11, 99, 101, 3999, 123456):
        marks = chart.ticks(top)
        assert 4 <= len(marks) <= 11 and marks[-1] <= top, (top, marks)
