"""The node a node autoscaler imagines for a pool at zero, and whether a pod fits it.

A pool at `min_nodes: 0` has no node to look at, so the autoscaler builds a template node from what
it knows of the pool and scales up only if a pending pod fits that node. These builders follow the
autoscalers' own code, from facts kept as test data with their sources (tests/render/data/autoscaler/):

- `eks_node_group`: cluster-autoscaler 1.35.0, cloudprovider/aws/aws_manager.go `buildNodeFromTemplate`
  with aws_wrapper.go `getManagedNodegroupInfo` (an EKS managed node group).
- `gke_node_pool`: GKE's autoscaler, from the machine type, accelerator (shared GPUs counted in shares)
  and the pool's labels and taints.

`Node` and `fits` know nothing of either cloud, so another provisioner's template (Karpenter's
instance types) can reuse them: build a `Node`, call `fits` with the pod spec as rendered.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "render" / "data" / "autoscaler"
RESOURCE_TAG = "k8s.io/cluster-autoscaler/node-template/resources/"
LABEL_TAG = "k8s.io/cluster-autoscaler/node-template/label/"
TAINT_TAG = "k8s.io/cluster-autoscaler/node-template/taint/"
# The EKS API's taint effects as the autoscaler translates them (aws_wrapper.go taintEksTranslator).
EKS_EFFECT = {"NO_SCHEDULE": "NoSchedule", "NO_EXECUTE": "NoExecute", "PREFER_NO_SCHEDULE": "PreferNoSchedule"}


@dataclass
class Node:
    """A template node: what the scheduler simulation sees (allocatable, labels, taints)."""

    name: str
    allocatable: dict[str, Decimal]
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)


def quantity(value: str | int | float) -> Decimal:
    """A Kubernetes quantity as a number: 500m, 8Gi, 2, 1e3."""
    text = str(value)
    suffixes = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
                "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
                "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
    for suffix in sorted(suffixes, key=len, reverse=True):
        if text.endswith(suffix) and re.fullmatch(r"[0-9.]+", text[: -len(suffix)]):
            return Decimal(text[: -len(suffix)]) * Decimal(suffixes[suffix])
    return Decimal(text)


def aws_instance_types() -> dict[str, dict[str, Any]]:
    data = json.loads((DATA / "aws-instance-types.json").read_text())
    return {**data["instance_types"], **{k: {kk: vv for kk, vv in v.items() if kk != "source"} for k, v in data["described"].items()}}


def gke_facts() -> dict[str, Any]:
    return json.loads((DATA / "gke-machine-types.json").read_text())


def eks_node_group(name: str, group: dict[str, Any], cluster: str, kubernetes_version: str, zone: str = "us-west-2a") -> Node:
    """The autoscaler's template node for one `node_groups` entry of the cluster stack's tfvars.

    aws_manager.go buildNodeFromTemplate: capacity from the instance table (pods 110, cpu, memory,
    nvidia.com/gpu), then resources from the ASG's node-template tags, allocatable = capacity; labels:
    generic ones, then the ASG's tags (EKS tags its ASGs eks:cluster-name and eks:nodegroup-name, which
    become labels cluster-name and nodegroup-name, and that marks the group as managed); then, for a
    managed group, DescribeNodegroup's labels (diskSize, amiType, capacityType, k8sVersion, the group's
    name and its Kubernetes labels), its taints (key and value both set), and the resources in its tags.
    The node group's own tags do not reach the ASG, so only its resource tags count.
    """
    itype = group["instance_types"][0]
    facts = aws_instance_types()[itype]
    allocatable = {
        "pods": Decimal(110),
        "cpu": Decimal(facts["vcpu"]),
        "nvidia.com/gpu": Decimal(facts["gpu"]),
        "memory": Decimal(facts["memory_mb"]) * 2**20,
    }
    node_group = f"{name}-20260101000000000000000000"  # EKS appends a 26-character suffix to the prefix
    asg_tags = {"eks:cluster-name": cluster, "eks:nodegroup-name": node_group, "k8s.io/cluster-autoscaler/enabled": "true"}
    labels = {
        "kubernetes.io/arch": facts["architecture"],
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": itype,
        "topology.kubernetes.io/region": zone[:-1],
        "topology.kubernetes.io/zone": zone,
        "topology.ebs.csi.aws.com/zone": zone,
        "kubernetes.io/hostname": f"{node_group}-asg-1",
    }
    for key, value in asg_tags.items():  # extractLabelsFromAsg: node-template/label/ tags, else "eks:" tags
        label = key.split(LABEL_TAG, 1)[1] if LABEL_TAG in key else key.split("eks:", 1)[1] if "eks:" in key else ""
        if label:
            labels[label] = value
    managed = {
        "diskSize": str(group.get("disk_size", 100)),
        "amiType": group["ami_type"],
        "eks.amazonaws.com/capacityType": "SPOT" if group.get("spot") else "ON_DEMAND",
        "k8sVersion": kubernetes_version,
        "eks.amazonaws.com/nodegroup": node_group,
        **group.get("labels", {}),
    }
    labels |= managed  # joinNodeLabelsChoosingUserValuesOverAPIValues: the API's values win
    taints = [
        {"key": t["key"], "value": t["value"], "effect": EKS_EFFECT[t["effect"]]}
        for t in group.get("taints", [])
        if t.get("key") is not None and t.get("value") is not None
    ]
    for key, value in group.get("autoscaler_tags", {}).items():  # extractAllocatableResourcesFromTags
        if key.startswith(RESOURCE_TAG) and key[len(RESOURCE_TAG):]:
            allocatable[key[len(RESOURCE_TAG):]] = quantity(value)
    return Node(name, allocatable, labels, taints)


def gke_node_pool(name: str, pool: dict[str, Any], accelerators: dict[str, Any]) -> Node:
    """GKE's template node for one `node_pools` entry of the GKE cluster stack's tfvars.

    `accelerators` is mlkit's table (cli/spec/accelerators.yaml, `gcp`) for a TPU VM's chips.
    """
    facts = gke_facts()
    machine = facts["machine_types"][pool["machine_type"]]
    allocatable = {"pods": Decimal(110), "cpu": Decimal(machine["vcpu"]), "memory": Decimal(str(machine["memory_gb"])) * 2**30}
    labels = {"cloud.google.com/gke-nodepool": name, "node.kubernetes.io/instance-type": pool["machine_type"], **pool.get("labels", {})}
    taints = [{"key": t["key"], "value": t["value"], "effect": EKS_EFFECT[t["effect"]]} for t in pool.get("taints", [])]
    if pool.get("gpu"):
        allocatable["nvidia.com/gpu"] = Decimal(pool["gpu"]["count"])
        labels["cloud.google.com/gke-accelerator"] = pool["gpu"]["type"]
        taints.append(dict(facts["gke_taints"]["nvidia"]))
        if sharing := pool["gpu"].get("sharing"):  # each GPU is that many devices, and GKE labels the node
            shared = facts["gke_gpu_sharing"]
            allocatable["nvidia.com/gpu"] *= sharing["max_shared_clients_per_gpu"]
            labels[shared["labels"]["strategy"]] = shared["label_values"][sharing["strategy"]]
            labels[shared["labels"]["clients"]] = str(sharing["max_shared_clients_per_gpu"])
    tpu_chips = {mt: n for version in accelerators["tpu"].values() for mt, n in version["machine_types"].items()}
    if pool["machine_type"] in tpu_chips:
        version = next(v for v in accelerators["tpu"].values() if pool["machine_type"] in v["machine_types"])
        allocatable["google.com/tpu"] = Decimal(tpu_chips[pool["machine_type"]])
        labels["cloud.google.com/gke-tpu-accelerator"] = version["accelerator"]
        topology = pool.get("tpu_topology") or _single_host_topology(version, pool["machine_type"])
        labels["cloud.google.com/gke-tpu-topology"] = topology
        taints.append(dict(facts["gke_taints"]["tpu"]))
    return Node(name, allocatable, labels, taints)


def _single_host_topology(version: dict[str, Any], machine_type: str) -> str:
    chips = version["machine_types"][machine_type]
    for topology in version["topologies"]:
        product = 1
        for d in topology.split("x"):
            product *= int(d)
        if product == chips:
            return str(topology)
    raise AssertionError(f"no single-host topology of {chips} chips for {machine_type}")


def fits(pod: dict[str, Any], node: Node) -> list[str]:
    """Why a pod (a Deployment's `spec.template.spec`) would not fit the node; empty when it fits.

    The scheduler's filters that a template node can answer: resources (every container's requests,
    and the largest init container's), nodeSelector, required node affinity (In, NotIn, Exists), and
    NoSchedule/NoExecute taints against tolerations.
    """
    problems = []
    requests: dict[str, Decimal] = {}
    for container in pod.get("containers", []):
        for res, value in container.get("resources", {}).get("requests", {}).items():
            requests[res] = requests.get(res, Decimal(0)) + quantity(value)
    for container in pod.get("initContainers", []):
        for res, value in container.get("resources", {}).get("requests", {}).items():
            requests[res] = max(requests.get(res, Decimal(0)), quantity(value))
    for res, amount in requests.items():
        if res == "ephemeral-storage":
            continue  # the template has none unless tagged; the autoscaler does not check it then
        if amount > node.allocatable.get(res, Decimal(0)):
            problems.append(f"{res}: asks {amount}, node offers {node.allocatable.get(res, 0)}")
    for key, value in (pod.get("nodeSelector") or {}).items():
        if node.labels.get(key) != value:
            problems.append(f"nodeSelector {key}={value}: node has {node.labels.get(key)!r}")
    required = ((pod.get("affinity") or {}).get("nodeAffinity") or {}).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required and not any(_term_matches(term, node.labels) for term in required["nodeSelectorTerms"]):
        problems.append(f"required node affinity {required['nodeSelectorTerms']} does not match {node.labels}")
    for taint in node.taints:
        if taint["effect"] in ("NoSchedule", "NoExecute") and not any(_tolerates(t, taint) for t in pod.get("tolerations", [])):
            problems.append(f"taint {taint['key']}={taint.get('value', '')}:{taint['effect']} is not tolerated")
    return problems


def _term_matches(term: dict[str, Any], labels: dict[str, str]) -> bool:
    for expr in term.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def replicas_per_node(pod: dict[str, Any], node: Node) -> int:
    """How many copies of the pod the node holds at once, by resources alone (DaemonSets not counted)."""
    requests: dict[str, Decimal] = {}
    for container in pod.get("containers", []):
        for res, value in container.get("resources", {}).get("requests", {}).items():
            requests[res] = requests.get(res, Decimal(0)) + quantity(value)
    counts = [int(node.allocatable.get(res, Decimal(0)) // amount) for res, amount in requests.items() if amount and res != "ephemeral-storage"]
    return min(counts) if counts else 0


def _tolerates(toleration: dict[str, Any], taint: dict[str, str]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint["key"]
    return bool(toleration.get("key") == taint["key"] and toleration.get("value", "") == taint.get("value", ""))
