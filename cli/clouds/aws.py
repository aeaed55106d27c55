"""AWS: EKS, ECR, S3, IRSA, the AWS Load Balancer Controller's NLBs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Cloud

if TYPE_CHECKING:
    import datetime

    from ..cluster.credentials import Endpoint
    from ..spec.schema import Spec


class Aws(Cloud):
    name = "aws"
    bucket_scheme = "s3"
    cluster_modules = ("vpc", "eks", "node-group", "ecr", "model-bucket", "irsa-role")
    addons_modules = ("irsa-role",)
    load_balancer_class = "service.k8s.aws/nlb"
    identity_annotation = "eks.amazonaws.com/role-arn"

    def registry(self, spec: Spec, account: str | None) -> str:
        return f"{account}.dkr.ecr.{spec.region}.amazonaws.com"

    def image_ref(self, spec: Spec, api: str, tag: str, account: str | None) -> str:
        # One ECR repository per project; the API is part of the tag.
        return f"{self.registry(spec, account)}/{spec.project}:{api}-{tag}"

    def identity(self, spec: Spec, api: str, account: str | None) -> str:
        return f"arn:aws:iam::{account or 'ACCOUNT-ID'}:role/{role_name(spec, api)}"

    def service_annotations(self, expose: str) -> dict[str, str]:
        return {
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing" if expose == "public" else "internal",
            "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
        }

    def token_args(self, spec: Spec, cluster: str) -> list[str]:
        return ["--cloud", "aws", "--cluster", cluster, "--region", spec.region]

    def endpoint(self, spec: Spec, cluster: str) -> Endpoint:
        from ..cluster import credentials

        return credentials.eks_endpoint(cluster, spec.region)

    def token(self, cluster: str, region: str | None) -> tuple[str, datetime.datetime]:
        from ..cluster import credentials
        from ..errors import UserError

        if not region:
            raise UserError("--region is required with --cloud aws")
        return credentials.eks_token(cluster, region)


def role_name(spec: Spec, api: str) -> str:
    """The IRSA role of an API, made by the cluster stack's irsa-role module."""
    return f"{spec.project}-{api}"
