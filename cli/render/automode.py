"""EKS Auto Mode's nodes (`cluster.node_provisioning: auto-mode`): one NodePool and one NodeClass per pool.

Auto Mode runs Karpenter inside EKS, so a pool is a `karpenter.sh/v1` NodePool as in karpenter mode,
but it names an Auto Mode `eks.amazonaws.com/v1` NodeClass instead of an EC2NodeClass: no AMI (AWS
picks its Bottlerocket variant per instance type, NVIDIA and Neuron included), no metadata options
(AWS sets them), the node role by name, an ephemeral volume. The cluster's built-in `system` and
`general-purpose` NodePools are off (`compute_config.node_pools = []` in the eks module), so every
node is one of the project's pools, with its labels, taints and limits.

Auto Mode's facts used here (awsdocs/amazon-eks-user-guide, latest/ug/automode/, kept as test data in
tests/terraform/data/automode/): a NodePool may require `node.kubernetes.io/instance-type`,
`kubernetes.io/arch` and `karpenter.sh/capacity-type`, but not `kubernetes.io/os` (Auto Mode is Linux
only and refuses the label); a NodeClass whose role is not the one in `compute_config` needs an access
entry with `AmazonEKSAutoNodePolicy` (terraform/aws/auto-mode makes it); Services of type
LoadBalancer are Auto Mode's when their class is `eks.amazonaws.com/nlb`.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import yaml

from .. import labels
from ..clouds import aws
from ..spec.schema import NodePool, Spec
from . import nodepools

NODE_CLASS_API = "eks.amazonaws.com/v1"
# The load balancer class of Auto Mode's own controller: without it a Service would wait for the AWS Load
# Balancer Controller's class, which an Auto Mode cluster does not run.
LOAD_BALANCER_CLASS = "eks.amazonaws.com/nlb"
# The cluster security group, which EKS creates and tags with the cluster's name (so it needs no tag of ours).
CLUSTER_SG_TAG = "aws:eks:cluster-name"
# Auto Mode replaces a node after at most 21 days ("maximum lifetime of 21 days, which you can reduce",
# automode.adoc), so Karpenter mode's 720h is not Auto Mode's to take; its own default is 336h ("Create a
# Node Pool", Disruption), stated so that a reviewer sees nodes are replaced every two weeks.
EXPIRE_AFTER = "336h"
# Labels Auto Mode refuses in a NodePool's requirements.
UNSUPPORTED_REQUIREMENTS = frozenset({"kubernetes.io/os"})


def enabled(spec: Spec) -> bool:
    return aws.auto_mode(spec)


def object_name(pool: NodePool) -> str:
    """The NodePool's and NodeClass's name: the pool's with `-auto`, so that while a cluster moves from Karpenter
    (whose NodePool has the pool's name, and whose `nodeClassRef.group` cannot change) both can exist."""
    return f"{pool.name}-auto"


def node_role_name(spec: Spec) -> str:
    """The node role the cluster stack's auto-mode module creates (terraform/aws/auto-mode)."""
    return f"{spec.project}-auto-node"


def load_balancer_class(spec: Spec, default: str | None) -> str | None:
    """The Service class for `expose: internal|public`: Auto Mode's own where it runs the load balancers."""
    return LOAD_BALANCER_CLASS if enabled(spec) else default


def node_pool(spec: Spec, pool: NodePool) -> dict[str, Any]:
    out = nodepools.node_pool(spec, pool)
    out["metadata"]["name"] = object_name(pool)
    template = out["spec"]["template"]["spec"]
    template["nodeClassRef"] = {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": object_name(pool)}
    template["requirements"] = [r for r in template["requirements"] if r["key"] not in UNSUPPORTED_REQUIREMENTS]
    template["expireAfter"] = EXPIRE_AFTER
    return out


def _subnet_terms(spec: Spec) -> list[dict[str, Any]]:
    # A VPC of this stack tags its private subnets (terraform/aws/vpc); an existing network's subnets are
    # in the spec, so they are named by id and need no tag that another owner could undo.
    if spec.network.existing_private_subnet_ids:
        return [{"id": subnet} for subnet in spec.network.existing_private_subnet_ids]
    return [{"tags": {nodepools.DISCOVERY_TAG: spec.project}}]


def node_class(spec: Spec, pool: NodePool) -> dict[str, Any]:
    return {
        "apiVersion": NODE_CLASS_API,
        "kind": "NodeClass",
        "metadata": {"name": object_name(pool), "labels": labels.owner_labels(spec.project)},
        "spec": {
            "role": node_role_name(spec),
            "subnetSelectorTerms": _subnet_terms(spec),
            "securityGroupSelectorTerms": [{"tags": {CLUSTER_SG_TAG: spec.project}}],
            # Auto Mode encrypts it; the size is the pool's, IOPS and throughput gp3's baseline.
            "ephemeralStorage": {"size": f"{pool.disk_size_gb}Gi", "iops": 3000, "throughput": 125},
            "tags": {**spec.tags, labels.PROJECT_TAG: spec.project, "managed-by": "mlkit"},
        },
    }


def render(spec: Spec, header: str, shared: PurePosixPath) -> dict[str, str]:
    """`<shared>/nodepools/<pool>.yaml`: the NodeClass, then the NodePool that names it."""
    out = {}
    for pool in spec.cluster.node_pools:
        docs = [node_class(spec, pool), node_pool(spec, pool)]
        out[str(shared / "nodepools" / f"{pool.name}.yaml")] = header + "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)
    return out
