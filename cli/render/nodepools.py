"""Node provisioning on EKS beside managed node groups: Karpenter's NodePools and EC2NodeClasses, and the
small node group its controller runs on (`cluster.node_provisioning: karpenter`).

Each pool of the spec becomes one NodePool and one EC2NodeClass of the same name. They are Kubernetes
objects, so they are written to `infra/k8s/_shared/nodepools/<pool>.yaml` and applied by `mlkit apply`
with the APIs' manifests, after the add-ons stack has installed Karpenter's chart and with it their
CRDs. They are not in the add-ons stack because Terraform's `kubernetes_manifest` reads a CRD's schema
at plan time, so the first plan of a new cluster (chart not yet installed) would fail, and a team
reviews and edits them like any other manifest there. Everything in them is known at render time:
the cluster, the node role and the discovery tag are all named after the project.

Karpenter's facts used here (v1.14.1, aws/karpenter-provider-aws): `limits.nodes` bounds a NodePool's
node count (pkg/apis/crds/karpenter.sh_nodepools.yaml); with both capacity types allowed Karpenter
launches spot and falls back to on-demand when spot has no capacity; voluntary disruption
(consolidation, drift, expiry) evicts through the eviction API, so it never takes a pod its
PodDisruptionBudget protects, and `disruption.budgets` bounds how many nodes it takes at once; the
`al2023` AMI alias resolves to the NVIDIA or Neuron variant of Amazon Linux 2023 for accelerated
instance types.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import yaml

from .. import clouds, labels
from ..clouds.aws import GRAVITON
from ..clouds.aws import enabled as enabled  # whether the pools are Karpenter's: infra.py asks here too
from ..spec.schema import NodePool, Spec
from . import gpu_sharing, nodes

KARPENTER_API = "karpenter.sh/v1"
NODE_CLASS_API = "karpenter.k8s.aws/v1"
DISCOVERY_TAG = "karpenter.sh/discovery"
# Vendor taints, as the node groups set them: pods that ask for the device tolerate them (render/runtime_view.py).
VENDOR_TAINT = {"nvidia": "nvidia.com/gpu", "neuron": "aws.amazon.com/neuron"}
# Nodes a pool may lose at once to consolidation, drift or expiry: one, so that a replacement of every
# node of a pool (a new AMI) moves one node at a time and the APIs on it keep serving.
DISRUPTION_BUDGET = "1"
# How long a node must be empty or underutilized before it is consolidated; the same as the APIs'
# default scale-down delay, so that a burst's replicas go first and their nodes after.
CONSOLIDATE_AFTER = "5m"
# Karpenter's default, stated so that a reviewer sees nodes are replaced monthly (new AMIs and patches).
EXPIRE_AFTER = "720h"


def node_role_name(spec: Spec) -> str:
    """The node role the cluster stack's karpenter module creates (terraform/aws/karpenter)."""
    return f"{spec.project}-karpenter-node"


def arch(instance_type: str) -> str:
    return "arm64" if GRAVITON.match(instance_type) else "amd64"


def node_pool(spec: Spec, pool: NodePool) -> dict[str, Any]:
    accel = clouds.of(spec).node_accelerator(pool)
    itype = pool.instance_type or ""
    taints = [{"key": VENDOR_TAINT[accel.kind], "value": "true", "effect": "NoSchedule"}] if accel.kind in VENDOR_TAINT else []
    taints += [{"key": t.key, "value": t.value or "", "effect": t.effect} for t in pool.taints]
    requirements = [
        {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [itype]},
        # Spot first (Karpenter picks the cheapest offering), on-demand when spot has no capacity.
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["spot", "on-demand"] if pool.spot else ["on-demand"]},
        {"key": "kubernetes.io/arch", "operator": "In", "values": [arch(itype)]},
        {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
    ]
    template_spec: dict[str, Any] = {
        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": pool.name},
        "requirements": requirements,
        "expireAfter": EXPIRE_AFTER,
    }
    if taints:
        template_spec["taints"] = taints
    return {
        "apiVersion": KARPENTER_API,
        "kind": "NodePool",
        "metadata": {"name": pool.name, "labels": labels.owner_labels(spec.project)},
        "spec": {
            "template": {"metadata": {"labels": {**nodes.node_labels(pool, accel), **gpu_sharing.node_labels(pool)}}, "spec": template_spec},
            "disruption": {
                "consolidationPolicy": "WhenEmptyOrUnderutilized",
                "consolidateAfter": CONSOLIDATE_AFTER,
                "budgets": [{"nodes": DISRUPTION_BUDGET}],
            },
            "limits": {"nodes": pool.max_nodes},
        },
    }


# The alias when the pool names none: Amazon Linux 2023, whose NVIDIA or Neuron variant Karpenter picks by type.
DEFAULT_AMI = "al2023@latest"
# Bottlerocket keeps its OS on a small volume of its own (the AMI's /dev/xvda) and containers, images and logs on
# /dev/xvdb, which gets the pool's disk (Karpenter's default Bottlerocket mappings, sized by the pool).
BOTTLEROCKET_OS_GI = 4


def _ebs(size_gi: int) -> dict[str, Any]:
    return {"volumeSize": f"{size_gi}Gi", "volumeType": "gp3", "encrypted": True, "deleteOnTermination": True}


def block_devices(pool: NodePool) -> list[dict[str, Any]]:
    if (pool.ami or DEFAULT_AMI).startswith("bottlerocket@"):
        return [{"deviceName": "/dev/xvda", "ebs": _ebs(BOTTLEROCKET_OS_GI)}, {"deviceName": "/dev/xvdb", "ebs": _ebs(pool.disk_size_gb)}]
    return [{"deviceName": "/dev/xvda", "ebs": _ebs(pool.disk_size_gb)}]


def node_class(spec: Spec, pool: NodePool) -> dict[str, Any]:
    return {
        "apiVersion": NODE_CLASS_API,
        "kind": "EC2NodeClass",
        "metadata": {"name": pool.name, "labels": labels.owner_labels(spec.project)},
        "spec": {
            "role": node_role_name(spec),
            # The pool's `ami`, or Amazon Linux 2023 as the node groups: Karpenter picks the NVIDIA or Neuron
            # variant by instance type. A pinned version (al2023@v20261201) rolls nodes only when it changes.
            "amiSelectorTerms": [{"alias": pool.ami or DEFAULT_AMI}],
            "subnetSelectorTerms": [{"tags": {DISCOVERY_TAG: spec.project}}],
            "securityGroupSelectorTerms": [{"tags": {DISCOVERY_TAG: spec.project}}],
            "blockDeviceMappings": block_devices(pool),
            # IMDSv2 only, and one hop: pods get their identity from IRSA, never from the node's role.
            "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required", "httpPutResponseHopLimit": 1, "httpProtocolIPv6": "disabled"},
            "tags": {**spec.tags, labels.PROJECT_TAG: spec.project, "managed-by": "mlkit"},
        },
    }


def render(spec: Spec, header: str, shared: PurePosixPath) -> dict[str, str]:
    """`<shared>/nodepools/<pool>.yaml`: the EC2NodeClass, then the NodePool that names it."""
    if not enabled(spec):
        return {}
    out = {}
    for pool in spec.cluster.node_pools:
        docs = [node_class(spec, pool), node_pool(spec, pool)]
        out[str(shared / "nodepools" / f"{pool.name}.yaml")] = header + "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)
    return out
