"""A job's worker process tells glibc to keep the memory its batches free (mlkit_runtime.jobs.allocator)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_takes_the_thresholds_in_a_worker_process():
    # In a fresh process: the setting is process-wide, and this one is pytest's.
    code = "from mlkit_runtime.jobs.allocator import keep_freed_memory; print(keep_freed_memory())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr
