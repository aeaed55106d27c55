"""Serving in one process or in fronts and a model process (runtime/fronts.py), whichever the
settings ask for: the one entry point of `python -m mlkit_runtime` and `mlkit serve`.

Kept free of imports that reach prometheus_client: it picks its multiprocess values when first
imported, so the metrics folder of several processes is set here before anything imports it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable

from .errors import SettingsError
from .settings import Settings


def serve(settings: Settings, announce: Callable[[], None] | None = None) -> int:
    fronts = settings.front_count()
    devices = settings.model_devices()
    if fronts == 1 and len(devices) == 1:
        from .server import serve as serve_one

        return serve_one(settings, announce)
    if "prometheus_client" in sys.modules and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        raise SettingsError("--fronts: prometheus_client was imported before the fronts could set PROMETHEUS_MULTIPROC_DIR; set it to an empty folder")
    own = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    folder = tempfile.mkdtemp(prefix="mlkit-metrics-") if own else os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    from .fronts import serve_fronts

    try:
        return serve_fronts(settings, fronts, announce, devices)
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)
