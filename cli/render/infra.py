"""The render plan: every file mlkit writes for a spec, as text, computed without touching the disk.

Rendering is a pure function of the spec and the kit version, so the same spec gives byte-identical
files. Spec values go into `mlkit.auto.tfvars.json` and the `.tf` files stay nearly constant, which
keeps them fmt-clean by construction and keeps team edits and kit updates from colliding.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

from .. import kit, placement
from ..spec import Spec
from ..spec import accelerators as acc
from ..spec import rules
from . import k8s, wake
from .facts import Facts
from .jinja import HEADER, environment

CLUSTER = PurePosixPath("infra/terraform/cluster")
ADDONS = PurePosixPath("infra/terraform/addons")
TFVARS = "mlkit.auto.tfvars.json"
# Files whose whole content comes from the spec; mlkit overwrites them instead of merging.
MACHINE_OWNED = frozenset({str(CLUSTER / TFVARS), str(ADDONS / TFVARS)})

# Kit modules per cloud; the first one is the network, left out when the spec names an existing one.
MODULES = {
    "aws": ("vpc", "eks", "node-group", "ecr", "model-bucket", "irsa-role"),
    "gcp": ("network", "gke", "node-pool", "artifact-registry", "model-bucket"),
}
AWS_AMI = {"nvidia": "AL2023_x86_64_NVIDIA", "neuron": "AL2023_x86_64_NEURON"}
AWS_TAINT = {"nvidia": "nvidia.com/gpu", "neuron": "aws.amazon.com/neuron"}
TAINT_EFFECT = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE", "NoExecute": "NO_EXECUTE"}
# Graviton families put a "g" right after the generation: m7g, c7gn, r6gd, x2gd, t4g, i4g, im4gn, is4gen,
# hpc7g. An x86 AMI type on them fails when EKS creates the node group.
GRAVITON = re.compile(r"^(a1|[a-z]+[0-9]+g[a-z]*)\.")


def render(spec: Spec, facts: Facts | None = None) -> dict[str, str]:
    """Relative path -> file content for everything under infra/."""
    facts = facts or Facts()
    files = k8s.render(spec, facts)
    if spec.cluster.existing is None:
        tfvars = aws_tfvars(spec) if spec.cloud == "aws" else gcp_tfvars(spec)
        modules = MODULES[spec.cloud] if spec.network.creates_vpc else MODULES[spec.cloud][1:]
        files |= _stack(spec, CLUSTER, "cluster", tfvars, modules)
    addons_modules = ("irsa-role",) if spec.cloud == "aws" else ()
    files |= _stack(spec, ADDONS, "addons", addons_tfvars(spec), addons_modules)
    return files


def _stack(spec: Spec, where: PurePosixPath, stack: str, tfvars: dict, modules: tuple[str, ...]) -> dict[str, str]:
    """One Terraform root: its templates, the machine-owned tfvars, and copies of the kit modules it calls."""
    env = environment()
    existing = spec.cluster.existing
    context = {
        "spec": spec,
        "stack": stack,
        "context": existing is not None and existing.context,  # reached through a kubeconfig context
        "named": existing is None or bool(existing.name),  # looked up by name in the cloud
    }
    templates = {name: f"terraform/{spec.cloud}/{stack}/{name}.j2" for name in ("main.tf", "variables.tf", "outputs.tf", "versions.tf")}
    templates["backend.tf"] = f"terraform/{spec.cloud}/backend.tf.j2"
    if stack == "addons":
        templates["serving.tf"] = "terraform/serving.tf.j2"
        if spec.cloud == "aws" and context["named"]:
            templates["policies.tf"] = "terraform/aws/addons/policies.tf.j2"
    files: dict[str, str] = {}
    for name, template in templates.items():
        files[str(where / name)] = HEADER + "\n" + env.get_template(template).render(**context)
    files[str(where / TFVARS)] = json.dumps(tfvars, indent=2) + "\n"
    files[str(where / ".gitignore")] = env.get_template("terraform/gitignore.j2").render(**context)
    for module in modules:
        source = kit.terraform_modules(spec.cloud) / module
        for path in sorted(source.iterdir()):
            text = path.read_text(encoding="utf-8")
            if path.suffix == ".tf":
                text = HEADER + "\n" + text
            files[str(where / "modules" / module / path.name)] = text
    return files


def addons_tfvars(spec: Spec) -> dict:
    existing = spec.cluster.existing
    kinds = {placement.pool_accelerator(pool, spec.cloud).kind for pool in spec.cluster.node_pools}
    named = existing is None or bool(existing.name)
    by_context = existing is not None and bool(existing.context)
    out: dict = {"project": spec.project} if spec.cloud == "aws" else {"project_id": spec.gcp_project}
    out["region"] = spec.region
    if named and (spec.cloud == "aws" or not by_context):
        out["cluster_name"] = existing.name if existing and existing.name else spec.project
        if spec.cloud == "gcp":
            out["cluster_location"] = spec.cluster.zone or spec.region
    if by_context:
        out["kube_context"] = existing.context
    out["enable_gateway"] = any(api.canary for api in spec.apis)
    out["enable_http_add_on"] = any(wake.scales_to_zero(api) for api in spec.apis)
    if spec.cloud == "aws":
        out |= {
            "enable_nvidia_device_plugin": "nvidia" in kinds,
            "enable_neuron_device_plugin": "neuron" in kinds,
            "enable_metrics_server": existing is None,  # a cluster someone runs has its own, or chose not to
            "tags": spec.tags,
        }
        if named:
            out["enable_load_balancer_controller"] = any(api.expose != "cluster" for api in spec.apis)
            # A cluster someone else runs has its own node autoscaling; mlkit's node groups need one.
            out["enable_cluster_autoscaler"] = existing is None
            if existing is None:
                out["cluster_autoscaler_image_tag"] = rules.CLUSTER_AUTOSCALER[spec.cluster.kubernetes_version]
    return out


def aws_tfvars(spec: Spec) -> dict:
    cluster = spec.cluster
    out: dict = {
        "project": spec.project,
        "region": spec.region,
        "kubernetes_version": cluster.kubernetes_version,
    }
    if spec.network.creates_vpc:
        out |= {"vpc_cidr": spec.network.vpc_cidr, "az_count": spec.network.az_count, "nat": spec.network.nat}
    else:
        out |= {
            "existing_vpc_id": spec.network.existing_vpc_id,
            "existing_private_subnet_ids": spec.network.existing_private_subnet_ids,
        }
    out |= {
        "endpoint_public_access": cluster.endpoint_public_access,
        "endpoint_private_access": cluster.endpoint_private_access,
        "public_access_cidrs": cluster.public_access_cidrs,
        "enabled_log_types": cluster.log_types,
        "node_groups": {pool.name: _aws_node_group(spec, pool) for pool in cluster.node_pools},
        "namespace": spec.k8s_namespace,
        "api_names": [api.name for api in spec.apis],
        "tags": spec.tags,
    }
    return out


def node_labels(pool, accel: acc.Accelerator) -> dict[str, str]:
    """The labels every node of a pool carries, on both clouds; the manifests select pools by them."""
    return {
        "mlkit.dev/pool": pool.name,
        "mlkit.dev/accelerator": accel.device or "none",
        "mlkit.dev/accelerator-kind": accel.kind,
        **({"mlkit.dev/capacity": "spot"} if pool.spot else {}),
        **pool.labels,
    }


def _taints(pool) -> list[dict]:
    return [{"key": t.key, "value": t.value or "", "effect": TAINT_EFFECT[t.effect]} for t in pool.taints]


def _aws_node_group(spec: Spec, pool) -> dict:
    accel = placement.pool_accelerator(pool, "aws")
    itype = pool.instance_type or ""
    ami = AWS_AMI.get(accel.kind) or ("AL2023_ARM_64_STANDARD" if GRAVITON.match(itype) else "AL2023_x86_64_STANDARD")
    taints = _taints(pool)
    if accel.kind in AWS_TAINT:
        taints.insert(0, {"key": AWS_TAINT[accel.kind], "value": "true", "effect": "NO_SCHEDULE"})
    return {
        "instance_types": [itype],
        "ami_type": ami,
        "spot": pool.spot,
        "min_size": pool.min_nodes,
        "max_size": pool.max_nodes,
        "disk_size": pool.disk_size_gb,
        "labels": node_labels(pool, accel),
        "taints": taints,
    }


def gcp_tfvars(spec: Spec) -> dict:
    cluster = spec.cluster
    out: dict = {
        "project": spec.project,
        "project_id": spec.gcp_project,
        "region": spec.region,
        "zone": cluster.zone,
        "kubernetes_version": cluster.kubernetes_version,
        "release_channel": cluster.release_channel,
    }
    if spec.network.creates_vpc:
        out |= {"vpc_cidr": spec.network.vpc_cidr, "nat": spec.network.nat}
    else:
        out |= {"existing_network": spec.network.existing_network, "existing_subnetwork": spec.network.existing_subnetwork}
    out |= {
        "endpoint_public_access": cluster.endpoint_public_access,
        "public_access_cidrs": cluster.public_access_cidrs,
        "node_pools": {pool.name: _gke_node_pool(pool) for pool in cluster.node_pools},
        "namespace": spec.k8s_namespace,
        "api_names": [api.name for api in spec.apis],
        "labels": spec.tags,
    }
    return out


def _gke_node_pool(pool) -> dict:
    accel = placement.pool_accelerator(pool, "gcp")
    machine_type = pool.instance_type
    tpu_topology = None
    slice_nodes = 1
    if pool.tpu is not None:
        s = acc.tpu_slice(pool.tpu.version, pool.tpu.topology)
        machine_type = s.machine_type
        if s.multi_host:
            tpu_topology, slice_nodes = s.topology, s.nodes
    # GKE wants A2, A3 and G2 GPUs declared too, so that it installs the driver.
    gpu = {"type": accel.device, "count": accel.count} if accel.kind == "nvidia" else None
    return {
        "machine_type": machine_type,
        "min_nodes": pool.min_nodes,
        "max_nodes": pool.max_nodes,
        "spot": pool.spot,
        "disk_size_gb": pool.disk_size_gb,
        "disk_type": rules.gcp_boot_disk(pool),
        "zones": pool.zones,
        "labels": node_labels(pool, accel),
        "taints": _taints(pool),
        "gpu": gpu,
        "tpu_topology": tpu_topology,
        "slice_nodes": slice_nodes,
        "image_streaming": pool.image_streaming,
    }
