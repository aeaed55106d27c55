"""Reach the cluster of a spec: through a kubeconfig context (`cluster.existing.context`), or by
asking EKS or GKE for the endpoint and minting a token with the cloud SDK."""

from __future__ import annotations

import base64
from pathlib import Path

from .. import clouds
from ..spec.schema import Spec
from .client import Cluster, Credentials


def cluster_name(spec: Spec) -> str:
    existing = spec.cluster.existing
    return existing.name if existing is not None and existing.name else spec.project


def connect(spec: Spec) -> Cluster:
    return Cluster(credentials_for(spec))


def credentials_for(spec: Spec) -> Credentials:
    existing = spec.cluster.existing
    if existing is not None and existing.context:
        from . import kubeconfig

        return kubeconfig.credentials(existing.context)
    cloud, name = clouds.of(spec), cluster_name(spec)
    endpoint = cloud.endpoint(spec, name)
    token, _ = cloud.token(name, spec.region)
    creds = Credentials(server=endpoint.server, name=f"{spec.cloud} cluster {name}", token=token)
    creds.ca_file = creds.pem_file(base64.b64decode(endpoint.ca_data))
    return creds


def open_project(file: Path) -> tuple[Spec, Cluster]:
    """The spec of a project and a connection to its cluster, for the commands that operate APIs."""
    from ..spec.loader import load

    spec = load(file)
    return spec, connect(spec)


def api_named(spec: Spec, name: str):
    for api in spec.apis:
        if api.name == name:
            return api
    from ..errors import UserError

    raise UserError(f"mlkit.yaml has no API named '{name}' (APIs: {', '.join(a.name for a in spec.apis) or 'none'})")


def token_args(spec: Spec) -> list[str]:
    """The `mlkit token` arguments that mint a token for this spec's cluster."""
    return clouds.of(spec).token_args(spec, cluster_name(spec))
