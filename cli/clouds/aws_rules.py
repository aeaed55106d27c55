"""What a spec for AWS may not hold, beyond its schema: the fields of other clouds, EC2 instance types,
and combinations that pass `terraform validate` but fail when EKS creates the node group. Called
through `Aws` (aws.py) by the spec's rules (cli/spec/rules.py), in their order."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..spec import accelerators as acc
from ..spec import syntax
from ..spec.problem import Loc, Problem
from ..spec.schema import NodePool, Spec

# Whole-string patterns (re.fullmatch): `re.match` with `$` would let "us-west-2\n" through.
AWS_INSTANCE = syntax.AWS_INSTANCE
GCP_MACHINE = syntax.GCP_MACHINE


def aws_pool(pool: NodePool, loc: Loc) -> Iterator[Problem]:
    if pool.tpu is not None:
        yield Problem(loc + ("tpu",), "TPUs exist on GCP only; on AWS use Inferentia (inf2) or Trainium (trn1, trn2) instance types")
    if pool.gpu is not None:
        yield Problem(loc + ("gpu",), "AWS GPU instances bring their GPUs; remove the gpu block and pick a GPU type (g5.xlarge, g6.xlarge, p5.48xlarge)")
    if pool.image_streaming:
        yield Problem(loc + ("image_streaming",), "GKE image streaming exists on GCP only; remove it (EKS pulls images whole)")
    itype = pool.instance_type
    if itype is None:
        yield Problem(loc + ("instance_type",), "required on AWS, e.g. m6i.large, g5.xlarge or inf2.xlarge")
        return
    if not AWS_INSTANCE.fullmatch(itype):
        hint = " (that looks like a GCP machine type)" if GCP_MACHINE.fullmatch(itype) else ""
        yield Problem(loc + ("instance_type",), f"'{itype}' is not an EC2 instance type{hint}; e.g. m6i.large, g5.xlarge, inf2.xlarge")
        return
    if acc.aws_instance(itype) is None:
        family, _ = acc.aws_family(itype)
        yield Problem(loc + ("instance_type",), f"unknown size of the {family} family (valid: {', '.join(acc.aws_sizes(family))})")


################################################################################
# EKS managed node groups: combinations that pass the schema but fail when the node group is created
################################################################################

# Where each fact comes from (EKS User Guide, checked 2026-11-29):
# - "Choose an optimal Amazon EC2 node instance type" (choosing-instance-type): no EKS AMI supports the
#   mac family; Arm and non-accelerated AMIs do not support the g3, g4, inf and p families; AL2023 supports
#   Graviton2 and later only, not A1.
# - "Create nodes with optimized Amazon Linux AMIs" (eks-optimized-ami): P2 needs NVIDIA driver 470 or
#   earlier and is not supported.
# - CreateNodegroup API: a node group name is at most 63 characters; the node-group module names groups
#   "<pool>-" plus the provider's 26-character unique suffix, so they can be replaced create-before-destroy.
_EKS_NAME_MAX = 63 - 26 - 1


# Families whose nodes need an accelerated AMI (NVIDIA or Neuron drivers): the g, p and inf families the
# guide names, and Trainium. mlkit picks the AMI from its accelerator table, so a family of these
# missing there would get a standard AMI that EKS does not support on it.
_EKS_ACCELERATED_FAMILY = re.compile(r"^(g|gr|p|inf|trn)[0-9]")


# Newest Cluster Autoscaler per Kubernetes minor (kubernetes/autoscaler tags cluster-autoscaler-1.N.P,
# checked 2026-11-29). Upstream supports each release only on the Kubernetes minor of the same number,
# so the add-ons stack runs the one matching cluster.kubernetes_version.
CLUSTER_AUTOSCALER = {
    "1.28": "v1.28.7",
    "1.29": "v1.29.5",
    "1.30": "v1.30.7",
    "1.31": "v1.31.5",
    "1.32": "v1.32.7",
    "1.33": "v1.33.6",
    "1.34": "v1.34.5",
    "1.35": "v1.35.2",
    "1.36": "v1.36.1",
}


def cluster_problems(spec: Spec) -> Iterator[Problem]:
    """EKS managed node groups (above); an existing cluster brings its own."""
    if spec.cluster.existing is not None:
        return
    version = spec.cluster.kubernetes_version
    if version not in CLUSTER_AUTOSCALER:
        yield Problem(
            ("cluster", "kubernetes_version"),
            f"mlkit knows no Cluster Autoscaler release for Kubernetes {version}, and the autoscaler's minor must equal the cluster's; "
            f"use one of {', '.join(CLUSTER_AUTOSCALER)}",
        )
    aws = acc.table()["aws"]
    known = sorted(set(aws["nvidia"]) | set(aws["neuron"]))
    for i, pool in enumerate(spec.cluster.node_pools):
        loc: Loc = ("cluster", "node_pools", i)
        if len(pool.name) > _EKS_NAME_MAX:
            yield Problem(
                loc + ("name",),
                f"'{pool.name}' has {len(pool.name)} characters; on EKS a pool name is at most {_EKS_NAME_MAX} "
                "(the node group is named <pool>-<26-character suffix>, at most 63); shorten it",
            )
        itype = pool.instance_type or ""
        if not AWS_INSTANCE.fullmatch(itype):
            continue  # aws_pool already says what is wrong with it
        family, _ = acc.aws_family(itype)
        if family.startswith("mac"):
            yield Problem(loc + ("instance_type",), f"EKS has no node AMI for Mac instances ({itype}); pick a Linux type such as m6i.large")
        elif family == "a1":
            yield Problem(
                loc + ("instance_type",),
                "Amazon Linux 2023, the AMI of every mlkit node group, does not run on A1 (Graviton1); "
                f"use Graviton2 or later, e.g. {itype.replace('a1.', 'm6g.')}",
            )
        elif _EKS_ACCELERATED_FAMILY.match(family) and family not in known:
            yield Problem(
                loc + ("instance_type",),
                f"mlkit has no accelerator facts for the {family} family, so the group would get the standard AMI, which EKS does not support on "
                f"GPU, Inferentia and Trainium families; use one of {', '.join(known)}",
            )


def spec_problems(spec: Spec) -> Iterator[Problem]:
    if problem := syntax.aws_region(spec.region):
        yield Problem(("region",), problem)
    if spec.gcp_project is not None:
        yield Problem(("gcp_project",), "only used with `cloud: gcp`; remove it")
    if spec.state.backend == "gcs":
        yield Problem(("state", "backend"), "gcs state needs `cloud: gcp` (valid on aws: local, s3)")
    for name in ("zone", "release_channel"):
        if name in spec.cluster.model_fields_set:
            yield Problem(("cluster", name), "GCP only; remove it (EKS control planes span the region's zones)")
    if spec.cluster.existing is not None and spec.cluster.node_provisioning != "node-groups":
        yield Problem(
            ("cluster", "node_provisioning"),
            "provisions the nodes of a cluster mlkit creates; an existing cluster keeps its own; remove it",
        )


def network_problems(spec: Spec) -> Iterator[Problem]:
    net = spec.network
    for name in ("existing_network", "existing_subnetwork"):
        if getattr(net, name) is not None:
            yield Problem(("network", name), "GCP only; on AWS use existing_vpc_id and existing_private_subnet_ids")
    if net.existing_vpc_id and not net.existing_private_subnet_ids:
        yield Problem(("network", "existing_private_subnet_ids"), "required with existing_vpc_id: private subnets in at least two availability zones")
    if net.existing_private_subnet_ids is not None:
        if not net.existing_vpc_id:
            yield Problem(("network", "existing_private_subnet_ids"), "needs existing_vpc_id, the VPC the subnets belong to")
        elif len(net.existing_private_subnet_ids) < 2:
            yield Problem(("network", "existing_private_subnet_ids"), "EKS needs subnets in at least two availability zones; list two or more")


def existing_cluster_problems(spec: Spec) -> Iterator[Problem]:
    cluster = spec.cluster
    assert cluster.existing is not None
    if not cluster.existing.name:
        exposed = [a.name for a in spec.apis if a.expose != "cluster"]
        if exposed:
            yield Problem(
                ("cluster", "existing", "name"),
                f"API {exposed[0]} has a load balancer, whose controller's IAM role trusts the cluster's OIDC provider: "
                "set the EKS cluster's name here too",
            )


def pool_problems(spec: Spec, pool: NodePool, loc: Loc) -> Iterator[Problem]:
    yield from aws_pool(pool, loc)
    for name in ("zones", "disk_type"):
        if name in pool.model_fields_set:
            yield Problem(loc + (name,), "GCP only; EKS node groups use the cluster's subnets and gp3 disks")


def demand_problem(kind: acc.Kind) -> str | None:
    return "TPUs exist on GCP only; on AWS ask for gpu or neuron_cores" if kind == "tpu" else None
