"""The predictor runtime as a wheel, for image build contexts.

The image installs the runtime with pip from this wheel, never from loose copied files: its RECORD
lists every file with its SHA-256, pip checks them, and its Requires-Dist is the `runtime` extra of
this mlkit, so the image gets exactly the runtime that `mlkit serve` runs here. The wheel is written
byte for byte the same from the same files (sorted entries, fixed timestamps and modes, stored
uncompressed so that no zlib version changes a byte), because the
build context's hash is the image tag.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from importlib.metadata import requires
from io import BytesIO
from pathlib import Path

import mlkit_runtime

from .. import __version__

DIST = "mlkit_runtime"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: no build time in the bytes


def filename() -> str:
    return f"{DIST}-{__version__}-py3-none-any.whl"


def runtime_requirements() -> list[str]:
    """The runtime's dependencies as the `runtime` extra of this mlkit declares them: one source of truth."""
    return extra_requirements("runtime")


def extra_requirements(extra: str) -> list[str]:
    """The packages of one of this mlkit's extras (`runtime-aws`: an async API's SQS and S3 clients)."""
    marker = f'extra == "{extra}"'
    return [r.split(";")[0].strip() for r in requires("mlkit") or [] if marker in r.replace("'", '"')]


def package_files() -> dict[str, bytes]:
    """Every file of the installed mlkit_runtime package (no bytecode), by its path in the wheel."""
    here = Path(mlkit_runtime.__file__).resolve().parent
    return {
        f"{DIST}/{p.relative_to(here).as_posix()}": p.read_bytes()
        for p in sorted(here.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def build() -> bytes:
    files = package_files()
    info = f"{DIST}-{__version__}.dist-info"
    files[f"{info}/METADATA"] = (
        "Metadata-Version: 2.1\n"
        f"Name: {DIST.replace('_', '-')}\n"
        f"Version: {__version__}\n"
        "Summary: mlkit's predictor runtime, as packed into predictor images by `mlkit build`\n"
        "Requires-Python: >=3.10\n" + "".join(f"Requires-Dist: {r}\n" for r in runtime_requirements())
    ).encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: mlkit\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "".join(f"{path},sha256={_digest(data)},{len(data)}\n" for path, data in files.items()) + f"{info}/RECORD,,\n"
    files[f"{info}/RECORD"] = record.encode()
    out = BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as whl:
        for path, data in files.items():
            entry = zipfile.ZipInfo(path, ZIP_TIME)
            entry.external_attr = 0o644 << 16
            whl.writestr(entry, data)
    return out.getvalue()


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
