"""Checks of a bench chart: its elements in the SVG, and the chart as headless Chromium lays it out
(every mark inside the image, the legend's text inside the legend and not on itself)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

SVG = "{http://www.w3.org/2000/svg}"

# Runs in the page once the SVG is laid out; writes what it found into <pre id="result">.
PROBE = """
const svg = document.querySelector('svg'), box = svg.getBoundingClientRect();
const inside = (r, b) => r.left >= b.left - 0.5 && r.right <= b.right + 0.5 && r.top >= b.top - 0.5 && r.bottom <= b.bottom + 0.5;
const outside = [], legendOut = [], overlaps = [];
for (const el of svg.querySelectorAll('text, circle, rect, line, polyline, path')) {
  const r = el.getBoundingClientRect();
  if ((r.width || r.height) && !inside(r, box)) outside.push(el.outerHTML.slice(0, 120));
}
const legend = svg.querySelector('rect.legend').getBoundingClientRect();
const entries = [...svg.querySelectorAll('text.legend-entry')];
for (const el of entries) if (!inside(el.getBoundingClientRect(), legend)) legendOut.push(el.textContent);
for (let i = 0; i < entries.length; i++) for (let j = i + 1; j < entries.length; j++) {
  const a = entries[i].getBoundingClientRect(), b = entries[j].getBoundingClientRect();
  if (a.left < b.right && b.left < a.right && a.top < b.bottom - 1 && b.top < a.bottom - 1) overlaps.push([entries[i].textContent, entries[j].textContent]);
}
document.getElementById('result').textContent = JSON.stringify({width: box.width, height: box.height, outside, legendOut, overlaps, entries: entries.length});
"""


def elements(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def coords(polyline: ET.Element) -> list[tuple[float, float]]:
    return [(float(a), float(b)) for a, b in (pair.split(",") for pair in polyline.get("points", "").split())]


def check_elements(path: Path, configs: int) -> ET.Element:
    """What the SVG must hold for a reader: series drawn left to right, readable ticks, the capacities
    marked, every point's marker saying which target it missed, and a key for each marker."""
    root = elements(path)
    assert root.tag == SVG + "svg"
    width, height = float(root.get("width", 0)), float(root.get("height", 0))
    lines = root.findall(SVG + "polyline")
    assert len(lines) == 2 * configs  # p99 and p50 for each configuration
    for line in lines:
        xs = [x for x, _ in coords(line)]
        assert xs == sorted(xs), f"a series doubles back: {xs}"
        assert all(0 <= x <= width for x in xs)
    for axis in ("xtick", "ytick"):
        labels = [float(t.text or "") for t in root.iter(SVG + "text") if t.get("class") == axis]
        assert 4 <= len(labels) <= 11 and labels == sorted(labels) and len(set(labels)) == len(labels), (axis, labels)
    groups = [g for g in root.iter(SVG + "g") if (g.get("class") or "").startswith("point ")]
    for g in groups:
        kind = (g.get("class") or "").split()[1]
        title = g.findtext(SVG + "title") or ""
        expected = {"met": "met both targets", "p99": "p99 over the target", "2xx": "under 99% answered 2xx", "p99+2xx": "both missed"}[kind]
        assert expected in title, (kind, title)
        shape = g.find(SVG + "circle") if kind in ("met", "p99") else g.find(SVG + "rect")
        assert shape is not None, (kind, ET.tostring(g))
        assert (shape.get("fill") == "white") == (kind != "met"), "hollow exactly when a target was missed"
    keys = {(g.get("class") or "").split()[1] for g in root.iter(SVG + "g") if (g.get("class") or "").startswith("key ")}
    assert keys == {"met", "p99", "2xx", "p99+2xx"}
    legend = " | ".join(t.text or "" for t in root.iter(SVG + "text") if "legend-entry" in (t.get("class") or ""))
    for phrase in ("met both targets", "p99 over the target", "under 99% answered 2xx", "solid p99, dashed p50"):
        assert phrase in legend
    assert 0 < width and 0 < height
    return root


def check_rendered(path: Path, png: Path) -> dict:
    """Lay the chart out in headless Chromium: nothing outside the image, the legend's text inside its
    box and clear of itself; a screenshot goes to `png` for a person to look at."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed (scripts/setup.sh installs Debian's chromium when run as root)")
    root = elements(path)
    width, height = root.get("width"), root.get("height")
    page = png.with_suffix(".html")
    page.write_text(f'<html><body style="margin:0">{path.read_text()}<pre id="result"></pre><script>{PROBE}</script></body></html>')
    base = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={png.parent / 'chromium-profile'}"]
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120, check=True).stdout
    found = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert found and found.group(1), dom[-2000:]
    report = json.loads(found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("&quot;", '"'))
    assert (report["width"], report["height"]) == (float(width or 0), float(height or 0))
    assert report["outside"] == [], report["outside"]
    assert report["legendOut"] == [], report["legendOut"]
    assert report["overlaps"] == [], report["overlaps"]
    subprocess.run([*base, f"--screenshot={png}", f"--window-size={width},{height}", path.as_uri()], capture_output=True, timeout=120, check=True)
    assert png.stat().st_size > 0
    return report
