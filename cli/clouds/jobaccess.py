"""What a batch API's pods may write: its job prefix, granted by the cluster stack, checked by the CLI.

A job's pods read their shards and write results and markers under the job's `--output`. The cloud
grants each batch API read and write under one prefix and nothing else beside the model read every
API has: `batch.output` in the spec, by default `<model bucket>/jobs/<api>/`. The cluster stack
renders the grant from `grants()` (an inline policy on the API's IRSA role on AWS; on GCP a Google
service account of its own, with a bucket binding whose IAM condition names the prefix), and
`mlkit job submit` defaults `--output` under it and refuses one outside it, before anything is
written, instead of a Job whose pods fail on AccessDenied.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..spec.schema import Api, Spec
    from .base import Cloud

# Key characters only, folder by folder: the prefix goes into an IAM resource ARN or a CEL condition,
# where `*`, `?`, quotes or `..` would widen or break the grant.
_PREFIX = re.compile(r"(?:(?!\.\.?/)[A-Za-z0-9._-]+/)+")
_URI = re.compile(r"(s3|gs)://([^/]+)/(.*)", re.S)
# A Google service account id: 6 to 30 characters, a letter first, no '-' last.
_GSA_MAX = 30
# Accounts the stacks make as `<project>-<suffix>`: the shared model reader (model-bucket) and KEDA's operator
# (addons, with async APIs). An API of that name gets a hashed id instead of sharing the account.
RESERVED = ("serving", "keda")


@dataclass(frozen=True)
class Grant:
    """Where a batch API's pods may read and write: a bucket (None: the model bucket) and a prefix ending in '/'."""

    bucket: str | None
    prefix: str

    def uri(self, model_bucket: str, scheme: str) -> str:
        return f"{scheme}://{self.bucket or model_bucket}/{self.prefix}"


def batch_apis(spec: Spec) -> list[Api]:
    return [api for api in spec.apis if api.kind == "batch"]


def default_prefix(api: str) -> str:
    return f"jobs/{api}/"


def grant(api: Api) -> Grant:
    output = api.batch.output if api.batch is not None else None
    if output is None:
        return Grant(None, default_prefix(api.name))
    match = _URI.fullmatch(output)
    assert match is not None, "checked by problem()"
    return Grant(match.group(2), match.group(3))


def problem(value: str, cloud: Cloud) -> str | None:
    """What is wrong with a `batch.output` value on `cloud`, or None."""
    scheme = cloud.bucket_scheme
    match = _URI.fullmatch(value)
    if match is None or match.group(1) != scheme:
        return f"{value!r:.100} is not a {scheme}:// prefix; give {scheme}://BUCKET/PREFIX/ (a cluster on {cloud.name} writes to {scheme}:// buckets)"
    bucket, prefix = match.group(2), match.group(3)
    bad = cloud.bucket_problem(bucket)
    if bad:
        return f"bucket {bucket!r:.70} {bad}"
    if not _PREFIX.fullmatch(prefix):
        return (
            f"prefix {prefix!r:.100} must be folders of letters, digits, '.', '_' and '-', each ending in '/' (e.g. jobs/reviews/): "
            "it becomes the IAM grant, so no wildcard, '.' or '..' folder, or empty prefix (the whole bucket)"
        )
    return None


def account_id(spec: Spec, api: str) -> str:
    """The Google service account id of a batch or async API: `<project>-<api>`, or shortened with a hash to fit 30
    characters or to stay clear of the stacks' own accounts (RESERVED)."""
    plain = f"{spec.project}-{api}"
    if len(plain) <= _GSA_MAX and plain not in (f"{spec.project}-{suffix}" for suffix in RESERVED):
        return plain
    digest = hashlib.sha256(api.encode()).hexdigest()[:6]
    head = f"{spec.project}-{api}"[: _GSA_MAX - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"


def gcp_identity(spec: Spec, api: str) -> str:
    return f"{account_id(spec, api)}@{spec.gcp_project}.iam.gserviceaccount.com"


def tfvars(spec: Spec) -> dict[str, dict[str, str | None]]:
    """The cluster stack's `batch_apis`: per batch API its bucket (null: the model bucket) and prefix (and its account id on GCP)."""
    out: dict[str, dict[str, str | None]] = {}
    for api in batch_apis(spec):
        g = grant(api)
        entry: dict[str, str | None] = {"bucket": g.bucket, "prefix": g.prefix}
        if spec.cloud == "gcp":
            entry["account_id"] = account_id(spec, api.name)
        out[api.name] = entry
    return out


def model_bucket(spec: Spec, aws_account_id: str | None) -> str | None:
    """The cluster stack's model bucket name (terraform's module "model_bucket"); None on AWS before the account is known."""
    if spec.cloud == "gcp":
        return f"{spec.project}-models-{spec.gcp_project}"
    return f"{spec.project}-models-{aws_account_id}" if aws_account_id else None


def within(output: str, granted: str) -> bool:
    """Whether a job's --output lies under the granted prefix (folder by folder: jobs/a/ does not cover jobs/ab/)."""
    folder = output.rstrip("/") + "/"
    return folder.startswith(granted) and "/../" not in f"/{folder}" and "/./" not in f"/{folder}"
