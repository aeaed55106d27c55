"""scripts/test.sh's CPU accounting: the conftest hook (MLKIT_TEST_CPU) counts a test's child processes'
CPU, and tests/cpu_report.py reads the machine's busy fraction from /proc/stat samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.cpu_report import busy_by_minute, report, samples

BURN = """
import subprocess, sys, time


def test_burns_a_child():
    subprocess.run([sys.executable, "-c", "import time\\nend = time.process_time() + 0.6\\nwhile time.process_time() < end: pass"], check=True)


def test_sleeps():
    time.sleep(0.3)
"""


def test_the_hook_records_each_tests_own_and_childrens_cpu(tmp_path: Path):
    (tmp_path / "test_burn.py").write_text(BURN)
    record = tmp_path / "cpu.jsonl"
    env = os.environ | {"MLKIT_TEST_CPU": str(record)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest", str(tmp_path / "test_burn.py")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {r["test"].rsplit("::", 1)[1]: r for r in map(json.loads, record.read_text().splitlines())}
    burn, sleep = rows["test_burns_a_child"], rows["test_sleeps"]
    assert burn["children_cpu_s"] >= 0.5 and sleep["children_cpu_s"] == 0
    assert sleep["wall_s"] >= 0.3 and sleep["cpu_s"] < 0.2


def test_busy_fraction_per_minute_and_the_report(tmp_path: Path):
    # Two cores: 100 jiffies a second in all. The first minute half busy, the second fully busy.
    stat = tmp_path / "stat"
    lines, busy, idle = [], 0, 0
    for t in range(0, 125, 5):
        lines.append(f"{1000 + t} cpu {busy} 0 0 {idle} 0 0 0 0 0 0")
        busy, idle = (busy + 250, idle + 250) if t < 60 else (busy + 500, idle)
    stat.write_text("\n".join(lines) + "\n")
    assert [round(m, 2) for m in busy_by_minute(samples(stat), 1000, 1120)] == [0.5, 1.0]
    tests = tmp_path / "t.jsonl"
    tests.write_text(json.dumps({"test": "a::b", "wall_s": 3.0, "cpu_s": 1.0, "children_cpu_s": 2.5}) + "\n")
    text = report("parallel", tests, stat, 1000, 1120)
    assert "120 s of wall; its 1 tests used 4 CPU-s" in text
    assert "minute by minute: 50 100" in text
    assert "3.5 CPU-s" in text and "a::b" in text
