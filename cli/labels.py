"""Every label, annotation and tag key mlkit sets, in one place.

The renderers (Terraform tfvars, Kubernetes manifests through the templates' `keys` global), the
cluster driver (apply selects and prunes by them) and the spec rules (which refuse user labels under
mlkit's prefix) all read these names, so none of them can drift from the others.
"""

from __future__ import annotations

PREFIX = "mlkit.dev/"

# On nodes (set by the node pools of the cluster stack) and in pod selectors.
POOL = "mlkit.dev/pool"
ACCELERATOR = "mlkit.dev/accelerator"
ACCELERATOR_KIND = "mlkit.dev/accelerator-kind"
CAPACITY = "mlkit.dev/capacity"
# On the `system` node group of a Karpenter cluster, where the controller and the add-ons run.
SYSTEM = "mlkit.dev/system"
# On an API's objects and pods.
API = "mlkit.dev/api"
TRACK = "mlkit.dev/track"
CONFIG_HASH = "mlkit.dev/config-hash"
# On a batch job's Job and pods: its id (`mlkit job status API JOB` selects by it).
JOB = "mlkit.dev/job"
# Kueue's label that puts a Job in a LocalQueue (kueue.x-k8s.io/queue-name, Kueue's own name for it).
KUEUE_QUEUE = "kueue.x-k8s.io/queue-name"
# On the project's Namespace: the kinds and namespaces apply has written to beyond mlkit's own, so
# that prune finds a team's objects again once their files are gone (kubectl's ApplySet records alike).
APPLIED_KINDS = "mlkit.dev/applied-kinds"
APPLIED_NAMESPACES = "mlkit.dev/applied-namespaces"
# The cloud tag on every resource of the Terraform stacks.
PROJECT_TAG = "mlkit.dev/project"
# Kubernetes' recommended labels: the owner labels apply selects and prunes by.
NAME = "app.kubernetes.io/name"
PART_OF = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"


def owner_labels(project: str) -> dict[str, str]:
    """The labels that mark an object as mlkit's, of this project: apply selects and prunes by them."""
    return {PART_OF: project, MANAGED_BY: "mlkit"}


def api_labels(project: str, api: str) -> dict[str, str]:
    return {NAME: api, API: api, **owner_labels(project)}


def prometheus_label(key: str) -> str:
    """The metric label Prometheus' pod scrape job makes of a pod label (dots and slashes become _)."""
    return "".join(c if c.isalnum() else "_" for c in key)
