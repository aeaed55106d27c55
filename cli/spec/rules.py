"""Rules that relate fields to each other: clouds, accelerators, pools and APIs.

Each rule yields a Problem at the field path the user has to change, so that one run reports every
problem in the spec.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from . import accelerators as acc
from . import syntax
from .models import Api, NodePool, Spec

Loc = tuple[str | int, ...]

# Whole-string patterns (re.fullmatch): `re.match` with `$` would let "us-west-2\n" through.
AWS_INSTANCE = syntax.AWS_INSTANCE
GCP_MACHINE = syntax.GCP_MACHINE


@dataclass(frozen=True)
class Problem:
    loc: Loc
    message: str
    key: bool = False  # point at the mapping key (a label or tag name), not its value


def pool_accelerator(pool: NodePool, cloud: str) -> acc.Accelerator:
    """What each node of a valid pool carries."""
    if pool.tpu is not None:
        s = acc.tpu_slice(pool.tpu.version, pool.tpu.topology)
        return acc.Accelerator("tpu", s.accelerator, s.chips_per_vm)
    if cloud == "aws":
        return acc.aws_instance(pool.instance_type or "") or acc.NONE
    if pool.gpu is not None:
        return acc.Accelerator("nvidia", pool.gpu.type, pool.gpu.count)
    machine = acc.gcp_gpu_machine(pool.instance_type or "")
    if machine:
        return acc.Accelerator("nvidia", machine["type"], machine["count"])
    tpu_version = acc.tpu_machine_versions().get(pool.instance_type or "")
    if tpu_version:
        entry = acc.tpu_versions()[tpu_version]
        return acc.Accelerator("tpu", entry["accelerator"], entry["machine_types"][pool.instance_type])
    return acc.NONE


def api_demand(api: Api) -> tuple[acc.Kind, int]:
    c = api.compute
    if c.gpu:
        return "nvidia", c.gpu
    if c.neuron_cores:
        return "neuron", c.neuron_cores
    if c.tpu_chips:
        return "tpu", c.tpu_chips
    return "none", 0


def fits(pool_acc: acc.Accelerator, kind: acc.Kind, amount: int) -> bool:
    if pool_acc.kind != kind:
        return False
    if kind == "none":
        return True
    if kind == "neuron":
        return amount <= pool_acc.neuron_cores
    if kind == "tpu":
        # A TPU workload owns all chips of its VM: asking for fewer leaves chips idle that nobody else can use.
        return amount == pool_acc.count
    return amount <= pool_acc.count


def pool_for(api: Api, spec: Spec) -> NodePool | None:
    """The pool an API runs on: the pinned one, else the first pool offering what it asks for."""
    kind, amount = api_demand(api)
    for pool in spec.cluster.node_pools:
        if api.node_pool == pool.name or (api.node_pool is None and fits(pool_accelerator(pool, spec.cloud), kind, amount)):
            return pool
    return None


def check(spec: Spec) -> list[Problem]:
    return list(_all(spec))


def _all(spec: Spec) -> Iterator[Problem]:
    yield from _cloud(spec)
    yield from _network(spec)
    pool_problems = list(_pools(spec))
    yield from pool_problems
    # Placement against a broken pool would only repeat the pool's problem in other words.
    yield from _apis(spec, place=not pool_problems)


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
    else:
        if problem := syntax.gcp_region(spec.region):
            yield Problem(("region",), problem)
        if spec.gcp_project is None:
            yield Problem(("gcp_project",), "required with `cloud: gcp`: the ID of the project to create resources in")
        if spec.state.backend == "s3":
            yield Problem(("state", "backend"), "s3 state needs `cloud: aws` (valid on gcp: local, gcs)")
        zones = [("cluster", "zone", spec.cluster.zone)] + [
            ("cluster", "node_pools", i, "zones", z) for i, p in enumerate(spec.cluster.node_pools) for z in p.zones
        ]
        for *loc, zone in zones:
            if zone is not None and (problem := syntax.gcp_zone(zone, spec.region)):
                yield Problem(tuple(loc), problem)
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
                    f"API {exposed[0]} has a load balancer, whose controller's IAM role trusts the cluster's OIDC provider: set the EKS cluster's name here too",
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
        yield Problem(loc + ("instance_type",), f"'{itype}' is {kind} instance type; on GCP use a machine type such as n2-standard-4, g2-standard-8 or a TPU block")
        return
    if pool.tpu is not None:
        if not zonal and not pool.zones:
            yield Problem(loc + ("zones",), "a TPU slice lives in one zone: set zones: [<a zone with this TPU>], e.g. [us-central1-a], or make the cluster zonal (cluster.zone)")
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
        yield Problem(loc + ("max_nodes",), f"a {tpu.topology} slice is {s.nodes} VMs, created and removed as a whole: set max_nodes: {s.nodes} (add a pool per extra slice)")


def _apis(spec: Spec, place: bool) -> Iterator[Problem]:
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
    kind, amount = api_demand(api)
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
        have = pool_accelerator(pool, spec.cloud)
        if not fits(have, kind, amount):
            yield Problem(loc + ("node_pool",), _misfit(api, kind, amount, pool, have))
        return
    if pool_for(api, spec) is None:
        offers = [f"{p.name}: {_offer(pool_accelerator(p, spec.cloud))}" for p in spec.cluster.node_pools]
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
