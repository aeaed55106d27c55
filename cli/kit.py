"""Where the kit's data lives: Terraform modules, templates and examples.

A wheel carries them inside the package as `mlkit/_kit/`; a source checkout or an editable install
(`pip install -e .`) has them beside `cli/`. Both are found here, by the same lookup, so nothing else
in mlkit needs to know how it was installed.
"""

from __future__ import annotations

import functools
from pathlib import Path

from . import __version__

VERSION = __version__


@functools.cache
def root() -> Path:
    here = Path(__file__).resolve().parent
    packaged = here / "_kit"
    if packaged.is_dir():
        return packaged
    checkout = here.parent
    if (checkout / "terraform").is_dir() and (checkout / "templates").is_dir():
        return checkout
    raise RuntimeError(f"mlkit's data (terraform/, templates/) is missing next to {here}; reinstall mlkit")


def terraform_modules(cloud: str) -> Path:
    return root() / "terraform" / cloud


def templates() -> Path:
    return root() / "templates"


def examples() -> Path:
    return root() / "examples"
