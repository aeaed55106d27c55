"""glibc's malloc told to keep freed memory in a job's worker process instead of handing it back.

Each batch parses its items into fresh objects and frees them once its results are written. By
default glibc gives the top of its heap back to the kernel once 128 KiB of it is free, and serves
large blocks by mmap, unmapped on free: so every batch faults the same pages in again, zeroed by the
kernel. For the CNN (784 floats an item) that churn cost the job's worker about a tenth of its CPU
against a bare predict_batch loop; with these settings the job's items per CPU-second rose 8-12%
while the bare loop's did not move (benchmarks/results/batch-cpu.md, session 9). A worker does the
same work over and over, so it keeps its high-water mark of memory: the price is that RSS does
not shrink between batches.

Only where the C library is glibc (mallopt is glibc's): elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1  # free heap top kept before giving it back (default 128 KiB, raised dynamically)
M_MMAP_THRESHOLD = -3  # blocks this large are mmap'd and unmapped on free (default 128 KiB, up to 32 MiB dynamically)
TRIM_BYTES = 1 << 30
MMAP_BYTES = 1 << 28


def keep_freed_memory() -> bool:
    """Set both thresholds in this process; whether glibc took them (False off glibc)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_BYTES)) and bool(mallopt(M_MMAP_THRESHOLD, MMAP_BYTES))
