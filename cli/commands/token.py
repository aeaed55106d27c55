"""`mlkit token`: a Kubernetes credential for kubectl, from the cloud SDK."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..errors import UserError


def command(
    cloud: Annotated[str, typer.Option("--cloud", help="aws or gcp.")],
    cluster: Annotated[str, typer.Option("--cluster", help="Cluster name.")],
    region: Annotated[str | None, typer.Option("--region", help="AWS region of the EKS cluster.")] = None,
    location: Annotated[str | None, typer.Option("--location", help="GKE: region or zone (unused for the token; kept for the kubeconfig entry).")] = None,
    gcp_project: Annotated[str | None, typer.Option("--gcp-project", help="GKE: project ID (unused for the token).")] = None,
) -> None:
    """Print an ExecCredential for kubectl (the kubeconfig context `mlkit apply` writes runs this).

    EKS: a presigned STS GetCallerIdentity token, as `aws eks get-token` makes. GKE: an OAuth
    access token of your Google credentials. No aws or gcloud CLI is needed.
    """
    from .. import clouds

    try:
        provider = clouds.named(cloud)
    except KeyError:
        raise UserError(f"--cloud {cloud}: valid: aws, gcp") from None
    token, expires = provider.token(cluster, region)
    print(json.dumps({
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": token, "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }))
