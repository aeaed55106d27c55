"""What a spec for GCP may not hold, beyond its schema: the fields of other clouds, GCE machine types,
GPUs and TPU slices, and combinations that `terraform validate` accepts and GKE refuses at apply.
Called through `Gcp` (gcp.py) by the spec's rules (cli/spec/rules.py), in their order."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..spec import accelerators as acc
from ..spec import syntax
from ..spec.problem import Loc, Problem
from ..spec.schema import AsyncQueue, NodePool, Spec

if TYPE_CHECKING:
    import ipaddress

# Whole-string patterns (re.fullmatch): `re.match` with `$` would let "us-west-2\n" through.
AWS_INSTANCE = syntax.AWS_INSTANCE
GCP_MACHINE = syntax.GCP_MACHINE


def gcp_pool(pool: NodePool, loc: Loc, zonal: bool = False) -> Iterator[Problem]:
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


################################################################################
# GCP: combinations that `terraform validate` accepts and GKE refuses at apply. Each rule names the
# document it comes from; docs/concepts/stacks.md lists them.
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


def cluster_problems(spec: Spec) -> Iterator[Problem]:
    """What GKE refuses at apply (above); an existing cluster brings its own."""
    if spec.cluster.existing is not None:
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


# Pub/Sub's limits: an ack deadline of at most 600 s, a dead-letter policy of 5 to 100 attempts.
PUBSUB_MAX_ACK_S = 600
# Pub/Sub topic and subscription ids must not start with this (projects.subscriptions.create: name).
PUBSUB_RESERVED_PREFIX = "goog"


PUBSUB_MIN_ATTEMPTS = 5


def spec_problems(spec: Spec) -> Iterator[Problem]:
    if "node_provisioning" in spec.cluster.model_fields_set:
        yield Problem(("cluster", "node_provisioning"), "AWS only; remove it (GKE node pools autoscale on their own)")
    if problem := syntax.gcp_region(spec.region):
        yield Problem(("region",), problem)
    if spec.gcp_project is None:
        yield Problem(("gcp_project",), "required with `cloud: gcp`: the ID of the project to create resources in")
    if spec.state.backend == "s3":
        yield Problem(("state", "backend"), "s3 state needs `cloud: aws` (valid on gcp: local, gcs)")
    if spec.project.startswith(PUBSUB_RESERVED_PREFIX) and any(api.kind == "async" for api in spec.apis):
        yield Problem(
            ("project",),
            f"{spec.project!r} starts with {PUBSUB_RESERVED_PREFIX!r}, which Pub/Sub refuses in topic and subscription names "
            "(an async API's queue is <project>-<api>); choose a project name that does not",
        )
    zones: list[tuple[Loc, str | None]] = [(("cluster", "zone"), spec.cluster.zone)] + [
        (("cluster", "node_pools", i, "zones"), z) for i, p in enumerate(spec.cluster.node_pools) for z in p.zones
    ]
    for loc, zone in zones:
        if zone is not None and (problem := syntax.gcp_zone(zone, spec.region)):
            yield Problem(loc, problem)


def network_problems(spec: Spec) -> Iterator[Problem]:
    net = spec.network
    for name in ("existing_vpc_id", "existing_private_subnet_ids"):
        if getattr(net, name) is not None:
            yield Problem(("network", name), "AWS only; on GCP use existing_network and existing_subnetwork")
    if bool(net.existing_network) != bool(net.existing_subnetwork):
        yield Problem(("network", "existing_subnetwork"), "existing_network and existing_subnetwork go together; set both or neither")


def pool_problems(spec: Spec, pool: NodePool, loc: Loc) -> Iterator[Problem]:
    yield from gcp_pool(pool, loc, zonal=spec.cluster.zone is not None)


def demand_problem(kind: acc.Kind) -> str | None:
    return "Neuron cores exist on AWS only; on GCP ask for gpu or tpu_chips" if kind == "neuron" else None


def queue_problems(q: AsyncQueue, loc: Loc) -> Iterator[Problem]:
    if q.visibility_timeout_s > PUBSUB_MAX_ACK_S:
        yield Problem(
            loc + ("queue", "visibility_timeout_s"),
            f"{q.visibility_timeout_s} is above Pub/Sub's longest ack deadline, {PUBSUB_MAX_ACK_S} s; workers extend it while they predict",
        )
    if q.max_attempts < PUBSUB_MIN_ATTEMPTS:
        yield Problem(
            loc + ("queue", "max_attempts"),
            f"{q.max_attempts} is below Pub/Sub's fewest delivery attempts before dead-lettering, {PUBSUB_MIN_ATTEMPTS}; use 5 to 100",
        )
