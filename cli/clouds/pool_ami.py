"""Rules for a pool's `ami` (the EC2NodeClass's AMI alias): it means something only to Karpenter's node classes."""

from __future__ import annotations

from collections.abc import Iterator

from ..spec import accelerators as acc
from ..spec.problem import Problem
from ..spec.schema import Spec


def problems(spec: Spec) -> Iterator[Problem]:
    mode = spec.cluster.node_provisioning
    for i, pool in enumerate(spec.cluster.node_pools):
        if pool.ami is None:
            continue
        loc = ("cluster", "node_pools", i, "ami")
        if spec.cloud != "aws":
            yield Problem(loc, "AWS only; remove it (GKE picks the node image from the release channel)")
        elif spec.cluster.existing is not None or mode == "node-groups":
            yield Problem(loc, "Karpenter pools only (node_provisioning: karpenter); node groups take EKS's AMI for the instance type; remove it")
        elif mode == "auto-mode":
            yield Problem(loc, "Karpenter pools only (node_provisioning: karpenter); EKS Auto Mode picks its own AMIs; remove it")
        elif pool.ami.startswith("bottlerocket@") and (acc.aws_instance(pool.instance_type or "") or acc.NONE).kind == "neuron":
            # Karpenter's alias resolves Neuron AMIs for AL2023 only (its al2023 NVIDIA/Neuron variants); keep the family that has one.
            yield Problem(loc, f"{pool.instance_type} is a Neuron instance: use an al2023 alias (al2023@latest or al2023@vYYYYMMDD)")
