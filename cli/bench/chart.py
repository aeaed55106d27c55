"""An SVG chart of latency against throughput: per configuration, p50 (dashed) and p99 (solid) in
ms against served requests per second, and the p99 target as a horizontal line. Plain SVG, no
dependencies: it opens in any browser."""

from __future__ import annotations

import math
from html import escape

from .sweep import Outcome

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
W, H, LEFT, RIGHT, TOP, BOTTOM = 760, 440, 70, 230, 40, 50


def _ticks(top: float) -> list[float]:
    step = 10 ** math.floor(math.log10(top)) if top > 0 else 1
    for mult in (1, 2, 5, 10):
        if top / (step * mult) <= 6:
            step *= mult
            break
    return [i * step for i in range(int(top // step) + 1)]


def svg(outcomes: list[Outcome], p99_target_ms: float, title: str) -> str:
    points = [p for o in outcomes for p in o.points if math.isfinite(p.p99_ms)]
    x_max = max([p.served_rps for p in points] + [1.0]) * 1.05
    # Latencies far past the target would squash the interesting part: clip the axis at 3x the target.
    y_max = min(max([p.p99_ms for p in points] + [p99_target_ms]), 3 * p99_target_ms) * 1.05
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(v: float) -> float:
        return LEFT + pw * v / x_max

    def y(v: float) -> float:
        return TOP + ph * (1 - min(v, y_max) / y_max)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>',
        f'<line x1="{LEFT}" y1="{TOP + ph}" x2="{LEFT + pw}" y2="{TOP + ph}" stroke="black"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + ph}" stroke="black"/>',
        f'<text x="{LEFT + pw / 2}" y="{H - 12}" text-anchor="middle">served requests per second (one replica)</text>',
        f'<text transform="translate(18 {TOP + ph / 2}) rotate(-90)" text-anchor="middle">latency, ms</text>',
    ]
    for t in _ticks(x_max):
        out.append(f'<text x="{x(t):.1f}" y="{TOP + ph + 16}" text-anchor="middle">{t:g}</text>')
    for t in _ticks(y_max):
        out.append(f'<line x1="{LEFT}" y1="{y(t):.1f}" x2="{LEFT + pw}" y2="{y(t):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    out.append(f'<line x1="{LEFT}" y1="{y(p99_target_ms):.1f}" x2="{LEFT + pw}" y2="{y(p99_target_ms):.1f}" stroke="#555" stroke-dasharray="2 3"/>')
    out.append(f'<text x="{LEFT + pw - 4}" y="{y(p99_target_ms) - 4:.1f}" text-anchor="end" fill="#555">p99 target {p99_target_ms:g} ms</text>')
    for i, o in enumerate(outcomes):
        colour = COLOURS[i % len(COLOURS)]
        pts = sorted((p for p in o.points if math.isfinite(p.p99_ms)), key=lambda p: p.offered_rps)
        for attr, dash in (("p99_ms", ""), ("p50_ms", ' stroke-dasharray="6 4"')):
            line = " ".join(f"{x(p.served_rps):.1f},{y(getattr(p, attr)):.1f}" for p in pts)
            out.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for p in pts:
            fill = colour if p.passed else "white"
            out.append(f'<circle cx="{x(p.served_rps):.1f}" cy="{y(p.p99_ms):.1f}" r="3.5" fill="{fill}" stroke="{colour}"/>')
        cap = o.capacity
        legend_y = TOP + 16 + 34 * i
        out.append(f'<line x1="{W - RIGHT + 14}" y1="{legend_y}" x2="{W - RIGHT + 36}" y2="{legend_y}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{W - RIGHT + 42}" y="{legend_y + 4}">{escape(o.config.label())}</text>')
        note = f"capacity {cap.offered_rps:.0f} req/s" if cap else "no rate met the target"
        out.append(f'<text x="{W - RIGHT + 42}" y="{legend_y + 18}" fill="#555">{note}</text>')
    out.append(f'<text x="{W - RIGHT + 14}" y="{H - 30}" fill="#555">solid p99, dashed p50;</text>')
    out.append(f'<text x="{W - RIGHT + 14}" y="{H - 16}" fill="#555">hollow: missed the target</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
