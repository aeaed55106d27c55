"""An SVG chart of latency against offered load: per configuration, p99 (solid) and p50 (dashed) in ms
against the offered requests per second, points joined in order of offered load; the p99 target as
a horizontal line; each configuration's capacity as a vertical line with its spread shaded; markers
that say which target a rate missed. Plain SVG, no dependencies: it opens in any browser.

Offered load, not served throughput, is the x axis: it is what the search sets, it only grows along a
series, and past the capacity served throughput falls back while latency climbs, which on a served
axis draws a line that doubles back on itself."""

from __future__ import annotations

import math
from html import escape

from .sweep import Outcome, Point

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
LEFT, TOP, BOTTOM, PLOT_W, PLOT_H = 70, 40, 50, 520, 370
CHAR_W = 7.0  # width of a 12 px sans-serif character, generously: the legend is sized from its text
LEGEND_GAP, LEGEND_PAD = 20, 14
MISSED = {
    "": "met both targets",
    "p99": "p99 over the target",
    "2xx": "under 99% answered 2xx",
    "p99+2xx": "both missed",
}
HALO = 'stroke="white" stroke-width="3" paint-order="stroke"'
CLIPPED = "p99 above {:.0f} ms: drawn at the top"


def ticks(top: float) -> list[float]:
    """Round steps (1, 2 or 5 x 10^n) from 0 to `top`: the largest step that still gives four marks or more."""
    if top <= 0 or not math.isfinite(top):
        return [0.0]
    exp = math.floor(math.log10(top))
    steps = [m * 10.0**e for e in (exp - 1, exp) for m in (1, 2, 5)]
    step = max((s for s in steps if top / s >= 4), default=steps[0])
    return [round(i * step, 10) for i in range(int(top / step + 1e-9) + 1)]


def _shape(x: float, y: float, colour: str, missed: str) -> str:
    """Filled circle: met both targets; hollow circle: p99 over; hollow square: the share of 2xx
    missed (crossed when p99 missed too)."""
    if missed == "":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{colour}" stroke="{colour}"/>'
    if missed == "p99":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="white" stroke="{colour}" stroke-width="1.5"/>'
    shape = f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="white" stroke="{colour}" stroke-width="1.5"/>'
    if missed == "p99+2xx":
        shape += f'<path d="M{x - 4:.1f},{y - 4:.1f}L{x + 4:.1f},{y + 4:.1f}M{x - 4:.1f},{y + 4:.1f}L{x + 4:.1f},{y - 4:.1f}" stroke="{colour}"/>'
    return shape


def _marker(x: float, y: float, colour: str, point: Point) -> str:
    title = (
        f"{point.offered_rps:.0f} req/s offered: served {point.served_rps:.0f}, p50 {point.p50_ms:.1f} ms, p99 {point.p99_ms:.1f} ms, "
        f"{point.success:.1%} answered 2xx; {MISSED[point.missed]}; {point.windows} window{'s' if point.windows != 1 else ''}"
        f"{'' if point.settled else ', not settled'}{'; second look' if point.look == 2 else ''}"
    )
    attrs = f'class="point {point.missed or "met"}" data-offered="{point.offered_rps:.1f}"'
    return f"<g {attrs}><title>{escape(title)}</title>{_shape(x, y, colour, point.missed)}</g>"


def svg(outcomes: list[Outcome], p99_target_ms: float, title: str) -> str:
    series = [sorted((p for p in o.points if math.isfinite(p.p99_ms)), key=lambda p: p.offered_rps) for o in outcomes]
    points = [p for s in series for p in s]
    caps = [o.capacity.offered_rps + o.spread_rps for o in outcomes if o.capacity]
    x_max = max([p.offered_rps for p in points] + caps + [1.0]) * 1.05
    # Latencies far past the target would squash the interesting part: clip the axis at 3x the target.
    highest = max([p.p99_ms for p in points] + [p99_target_ms])
    y_max = min(highest, 3 * p99_target_ms) * 1.05
    clipped = highest > y_max

    legend_lines = [o.config.label() for o in outcomes] + [_capacity_note(o) for o in outcomes]
    legend_lines += ["solid p99, dashed p50", "shaded: capacity and its spread", CLIPPED.format(y_max), *MISSED.values()]
    legend_w = LEGEND_PAD * 2 + 22 + CHAR_W * max(len(line) for line in legend_lines)
    # Tall enough for the legend: 38 px a configuration, 150 px for how to read the marks.
    pw, ph = PLOT_W, max(PLOT_H, 38 * len(outcomes) + 150)
    H = TOP + ph + BOTTOM
    width = round(LEFT + pw + LEGEND_GAP + legend_w)
    lx = LEFT + pw + LEGEND_GAP + LEGEND_PAD

    def x(v: float) -> float:
        return LEFT + pw * v / x_max

    def y(v: float) -> float:
        return TOP + ph * (1 - min(v, y_max) / y_max)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{H}" viewBox="0 0 {width} {H}" font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{H}" fill="white"/>',
        f'<text class="title" x="{LEFT}" y="22" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for t in ticks(y_max):
        out.append(f'<line class="grid" x1="{LEFT}" y1="{y(t):.1f}" x2="{LEFT + pw}" y2="{y(t):.1f}" stroke="#e5e5e5"/>')
        out.append(f'<text class="ytick" x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for t in ticks(x_max):
        out.append(f'<line x1="{x(t):.1f}" y1="{TOP + ph}" x2="{x(t):.1f}" y2="{TOP + ph + 4}" stroke="black"/>')
        out.append(f'<text class="xtick" x="{x(t):.1f}" y="{TOP + ph + 17}" text-anchor="middle">{t:g}</text>')
    out += [
        f'<line x1="{LEFT}" y1="{TOP + ph}" x2="{LEFT + pw}" y2="{TOP + ph}" stroke="black"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + ph}" stroke="black"/>',
        f'<text x="{LEFT + pw / 2}" y="{H - 10}" text-anchor="middle">offered requests per second (one replica)</text>',
        f'<text transform="translate(18 {TOP + ph / 2}) rotate(-90)" text-anchor="middle">latency, ms</text>',
        f'<line class="target" x1="{LEFT}" y1="{y(p99_target_ms):.1f}" x2="{LEFT + pw}" y2="{y(p99_target_ms):.1f}" stroke="#555" stroke-dasharray="2 3"/>',
    ]
    for i, (o, pts) in enumerate(zip(outcomes, series, strict=True)):
        colour = COLOURS[i % len(COLOURS)]
        cap = o.capacity
        if cap is not None:
            lo, hi = max(0.0, cap.offered_rps - o.spread_rps), cap.offered_rps + o.spread_rps
            out.append(f'<rect class="spread" x="{x(lo):.1f}" y="{TOP}" width="{x(hi) - x(lo):.1f}" height="{ph}" fill="{colour}" fill-opacity="0.08"/>')
            out.append(
                f'<line class="capacity" data-rps="{cap.offered_rps:.1f}" x1="{x(cap.offered_rps):.1f}" y1="{TOP}" x2="{x(cap.offered_rps):.1f}" '
                f'y2="{TOP + ph}" stroke="{colour}" stroke-width="1.5" stroke-dasharray="1 3"/>'
            )
        for attr, dash in (("p99_ms", ""), ("p50_ms", ' stroke-dasharray="6 4"')):
            line = " ".join(f"{x(p.offered_rps):.1f},{y(getattr(p, attr)):.1f}" for p in pts)
            out.append(f'<polyline class="{attr[:3]}" points="{line}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        out += [_marker(x(p.offered_rps), y(p.p99_ms), colour, p) for p in pts]

    # The target's label over the series, haloed in white: a series crossing it leaves it readable.
    out.append(f'<text x="{LEFT + 6}" y="{y(p99_target_ms) - 4:.1f}" fill="#555" {HALO}>p99 target {p99_target_ms:g} ms</text>')
    # The legend, inside the image: one entry per configuration, then how to read the marks.
    ly = TOP + 8
    out.append(
        f'<rect class="legend" x="{lx - LEGEND_PAD / 2:.1f}" y="{TOP - 6}" width="{legend_w - LEGEND_PAD:.1f}" height="{ph + 12}" fill="none" stroke="#ccc"/>'
    )
    for i, o in enumerate(outcomes):
        colour = COLOURS[i % len(COLOURS)]
        out.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 16}" y2="{ly}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text class="legend-entry" x="{lx + 22}" y="{ly + 4}">{escape(o.config.label())}</text>')
        out.append(f'<text class="legend-entry" x="{lx + 22}" y="{ly + 19}" fill="#555">{escape(_capacity_note(o))}</text>')
        ly += 38
    ly += 4
    out.append(f'<text class="legend-entry" x="{lx}" y="{ly}" fill="#555">solid p99, dashed p50</text>')
    out.append(f'<text class="legend-entry" x="{lx}" y="{ly + 16}" fill="#555">shaded: capacity and its spread</text>')
    ly += 36
    for missed in MISSED:
        out.append(f'<g class="key {missed or "met"}">{_shape(lx + 8, ly - 4, "#555", missed)}</g>')
        out.append(f'<text class="legend-entry" x="{lx + 22}" y="{ly}" fill="#555">{MISSED[missed]}</text>')
        ly += 18
    if clipped:
        out.append(f'<text class="legend-entry clipped" x="{lx}" y="{ly + 4}" fill="#555">{CLIPPED.format(y_max)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _capacity_note(outcome: Outcome) -> str:
    cap = outcome.capacity
    return f"capacity {cap.offered_rps:.0f} ± {outcome.spread_rps:.0f} req/s" if cap else "no rate met the targets"
