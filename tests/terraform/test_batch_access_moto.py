"""A batch API's role, applied by the real cluster stack on moto, lets its pods write their job prefix and nothing else.

The batch example's cluster stack is applied with `mlkit apply --only cluster` (the overrides of test_e2e_moto,
for moto's gaps). Then moto's own IAM enforcement is switched on (/moto-api/reset-auth) and S3 is called with
the credentials of the API's role, assumed as its pods assume it (AssumeRoleWithWebIdentity): moto evaluates the
role's attached and inline policies on every call, so each allowed and each refused call below is IAM's answer.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.conftest import aws_env, mlkit
from tests.terraform.test_e2e_moto import OVERRIDES

pytestmark = [pytest.mark.terraform, pytest.mark.e2e]

BUCKET = "batch-demo-models-123456789012"


def enforce_iam(moto: str, after: int) -> None:
    """Moto checks every request against IAM once `after` more requests have passed (0: from now on)."""
    request = urllib.request.Request(
        f"{moto}/moto-api/reset-auth", data=str(after).encode(), method="POST", headers={"Content-Type": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        json.loads(answer.read())


def test_the_batch_role_writes_its_job_prefix_and_nothing_else(project, tf_env, moto, tmp_path):
    import boto3
    from botocore.exceptions import ClientError

    proj = project("batch")
    assert mlkit("render", cwd=proj).returncode == 0
    stack = proj / "infra/terraform/cluster"
    for rel, text in OVERRIDES.items():
        (stack / rel).write_text(text)
    env = tf_env | aws_env(moto) | {"KUBECONFIG": str(tmp_path / "kubeconfig")}
    apply = mlkit("apply", "--only", "cluster", "--auto-approve", cwd=proj, env=env)
    assert apply.returncode == 0, apply.stderr[-4000:]

    kw = {"endpoint_url": moto, "region_name": "us-west-2"}
    admin = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    iam = boto3.client("iam", **kw, **admin)
    inline = iam.get_role_policy(RoleName="batch-demo-reviews", PolicyName="batch-demo-reviews-jobs")["PolicyDocument"]
    assert {s["Sid"] for s in inline["Statement"]} == {"JobFiles", "JobListing"}
    trust = iam.get_role(RoleName="batch-demo-reviews")["Role"]["AssumeRolePolicyDocument"]
    assert "system:serviceaccount:batch-demo:reviews" in json.dumps(trust)

    s3_admin = boto3.client("s3", **kw, **admin, config=boto3.session.Config(s3={"addressing_style": "path"}))
    # Moto is reached over http, and it applies the bucket's TLS-only policy: every call would be refused by it, so the
    # test lifts it (it is the same for every caller; what this test checks is the role's own grant).
    s3_admin.delete_bucket_policy(Bucket=BUCKET)
    s3_admin.put_object(Bucket=BUCKET, Key="reviews/abc/weights.json", Body=b"{}")
    s3_admin.create_bucket(Bucket="someone-elses", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
    # The pod's credentials: its projected token traded for the role's, as the AWS SDK does under IRSA.
    creds = boto3.client("sts", **kw, **admin).assume_role_with_web_identity(
        RoleArn="arn:aws:iam::123456789012:role/batch-demo-reviews", RoleSessionName="job-pod", WebIdentityToken="token"
    )["Credentials"]
    pod = boto3.client(
        "s3", **kw, aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"],
        config=boto3.session.Config(s3={"addressing_style": "path"}),
    )

    def denied(call, **args) -> bool:
        try:
            call(**args)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "AccessDenied", exc.response
            return True
        return False

    enforce_iam(moto, 0)
    try:
        key = "jobs/reviews/reviews-1/results/00000.jsonl"
        assert not denied(pod.put_object, Bucket=BUCKET, Key=key, Body=b'{"index": 0}\n')
        assert not denied(pod.get_object, Bucket=BUCKET, Key=key)
        assert not denied(pod.delete_object, Bucket=BUCKET, Key=key)
        assert not denied(pod.get_object, Bucket=BUCKET, Key="reviews/abc/weights.json")  # the model, as every API reads it
        # Another API's jobs, the models, the bucket's root and another bucket: refused.
        assert denied(pod.put_object, Bucket=BUCKET, Key="jobs/other/x.jsonl", Body=b"x")
        assert denied(pod.put_object, Bucket=BUCKET, Key="jobs/reviewsX/x.jsonl", Body=b"x")
        assert denied(pod.put_object, Bucket=BUCKET, Key="reviews/abc/weights.json", Body=b"x")
        assert denied(pod.delete_object, Bucket=BUCKET, Key="reviews/abc/weights.json")
        assert denied(pod.put_object, Bucket=BUCKET, Key="x.jsonl", Body=b"x")
        assert denied(pod.put_object, Bucket="someone-elses", Key="jobs/reviews/x.jsonl", Body=b"x")
    finally:
        enforce_iam(moto, 10**9)
    assert s3_admin.get_object(Bucket=BUCKET, Key="reviews/abc/weights.json")["Body"].read() == b"{}"
