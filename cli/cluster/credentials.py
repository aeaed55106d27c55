"""Cluster credentials from the cloud SDKs, so that no aws, gcloud or kubectl binary is needed.

EKS: a bearer token is a presigned STS GetCallerIdentity URL with the cluster name in a signed
header, base64url-encoded behind `k8s-aws-v1.` (what aws-iam-authenticator and `aws eks get-token`
make); the API server asks STS who signed it. GKE: an OAuth access token of the caller's Google
credentials. The endpoint and CA come from DescribeCluster / GetCluster.
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from ..errors import ToolError, UserError

EKS_TOKEN_TTL_S = 60  # how long STS accepts the presigned URL; the token itself lives 15 minutes


@dataclass
class Endpoint:
    server: str
    ca_data: str  # base64 PEM, as kubeconfig's certificate-authority-data holds it


def require_boto3():
    try:
        import boto3
    except ImportError:
        raise UserError("talking to AWS needs boto3: pip install 'mlkit[aws]'") from None
    return boto3


NO_AWS_CREDENTIALS = "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on a machine with a role"


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """One line for a failed AWS call: missing credentials are the user's to fix; anything else names the call."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except NoCredentialsError:
        raise UserError(NO_AWS_CREDENTIALS) from None
    except (ClientError, BotoCoreError) as exc:
        raise ToolError(f"{what}: {exc}") from None


def eks_token(cluster: str, region: str) -> tuple[str, datetime.datetime]:
    boto3 = require_boto3()
    from botocore.signers import RequestSigner

    session = boto3.session.Session()
    credentials = session.get_credentials()
    if credentials is None:
        raise UserError(NO_AWS_CREDENTIALS)
    sts = session.client("sts", region_name=region)
    signer = RequestSigner(sts.meta.service_model.service_id, region, "sts", "v4", credentials, session.events)
    request = {
        "method": "GET",
        "url": f"https://sts.{region}.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15",
        "body": {},
        "headers": {"x-k8s-aws-id": cluster},
        "context": {},
    }
    url = signer.generate_presigned_url(request, region_name=region, expires_in=EKS_TOKEN_TTL_S, operation_name="")
    token = "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=14)
    return token, expires


def eks_endpoint(cluster: str, region: str) -> Endpoint:
    boto3 = require_boto3()
    from botocore.exceptions import ClientError

    with aws_call(f"EKS DescribeCluster {cluster}"):
        try:
            described = boto3.client("eks", region_name=region).describe_cluster(name=cluster)["cluster"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                raise UserError(f"no EKS cluster named {cluster} in {region}: run `mlkit apply --only cluster`, or fix cluster.existing.name") from None
            raise
    return Endpoint(described["endpoint"], described["certificateAuthority"]["data"])


def gke_endpoint(project: str, location: str, cluster: str) -> Endpoint:
    try:
        from google.api_core import exceptions
        from google.cloud import container_v1
    except ImportError:
        raise UserError("talking to GCP needs the Google libraries: pip install 'mlkit[gcp]'") from None
    name = f"projects/{project}/locations/{location}/clusters/{cluster}"
    try:
        got = container_v1.ClusterManagerClient().get_cluster(name=name)
    except exceptions.NotFound:
        raise UserError(f"no GKE cluster {name}: run `mlkit apply --only cluster`, or fix cluster.existing.name") from None
    except exceptions.GoogleAPIError as exc:
        raise ToolError(f"GKE GetCluster {name}: {exc}") from None
    return Endpoint(f"https://{got.endpoint}", got.master_auth.cluster_ca_certificate)


def gke_token() -> tuple[str, datetime.datetime]:
    try:
        import google.auth
        import google.auth.transport.requests
    except ImportError:
        raise UserError("talking to GCP needs the Google libraries: pip install 'mlkit[gcp]'") from None
    try:
        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        creds.refresh(google.auth.transport.requests.Request())
    except google.auth.exceptions.DefaultCredentialsError:
        raise UserError("no Google credentials found: run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS") from None
    now = datetime.datetime.now(datetime.timezone.utc)
    expiry = creds.expiry.replace(tzinfo=datetime.timezone.utc) if creds.expiry else now + datetime.timedelta(minutes=30)
    return str(creds.token), expiry
