"""A child process of the runtime (a front, the model process) that ends with its parent: one that outlived a
killed parent would hold the port or the model. Its own module so that fronts.py and model_process.py, which
import each other's work through the parent, share it without importing each other."""

from __future__ import annotations

import signal


def die_with_parent() -> None:
    """Linux sends this process SIGKILL when its parent dies (PR_SET_PDEATHSIG); elsewhere nothing happens."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
