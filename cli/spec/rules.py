"""Rules that relate fields to each other: clouds, accelerators, pools and APIs.

Each rule yields a Problem at the field path the user has to change, so that one run reports every
problem in the spec.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import placement
from . import accelerators as acc
from . import engines, syntax
from .engines import ENGINES
from .schema import Api, AsyncQueue, NodePool, Serving, Spec, quantity_value

if TYPE_CHECKING:
    import ipaddress

Loc = tuple[str | int, ...]

# Whole-string patterns (re.fullmatch): `re.match` with `$` would let "us-west-2\n" through.
AWS_INSTANCE = syntax.AWS_INSTANCE
GCP_MACHINE = syntax.GCP_MACHINE


@dataclass(frozen=True)
class Problem:
    loc: Loc
    message: str
    key: bool = False  # point at the mapping key (a label or tag name), not its value


def check(spec: Spec) -> list[Problem]:
    return list(_all(spec))


def _all(spec: Spec) -> Iterator[Problem]:
    yield from _cloud(spec)
    yield from _network(spec)
    pool_problems = list(_pools(spec))
    yield from pool_problems
    # Placement against a broken pool would only repeat the pool's problem in other words.
    yield from _apis(spec, place=not pool_problems)
    yield from _eks_node_groups(spec)
    yield from _gcp_apply_time(spec)
    yield from _engines(spec)
    yield from _model_access(spec)
    yield from _kinds(spec)


def _cloud(spec: Spec) -> Iterator[Problem]:
    if spec.cloud == "aws":
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
    else:
        if "node_provisioning" in spec.cluster.model_fields_set:
            yield Problem(("cluster", "node_provisioning"), "AWS only; remove it (GKE node pools autoscale on their own)")
        if problem := syntax.gcp_region(spec.region):
            yield Problem(("region",), problem)
        if spec.gcp_project is None:
            yield Problem(("gcp_project",), "required with `cloud: gcp`: the ID of the project to create resources in")
        if spec.state.backend == "s3":
            yield Problem(("state", "backend"), "s3 state needs `cloud: aws` (valid on gcp: local, gcs)")
        zones: list[tuple[Loc, str | None]] = [(("cluster", "zone"), spec.cluster.zone)] + [
            (("cluster", "node_pools", i, "zones"), z) for i, p in enumerate(spec.cluster.node_pools) for z in p.zones
        ]
        for loc, zone in zones:
            if zone is not None and (problem := syntax.gcp_zone(zone, spec.region)):
                yield Problem(loc, problem)
    if spec.state.backend != "local" and not spec.state.bucket:
        yield Problem(("state", "bucket"), f"required with `backend: {spec.state.backend}`: an existing bucket for the state files")


def _network(spec: Spec) -> Iterator[Problem]:
    net = spec.network
    existing = net.existing_vpc_id or net.existing_network
    if existing:
        for name in ("vpc_cidr", "nat", "az_count"):
            if name in net.model_fields_set:
                yield Problem(("network", name), "applies to a new network only; remove it or remove the existing_* settings")
    if spec.cloud == "aws":
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
    else:
        for name in ("existing_vpc_id", "existing_private_subnet_ids"):
            if getattr(net, name) is not None:
                yield Problem(("network", name), "AWS only; on GCP use existing_network and existing_subnetwork")
        if bool(net.existing_network) != bool(net.existing_subnetwork):
            yield Problem(("network", "existing_subnetwork"), "existing_network and existing_subnetwork go together; set both or neither")


def _pools(spec: Spec) -> Iterator[Problem]:
    cluster = spec.cluster
    if cluster.existing is not None:
        if cluster.node_pools:
            yield Problem(("cluster", "node_pools"), "an existing cluster brings its own nodes; remove node_pools or remove existing")
        if not (cluster.existing.name or cluster.existing.context):
            yield Problem(("cluster", "existing"), "name the cluster (`name:`) or a kubeconfig context (`context:`), or both")
        elif spec.cloud == "aws" and not cluster.existing.name:
            exposed = [a.name for a in spec.apis if a.expose != "cluster"]
            if exposed:
                yield Problem(
                    ("cluster", "existing", "name"),
                    f"API {exposed[0]} has a load balancer, whose controller's IAM role trusts the cluster's OIDC provider: "
                    "set the EKS cluster's name here too",
                )
        return
    if not cluster.node_pools:
        yield Problem(("cluster", "node_pools"), "add at least one node pool, e.g. {name: cpu, instance_type: m6i.large, min_nodes: 1, max_nodes: 3}")
    for index in _repeats([p.name for p in cluster.node_pools]):
        yield Problem(("cluster", "node_pools", index, "name"), f"duplicate pool name '{cluster.node_pools[index].name}'; pool names must be unique")
    for i, pool in enumerate(cluster.node_pools):
        loc: Loc = ("cluster", "node_pools", i)
        if pool.min_nodes > pool.max_nodes:
            yield Problem(loc + ("min_nodes",), f"min_nodes ({pool.min_nodes}) is above max_nodes ({pool.max_nodes})")
        if spec.cloud == "aws":
            yield from _aws_pool(pool, loc)
            for name in ("zones", "disk_type"):
                if name in pool.model_fields_set:
                    yield Problem(loc + (name,), "GCP only; EKS node groups use the cluster's subnets and gp3 disks")
        else:
            yield from _gcp_pool(pool, loc, zonal=cluster.zone is not None)


def _repeats(names: list[str]) -> list[int]:
    """Indexes of names seen before: the entries to rename."""
    return [i for i, name in enumerate(names) if name in names[:i]]


def _aws_pool(pool: NodePool, loc: Loc) -> Iterator[Problem]:
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


def _gcp_pool(pool: NodePool, loc: Loc, zonal: bool = False) -> Iterator[Problem]:
    itype = pool.instance_type
    if itype is not None and AWS_INSTANCE.fullmatch(itype):
        kind = "an AWS Neuron" if acc.is_aws_accelerated_family(itype) and acc.aws_family(itype)[0] in acc.table()["aws"]["neuron"] else "an EC2"
        yield Problem(loc + ("instance_type",), f"'{itype}' is {kind} instance type; "
                                                "on GCP use a machine type such as n2-standard-4, g2-standard-8 or a TPU block")
        return
    if pool.tpu is not None:
        if not zonal and not pool.zones:
            yield Problem(loc + ("zones",), "a TPU slice lives in one zone: set zones: [<a zone with this TPU>], "
                                            "e.g. [us-central1-a], or make the cluster zonal (cluster.zone)")
        yield from _tpu_pool(pool, loc)
        return
    if itype is None:
        yield Problem(loc + ("instance_type",), "required unless the pool has a tpu block, e.g. n2-standard-4 or g2-standard-8")
        return
    if not GCP_MACHINE.fullmatch(itype) or len(itype) > 63:
        yield Problem(loc + ("instance_type",), f"{itype!r} is not a GCE machine type; e.g. n2-standard-4, g2-standard-8, a3-highgpu-8g")
        return
    if itype in acc.tpu_machine_versions():
        yield Problem(loc + ("instance_type",), f"'{itype}' is a TPU machine type; describe the slice with `tpu: {{version: ..., topology: ...}}` instead")
    if pool.gpu is not None:
        if acc.gcp_gpu_machine(itype):
            yield Problem(loc + ("gpu",), f"{itype} comes with its GPUs; remove the gpu block")
        elif not itype.startswith("n1-"):
            yield Problem(loc + ("gpu",), f"GPUs attach to N1 machine types only; for {pool.gpu.type} pick an n1-* type, or use a2/a3/g2 types that carry GPUs")
        else:
            n1 = acc.gcp_n1_gpus()
            if pool.gpu.type not in n1:
                yield Problem(loc + ("gpu", "type"), f"'{pool.gpu.type}' cannot attach to N1 (valid: {', '.join(n1)})")
            elif pool.gpu.count not in n1[pool.gpu.type]:
                yield Problem(loc + ("gpu", "count"), f"{pool.gpu.type} comes {', '.join(map(str, n1[pool.gpu.type]))} to a VM")


def _tpu_pool(pool: NodePool, loc: Loc) -> Iterator[Problem]:
    tpu = pool.tpu
    assert tpu is not None
    entry = acc.tpu_versions()[tpu.version]
    if tpu.topology not in entry["topologies"]:
        yield Problem(loc + ("tpu", "topology"), f"'{tpu.topology}' is not a TPU {tpu.version} topology (valid: {', '.join(entry['topologies'])})")
        return
    s = acc.tpu_slice(tpu.version, tpu.topology)
    if pool.instance_type is not None and pool.instance_type != s.machine_type:
        yield Problem(loc + ("instance_type",), f"a {tpu.version} {tpu.topology} slice runs on {s.machine_type}; remove instance_type or set it to that")
    if s.multi_host and pool.max_nodes != s.nodes:
        yield Problem(loc + ("max_nodes",), f"a {tpu.topology} slice is {s.nodes} VMs, created and removed as a whole: "
                                            f"set max_nodes: {s.nodes} (add a pool per extra slice)")


def _apis(spec: Spec, place: bool) -> Iterator[Problem]:
    from ..render.wake import FALLBACK, scales_to_zero  # here: cli.render.wake imports the spec package

    for index in _repeats([a.name for a in spec.apis]):
        yield Problem(("apis", index, "name"), f"duplicate API name '{spec.apis[index].name}'; API names must be unique")
    pools = {p.name: p for p in spec.cluster.node_pools}
    for i, api in enumerate(spec.apis):
        loc: Loc = ("apis", i)
        a = api.autoscaling
        if a.min_replicas > a.max_replicas:
            yield Problem(loc + ("autoscaling", "min_replicas"), f"min_replicas ({a.min_replicas}) is above max_replicas ({a.max_replicas})")
        if api.canary is not None and api.expose != "public":
            yield Problem(
                loc + ("canary",),
                "a canary is served through the project's Gateway, an internet-facing load balancer: set `expose: public` on this API, or remove the canary",
            )
        if api.name.endswith("-canary") and api.name.removesuffix("-canary") in {a.name for a in spec.apis}:
            yield Problem(loc + ("name",), f"'{api.name}' is the name of the canary objects of API '{api.name.removesuffix('-canary')}'; pick another name")
        if api.name.endswith("-worker") and api.name.removesuffix("-worker") in {a.name for a in spec.apis if a.kind == "async"}:
            base = api.name.removesuffix("-worker")
            yield Problem(loc + ("name",), f"'{api.name}' is the name of the worker objects of async API '{base}'; pick another name")
        if a.min_replicas == 0 and api.canary is not None:
            # The Gateway splits traffic between two always-present Services; the wake-on-request path
            # (the KEDA HTTP add-on's interceptor) sits in front of one, so the two do not combine.
            yield Problem(
                loc + ("autoscaling", "min_replicas"), "an API with a canary cannot scale to zero: set min_replicas to 1 or more, or remove the canary"
            )
        woken = api.name.removesuffix("-backend")
        if woken != api.name and woken in {x.name for x in spec.apis if scales_to_zero(x)}:
            yield Problem(loc + ("name",), f"'{api.name}' is the name of the backend Service of API '{woken}', which scales to zero; pick another name")
        if api.name == FALLBACK and any(scales_to_zero(x) for x in spec.apis):
            yield Problem(loc + ("name",), f"'{api.name}' is the name of the cold-start fallback of the APIs that scale to zero; pick another name")
        asked = [k for k in ("gpu", "neuron_cores", "tpu_chips") if getattr(api.compute, k)]
        if len(asked) > 1:
            yield Problem(loc + ("compute",), f"asks for {' and '.join(asked)}; one replica uses one kind of accelerator")
            continue
        if spec.cluster.existing is not None or not place:
            continue  # the pools of someone else's cluster are not known here
        yield from _placement(spec, api, loc, pools)


_KIND_WORDS = {"nvidia": "NVIDIA GPU(s)", "neuron": "Neuron core(s)", "tpu": "TPU chip(s)", "none": "CPU-only"}
_COMPUTE_FIELD = {"nvidia": "gpu", "neuron": "neuron_cores", "tpu": "tpu_chips"}


def _placement(spec: Spec, api: Api, loc: Loc, pools: dict[str, NodePool]) -> Iterator[Problem]:
    kind, amount = placement.api_demand(api)
    field = loc + ("compute", _COMPUTE_FIELD[kind]) if kind != "none" else loc + ("compute",)
    if kind == "tpu" and spec.cloud == "aws":
        yield Problem(field, "TPUs exist on GCP only; on AWS ask for gpu or neuron_cores")
        return
    if kind == "neuron" and spec.cloud == "gcp":
        yield Problem(field, "Neuron cores exist on AWS only; on GCP ask for gpu or tpu_chips")
        return
    if api.node_pool is not None:
        pool = pools.get(api.node_pool)
        if pool is None:
            yield Problem(loc + ("node_pool",), f"no pool named '{api.node_pool}' (valid: {', '.join(pools) or 'none defined'})")
            return
        have = placement.pool_accelerator(pool, spec.cloud)
        if not placement.fits(have, kind, amount):
            yield Problem(loc + ("node_pool",), _misfit(api, kind, amount, pool, have))
        return
    if placement.pool_for(api, spec) is None:
        offers = [f"{p.name}: {_offer(placement.pool_accelerator(p, spec.cloud))}" for p in spec.cluster.node_pools]
        want = f"{amount} {_KIND_WORDS[kind]}" if kind != "none" else "a CPU-only node"
        yield Problem(field, f"no node pool offers {want} per node (pools: {'; '.join(offers) or 'none'}); add such a pool or change the request")


def _offer(have: acc.Accelerator) -> str:
    if have.kind == "none":
        return "CPU only"
    if have.kind == "neuron":
        return f"{have.neuron_cores} Neuron cores"
    if have.kind == "tpu":
        return f"{have.count} TPU chips"
    return f"{have.count} {have.device} GPU(s)"


def _misfit(api: Api, kind: acc.Kind, amount: int, pool: NodePool, have: acc.Accelerator) -> str:
    if kind == "none":
        return f"pool '{pool.name}' has {_offer(have)} nodes; a CPU-only API would hold them idle; pick a CPU pool"
    if kind == "tpu" and have.kind == "tpu":
        return f"pool '{pool.name}' has {have.count} TPU chips per VM; set compute.tpu_chips to {have.count}"
    return f"pool '{pool.name}' offers {_offer(have)} per node, the API asks for {amount} {_KIND_WORDS[kind]}"


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


def _eks_node_groups(spec: Spec) -> Iterator[Problem]:
    if spec.cloud != "aws" or spec.cluster.existing is not None:
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
            continue  # _aws_pool already says what is wrong with it
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


################################################################################
# GCP: combinations that `terraform validate` accepts and GKE refuses at apply. Each rule names the
# document it comes from; the README lists them.
################################################################################

# Ranges the kit's modules give GCP on a new network (terraform/gcp/gke and terraform/gcp/network
# variables; tests/spec/test_gcp_apply_rules.py keeps them equal to the module defaults).
GKE_MASTER_CIDR = "172.16.0.0/28"
GKE_POD_CIDR = "10.64.0.0/14"
GKE_SERVICE_CIDR = "10.68.0.0/20"


def _gcp_machine_prefix(machine_type: str, key: str) -> str | None:
    return next((p for p in acc.table()["gcp"][key] if machine_type.startswith(p)), None)


def gcp_machine_type(pool: NodePool) -> str:
    """The machine type a GKE pool runs on: the TPU slice's, or the one given."""
    if pool.tpu is not None and pool.tpu.topology in acc.tpu_versions()[pool.tpu.version]["topologies"]:
        return acc.tpu_slice(pool.tpu.version, pool.tpu.topology).machine_type
    return pool.instance_type or ""


def gcp_boot_disk(pool: NodePool) -> str:
    """The pool's boot disk type: as given, else hyperdisk-balanced where the series takes Hyperdisk only."""
    if "disk_type" not in pool.model_fields_set and _gcp_machine_prefix(gcp_machine_type(pool), "hyperdisk_only"):
        return "hyperdisk-balanced"
    return pool.disk_type


def _gcp_apply_time(spec: Spec) -> Iterator[Problem]:
    if spec.cloud != "gcp" or spec.cluster.existing is not None:
        return
    for i, pool in enumerate(spec.cluster.node_pools):
        yield from _gcp_pool_apply_time(pool, ("cluster", "node_pools", i))
    yield from _gcp_ranges(spec)
    yield from _gcp_tpu_versions(spec)


def _gcp_tpu_versions(spec: Spec) -> Iterator[Problem]:
    # GKE "Plan TPUs in GKE": each TPU generation needs a minimum GKE version (accelerators.yaml).
    for pool in spec.cluster.node_pools:
        if pool.tpu is None:
            continue
        minimum = acc.tpu_versions()[pool.tpu.version].get("min_kubernetes")
        if minimum and _minor(spec.cluster.kubernetes_version) < _minor(minimum):
            yield Problem(
                ("cluster", "kubernetes_version"),
                f"TPU {pool.tpu.version} pools (pool '{pool.name}') need GKE {minimum} or later; set kubernetes_version: \"{minimum}\" or newer",
            )
            return


def _minor(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".") if x.isdigit())


def _gcp_pool_apply_time(pool: NodePool, loc: Loc) -> Iterator[Problem]:
    machine = gcp_machine_type(pool)
    # Compute Engine disk support tables (sources in accelerators.yaml): a series takes Hyperdisk only,
    # or Persistent Disk only. Left out, disk_type follows the machine type (gcp_boot_disk).
    explicit = "disk_type" in pool.model_fields_set
    if machine and explicit and pool.disk_type.startswith("pd-") and (prefix := _gcp_machine_prefix(machine, "hyperdisk_only")):
        yield Problem(loc + ("disk_type",), f"{machine} boots from Hyperdisk only ({prefix}* machine types); set disk_type: hyperdisk-balanced or leave it out")
    if machine and pool.disk_type.startswith("hyperdisk") and (prefix := _gcp_machine_prefix(machine, "persistent_disk_only")):
        yield Problem(loc + ("disk_type",), f"{machine} takes Persistent Disk only ({prefix}* machine types); use pd-balanced, pd-ssd or pd-standard")
    # Compute Engine "GPU machine types": an N1 VM with k GPUs of a type has at most so many vCPUs.
    vcpus = re.fullmatch(r"n1-(?:standard|highmem|highcpu)-([0-9]+)", machine)
    if vcpus and pool.gpu is not None:
        limit = acc.table()["gcp"]["n1_max_vcpus"].get(pool.gpu.type, {}).get(pool.gpu.count)
        if limit is not None and int(vcpus.group(1)) > limit:
            yield Problem(loc + ("instance_type",), f"{machine} has {vcpus.group(1)} vCPUs; "
                                                    f"with {pool.gpu.count} {pool.gpu.type} an N1 VM may have at most {limit}")
    if pool.tpu is None or pool.tpu.topology not in acc.tpu_versions()[pool.tpu.version]["topologies"]:
        return
    # GKE "Plan TPUs" / cluster-toolkit gke-node-pool: a slice (and COMPACT placement) lives in one
    # zone, and node counts are per zone, so two zones would mean two slices.
    if len(pool.zones) > 1:
        yield Problem(loc + ("zones",), f"a TPU slice lives in one zone; name exactly one (e.g. [{pool.zones[0]}]) and add a pool per extra zone")
    s = acc.tpu_slice(pool.tpu.version, pool.tpu.topology)
    # GKE "Deploy TPU workloads in GKE Standard": a multi-host slice pool holds 0 nodes or the whole
    # slice; the autoscaler adds and removes it as one unit.
    if s.multi_host and pool.min_nodes not in (0, s.nodes):
        yield Problem(loc + ("min_nodes",), f"a {pool.tpu.topology} slice is {s.nodes} VMs added and removed as a whole: "
                                            f"set min_nodes to 0 (idle slice removed) or {s.nodes}")


def _gcp_ranges(spec: Spec) -> Iterator[Problem]:
    import ipaddress

    cluster = spec.cluster
    # GKE private clusters: with only a private endpoint, authorized networks must be internal
    # addresses ("... is not a reserved network, which is required for private endpoints").
    if not cluster.endpoint_public_access:
        for j, cidr in enumerate(cluster.public_access_cidrs):
            net = _network_or_none(cidr)
            if net is not None and not net.is_private:
                yield Problem(
                    ("cluster", "public_access_cidrs", j),
                    f"'{cidr}' is a public range; with endpoint_public_access: false GKE accepts only internal ranges here: "
                    f"list the networks that reach the private endpoint, e.g. [{spec.network.vpc_cidr}]",
                )
    if not spec.network.creates_vpc:
        return
    # GKE private clusters: the control plane's /28 must not overlap the VPC; VPC subnets: secondary
    # ranges (pods, services) must not overlap the primary range.
    vpc = _network_or_none(spec.network.vpc_cidr)
    if vpc is None:
        return
    for what, cidr in (("the control plane range", GKE_MASTER_CIDR), ("the pod range", GKE_POD_CIDR), ("the Service range", GKE_SERVICE_CIDR)):
        if vpc.overlaps(ipaddress.ip_network(cidr)):
            yield Problem(("network", "vpc_cidr"), f"{spec.network.vpc_cidr} overlaps {what} {cidr} that GKE uses; pick another range, e.g. 10.0.0.0/16")


def _network_or_none(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    import ipaddress

    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None


################################################################################
# Engine APIs (`engine: vllm`): the engine replaces the predictor, shards the model over the
# accelerators of one replica, and runs only on the accelerators it supports.
################################################################################

# Fields of the predictor runtime that an engine has its own answer to.
_RUNTIME_ONLY = {
    "config": "predictor settings",
    "batching": "server-side batching (the engine batches continuously)",
    "concurrency": "admission control (the engine queues itself)",
    "canary": "a canary",
    "monitoring": "prediction monitoring (the runtime's metric of each prediction; the engine exports its own vllm:* metrics)",
}
_ENGINE_ONLY = ("hf_model", "hf_token_secret", "serving")


def _engines(spec: Spec) -> Iterator[Problem]:
    pools_ok = spec.cluster.existing is None and not list(_pools(spec))
    for i, api in enumerate(spec.apis):
        loc: Loc = ("apis", i)
        if api.engine is None:
            if api.predictor is None:
                yield Problem(loc + ("predictor",), (
                    "required field is missing: the predictor class as `file.py:ClassName` (or `engine: vllm` to serve the model with an engine)"
                ))
            for name in _ENGINE_ONLY:
                if getattr(api, name) is not None:
                    yield Problem(loc + (name,), "only for engine APIs; set `engine: vllm` or remove it")
            if api.autoscaling.target_waiting is not None:
                yield Problem(loc + ("autoscaling", "target_waiting"), "only for engine APIs (it reads the engine's queue); remove it or set `engine: vllm`")
            continue
        yield from _engine_api(spec, api, loc, pools_ok)


def _engine_api(spec: Spec, api: Api, loc: Loc, pools_ok: bool) -> Iterator[Problem]:
    engine = ENGINES[api.engine or ""]
    if api.predictor is not None:
        yield Problem(loc + ("predictor",), (
            f"an API with `engine: {engine.name}` runs the engine's own server, not a predictor; remove predictor, or remove engine"
        ))
    for name, what in _RUNTIME_ONLY.items():
        if name in api.model_fields_set:
            yield Problem(loc + (name,), f"{what} is a predictor-runtime setting, not used with `engine: {engine.name}`; remove it")
    if api.model is None and api.hf_model is None:
        yield Problem(loc + ("model",), "an engine API needs weights: `model:` (s3://, gs:// or a folder in the project) or `hf_model: org/name`")
    elif api.model is not None and api.hf_model is not None:
        yield Problem(loc + ("hf_model",), "give the weights once: `model:` or `hf_model:`, not both")
    if api.hf_token_secret is not None and api.hf_model is None:
        yield Problem(loc + ("hf_token_secret",), "a Hugging Face token is for `hf_model`; remove it, or name the model with hf_model")
    kind, amount = placement.api_demand(api)
    if kind == "none":
        yield Problem(loc + ("compute",), (
            f"engine {engine.name} needs accelerators; it runs on {engine.supported()}: ask for compute.gpu, compute.neuron_cores or compute.tpu_chips"
        ))
        return
    if kind not in engine.devices:
        yield Problem(loc + ("compute", _COMPUTE_FIELD[kind]), f"engine {engine.name} does not run on {_KIND_WORDS[kind]}; it runs on {engine.supported()}")
        return
    shm_size = (api.serving or Serving()).shm_size
    shm, memory = quantity_value(shm_size), quantity_value(api.compute.memory)
    if shm is not None and memory is not None and shm > memory:
        yield Problem(
            loc + ("serving", "shm_size"),
            f"{shm_size} is more than compute.memory ({api.compute.memory}), which /dev/shm counts against; lower it or raise memory",
        )
    if "memory" not in api.compute.model_fields_set:
        yield Problem(
            loc + ("compute", "memory"),
            "set it for an engine API (the default 2Gi is a predictor's): the engine loads the weights through host memory "
            "and /dev/shm counts against it; e.g. 32Gi for an 8B model",
        )
    serving = api.serving
    if serving is not None and serving.tensor_parallel_size is not None and serving.tensor_parallel_size != amount:
        yield Problem(
            loc + ("serving", "tensor_parallel_size"),
            f"tensor_parallel_size {serving.tensor_parallel_size} does not match the {amount} {_KIND_WORDS[kind]} of one replica "
            f"(compute.{_COMPUTE_FIELD[kind]}): the engine shards the model over exactly those; "
            "set both to the same number, or leave tensor_parallel_size out",
        )
    if not pools_ok:
        return  # someone else's cluster, or broken pools: the pool an API lands on is not known
    pool = placement.pool_for(api, spec)
    if pool is None:
        return  # _placement says no pool offers this many per node, naming both numbers
    have = placement.pool_accelerator(pool, spec.cloud)
    if have.kind == kind and have.device not in engine.devices[kind]:
        yield Problem(
            loc + ("compute", _COMPUTE_FIELD[kind]),
            f"pool '{pool.name}' has {have.device}, which engine {engine.name} does not run on; it runs on {engine.supported()}",
        )
    needs_length = have.kind == "neuron" and have.device in engines.NEURON_LEGACY_DEVICES and placement.fits(have, kind, amount)
    if needs_length and (serving is None or serving.max_model_len is None):
        # The Inf2/Trn1 image compiles for max_num_seqs x max_model_len at start; the model's own length
        # (often 128k tokens) takes hours to compile and does not fit the cores' memory.
        yield Problem(
            loc + ("serving", "max_model_len"),
            f"set it for an engine API on {have.device}: the Neuron engine compiles the model for this length at start, e.g. "
            "`serving: {max_model_len: 4096}`",
        )
    if pool.tpu is not None and acc.tpu_slice(pool.tpu.version, pool.tpu.topology).multi_host:
        yield Problem(
            loc + ("node_pool",),
            (
                f"pool '{pool.name}' is a multi-host TPU slice ({pool.tpu.topology}); an engine replica runs on one VM: use a single-host topology (at "
                f"most {max(acc.tpu_versions()[pool.tpu.version]['machine_types'].values())} chips)"
            ),
        )


# What `model_access: mount` hands the bucket driver: the prefix becomes a mount option (`prefix <p>/`
# for Mountpoint, `only-dir=<p>` inside a comma-separated list for Cloud Storage FUSE), so a space or
# a comma in it would split into options of its own.
MOUNT_PREFIX = re.compile(r"(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]*", re.ASCII)


def mountable(prefix: str) -> bool:
    """Whether a bucket prefix can be handed to the bucket driver as a mount option as it is."""
    return bool(MOUNT_PREFIX.fullmatch(prefix)) and not any(part in (".", "..") for part in prefix.split("/"))


def _model_access(spec: Spec) -> Iterator[Problem]:
    for i, api in enumerate(spec.apis):
        if api.model_access != "mount":
            continue
        loc: Loc = ("apis", i)
        if api.hf_model is not None:
            yield Problem(loc + ("model_access",), (
                "`mount` mounts a bucket prefix, and `hf_model` weights come from Hugging Face when the engine starts: "
                "give the weights as `model:` (a bucket prefix or a folder in the project), or remove model_access"
            ))
        elif api.model is None:
            yield Problem(loc + ("model_access",), "this API has no `model:` to mount: set model, or remove model_access")
        tracks = [(loc + ("model",), api.model)] + ([(loc + ("canary", "model"), api.canary.model)] if api.canary else [])
        for where, model in tracks:
            if model is None or "://" not in model:
                continue  # a local folder goes to a prefix mlkit names (api/digest/)
            prefix = model.partition("://")[2].partition("/")[2]
            if not mountable(prefix):
                yield Problem(where, (
                    f"with model_access: mount the prefix {prefix!r:.80} is passed to the bucket driver as a mount option: use letters, "
                    "digits, '_', '.', '-' and '/' (no '.' or '..' folder, no '//'), or model_access: copy"
                ))


################################################################################
# Workload kinds: a batch or task API runs the predictor in Jobs, not behind a Service, so the
# settings of a service mean nothing there; each kind's own block belongs to that kind alone. An async API
# (queue, workers, results by id) takes the queue's settings and none of the Gateway's.
################################################################################

_SERVICE_ONLY = ("autoscaling", "batching", "concurrency", "rollout", "expose", "api_keys", "canary", "monitoring")
# Pub/Sub's limits: an ack deadline of at most 600 s, a dead-letter policy of 5 to 100 attempts.
PUBSUB_MAX_ACK_S = 600
PUBSUB_MIN_ATTEMPTS = 5


def _kinds(spec: Spec) -> Iterator[Problem]:
    for i, api in enumerate(spec.apis):
        loc: Loc = ("apis", i)
        for block in ("batch", "task"):
            if getattr(api, block) is not None and api.kind != block:
                yield Problem(loc + (block,), f"only for `kind: {block}` (this API is `kind: {api.kind}`); set the kind or remove it")
        if api.kind == "async":
            yield from _async(spec, api, loc)
            continue
        if api.queue is not None:
            yield Problem(loc + ("queue",), f"only for `kind: async` (this API is {api.kind}); remove it or set `kind: async`")
        if api.autoscaling.target_queued is not None:
            yield Problem(loc + ("autoscaling", "target_queued"), "only for `kind: async` (it reads the queue's depth); remove it or set `kind: async`")
        if api.kind == "realtime":
            continue
        if api.kind == "task":
            # The field and its schedule are the contract; running them (a Job, a CronJob) is not built yet.
            yield Problem(loc + ("kind",), "`kind: task` is not supported by this version of mlkit yet; use `kind: batch` (jobs over a dataset) or `realtime`")
        if api.engine is not None:
            yield Problem(loc + ("engine",), f"`kind: {api.kind}` runs the predictor class in Jobs, not an engine's server; remove engine")
        for name in _SERVICE_ONLY:
            if name in api.model_fields_set and not (name == "autoscaling" and api.autoscaling.target_queued is not None):
                yield Problem(loc + (name,), f"a setting of a service (`kind: realtime`); `kind: {api.kind}` runs Jobs: remove it")


def _async(spec: Spec, api: Api, loc: Loc) -> Iterator[Problem]:
    if api.engine is not None:
        yield Problem(loc + ("kind",), "an engine API answers while the client waits; `kind: async` runs a predictor class: remove engine or kind")
    if api.canary is not None:
        yield Problem(loc + ("canary",), "an async API has no canary (its requests go through a queue, not the Gateway); remove the canary")
    q = api.queue or AsyncQueue()
    if spec.cloud == "gcp" and q.visibility_timeout_s > PUBSUB_MAX_ACK_S:
        yield Problem(
            loc + ("queue", "visibility_timeout_s"),
            f"{q.visibility_timeout_s} is above Pub/Sub's longest ack deadline, {PUBSUB_MAX_ACK_S} s; workers extend it while they predict",
        )
    if spec.cloud == "gcp" and q.max_attempts < PUBSUB_MIN_ATTEMPTS:
        yield Problem(
            loc + ("queue", "max_attempts"),
            f"{q.max_attempts} is below Pub/Sub's fewest delivery attempts before dead-lettering, {PUBSUB_MIN_ATTEMPTS}; use 5 to 100",
        )
