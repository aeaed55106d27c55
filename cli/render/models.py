"""How a replica gets its model from the bucket: copied by an init container, or mounted (`model_access`).

Copy: `aws s3 sync` / `gcloud storage rsync` in an init container (templates/k8s/_fetch_model.yaml.j2),
with their parallelism set here rather than left to the CLIs' guesses. Mount: the cloud's CSI bucket
driver (Mountpoint for Amazon S3 on EKS, Cloud Storage FUSE on GKE) mounts the prefix read-only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .. import clouds
from ..errors import UserError
from ..spec import rules
from ..spec.schema import Spec

GCSFUSE_ANNOTATION = "gke-gcsfuse/volumes"  # GKE's webhook adds the FUSE sidecar to pods with it
MODEL_VOLUME_SIZE = "1Gi"  # a PV and its PVC must state a size; the bucket driver ignores it

# Copy: aws-cli reads its S3 transfer settings only from its config file, so the file comes from a
# ConfigMap (model-fetch.yaml) that AWS_CONFIG_FILE points at. The defaults are 10 requests at once
# in 8 MB parts; model files are few and large, so more and larger ranged GETs fill a node's link.
# s3transfer keeps at most 1000 x 256 KiB of download buffers, well inside the init container's 1 GiB.
AWS_CLI_S3 = {
    "max_concurrent_requests": "32",
    "max_queue_size": "10000",
    "multipart_threshold": "32MB",
    "multipart_chunksize": "32MB",
}
AWS_CONFIG_DIR = "/etc/mlkit/model-fetch"
# gcloud storage sizes its parallelism from the node's CPU count (optimize_parameters_util.py in the
# SDK), not the container's: 16 processes, each a Python interpreter, on any node of 4 or more CPUs,
# against the init container's 1 GiB memory limit. Fixed here: 4 processes x 8 threads, and files over 64 MiB fetched as up to 16
# slices in parallel (sliced download). Large downloads keep their progress in tracker files under
# CLOUDSDK_CONFIG (the tmp volume), from which gcloud resumes them after a restart (its documentation).
GCLOUD_STORAGE = {
    "CLOUDSDK_STORAGE_PROCESS_COUNT": "4",
    "CLOUDSDK_STORAGE_THREAD_COUNT": "8",
    "CLOUDSDK_STORAGE_SLICED_OBJECT_DOWNLOAD_THRESHOLD": "64Mi",
    "CLOUDSDK_STORAGE_SLICED_OBJECT_DOWNLOAD_COMPONENT_SIZE": "64Mi",
    "CLOUDSDK_STORAGE_SLICED_OBJECT_DOWNLOAD_MAX_COMPONENTS": "16",
}


def aws_cli_config() -> str:
    """The aws-cli config file of the model fetcher (its `s3` section, in the CLI's nested format)."""
    return "[default]\ns3 =\n" + "".join(f"  {key} = {value}\n" for key, value in AWS_CLI_S3.items())


@dataclass
class Mount:
    """A track's model prefix mounted read-only through the cloud's CSI bucket driver (model_access: mount)."""

    driver: str
    bucket: str
    options: list[str]
    # EKS: Mountpoint takes static PersistentVolumes only, so each track gets a PV and a PVC bound to
    # it (model-volume.yaml). GKE: an inline CSI volume in the pod and no other object (claim None).
    claim: str | None = None
    volume: str | None = None


def mount(spec: Spec, name: str, uri: str, uid: int) -> Mount:
    """How the track `name` mounts the prefix `uri`, files owned by `uid`.

    The names carry a hash of what is mounted because a PV's source cannot change once it exists: a new
    model prefix is a new PV and PVC, the Deployment rolls over to them, and apply prunes the old pair
    (Kubernetes keeps it until no pod uses it).
    """
    cloud = clouds.of(spec)
    bucket, _, prefix = uri.partition("://")[2].partition("/")
    if not rules.mountable(prefix):
        # mlkit.yaml's models are checked by the spec rules; this one may come from a rollback pin in
        # .mlkit/deploy.json (a pull request), and a comma or space would become mount options of its own.
        raise UserError(
            f"{name}: the model prefix {prefix!r:.80} cannot be mounted (model_access: mount takes letters, digits, '_', '.', '-' and '/'); "
            "if it comes from a pinned revision in .mlkit/deploy.json, run `mlkit apply --only apis` to deploy mlkit.yaml as written, "
            "or use model_access: copy"
        )
    options = cloud.mount_options(spec, prefix, uid)
    if not cloud.mount_needs_volume:
        return Mount(cloud.mount_driver, bucket, options)
    digest = hashlib.sha256(json.dumps([bucket, options]).encode()).hexdigest()[:8]
    claim = f"{name}-model-{digest}"
    # PersistentVolumes are cluster-wide: the namespace keeps two projects' volumes apart.
    return Mount(cloud.mount_driver, bucket, options, claim=claim, volume=f"{spec.k8s_namespace}-{claim}")


def fetch_view() -> dict[str, Any]:
    """What the fetch-model init container and its ConfigMap need."""
    return {"aws_config_dir": AWS_CONFIG_DIR, "aws_config": aws_cli_config(), "gcloud_env": GCLOUD_STORAGE}


def objects(view: dict[str, Any]) -> list[str]:
    """The extra manifests of an API (templates/k8s/<name>.yaml.j2): PVs and PVCs of its mounts, aws-cli's settings for its copies."""
    return [name for name, wanted in (("model-volume", view["model_volumes"]), ("model-fetch", view["fetch_config"])) if wanted]
