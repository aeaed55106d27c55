"""Everything that differs by cloud, behind one small interface.

A module per cloud (`aws.py`, `gcp.py`) implements `Cloud`; the renderers, the deploy steps, the
cluster connection and the spec rules ask `of(spec)` instead of testing `spec.cloud`. A third cloud
is one more module here, its Terraform modules under `terraform/<cloud>/` and its root templates
under `templates/terraform/<cloud>/` (see docs/architecture.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Cloud as Cloud  # the interface, for annotations: clouds.Cloud

if TYPE_CHECKING:
    from ..spec.schema import Spec


def named(name: str) -> Cloud:
    from . import aws, gcp

    clouds: dict[str, Cloud] = {"aws": aws.Aws(), "gcp": gcp.Gcp()}
    return clouds[name]


def of(spec: Spec) -> Cloud:
    return named(spec.cloud)
