"""AWS: EKS, ECR, S3, IRSA, the AWS Load Balancer Controller's NLBs."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from . import Cloud

if TYPE_CHECKING:
    import datetime

    from ..cluster.credentials import Endpoint
    from ..spec.accelerators import Accelerator
    from ..spec.schema import NodePool, Spec

AMI = {"nvidia": "AL2023_x86_64_NVIDIA", "neuron": "AL2023_x86_64_NEURON"}
TAINT = {"nvidia": "nvidia.com/gpu", "neuron": "aws.amazon.com/neuron"}
# Scale from zero: the cluster autoscaler builds a pool's template node from its instance table (cpu,
# memory and nvidia.com/gpu only), the EKS DescribeNodegroup answer (labels, taints) and the node group's
# tags `k8s.io/cluster-autoscaler/node-template/resources/<resource>` for every other resource
# (cluster-autoscaler 1.35.0 cloudprovider/aws/aws_manager.go, buildNodeFromTemplate). Without the tags an
# inf2/trn pool at zero offers no Neuron cores, and a pod asking for one never triggers a scale-up.
# The Neuron device plugin advertises all three resources; mlkit's pods ask for cores.
NODE_TEMPLATE_RESOURCE = "k8s.io/cluster-autoscaler/node-template/resources/"
# The label the autoscaler's AWS provider reads as "this node has a GPU" (aws_cloud_provider.go GPULabel):
# until the device plugin advertises nvidia.com/gpu, a node with it counts as still starting instead of
# as a node that cannot take the pod, so the autoscaler does not scale out again (its AWS README, "Special
# note on GPU instances").
GPU_LABEL = "k8s.amazonaws.com/accelerator"
# Graviton families put a "g" right after the generation: m7g, c7gn, r6gd, x2gd, t4g, i4g, im4gn, is4gen,
# hpc7g. An x86 AMI type on them fails when EKS creates the node group.
GRAVITON = re.compile(r"^(a1|[a-z]+[0-9]+g[a-z]*)\.")


class Aws(Cloud):
    name = "aws"
    bucket_scheme = "s3"
    cluster_modules = ("vpc", "eks", "node-group", "ecr", "model-bucket", "irsa-role")
    addons_modules = ("irsa-role",)
    load_balancer_class = "service.k8s.aws/nlb"
    identity_annotation = "eks.amazonaws.com/role-arn"

    mount_driver = "s3.csi.aws.com"  # Mountpoint for Amazon S3, the EKS add-on aws-mountpoint-s3-csi-driver
    mount_needs_volume = True  # Mountpoint supports static provisioning only

    def mount_options(self, spec: Spec, prefix: str, uid: int) -> list[str]:
        # Mountpoint's own flags (awslabs/mountpoint-s3 doc/CONFIGURATION.md): a prefix must end in "/";
        # files are owned by root unless uid/gid say otherwise, and a user other than the one that
        # mounted may read them only with allow-other (the driver's non_root example).
        options = ["read-only", f"region {spec.region}"]
        if prefix:
            options.append(f"prefix {prefix.rstrip('/')}/")
        return options + [f"uid={uid}", f"gid={uid}", "allow-other"]

    def registry(self, spec: Spec, account: str | None) -> str:
        return f"{account}.dkr.ecr.{spec.region}.amazonaws.com"

    def image_ref(self, spec: Spec, api: str, tag: str, account: str | None) -> str:
        # One ECR repository per project; the API is part of the tag.
        return f"{self.registry(spec, account)}/{spec.project}:{api}-{tag}"

    def identity(self, spec: Spec, api: str, account: str | None) -> str:
        return f"arn:aws:iam::{account or 'ACCOUNT-ID'}:role/{role_name(spec, api)}"

    def service_annotations(self, expose: str) -> dict[str, str]:
        return {
            "service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing" if expose == "public" else "internal",
            "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
        }

    def token_args(self, spec: Spec, cluster: str) -> list[str]:
        return ["--cloud", "aws", "--cluster", cluster, "--region", spec.region]

    def endpoint(self, spec: Spec, cluster: str) -> Endpoint:
        from ..cluster import credentials

        return credentials.eks_endpoint(cluster, spec.region)

    def token(self, cluster: str, region: str | None) -> tuple[str, datetime.datetime]:
        from ..cluster import credentials
        from ..errors import UserError

        if not region:
            raise UserError("--region is required with --cloud aws")
        return credentials.eks_token(cluster, region)


    def cluster_tfvars(self, spec: Spec) -> dict[str, Any]:
        cluster = spec.cluster
        out: dict[str, Any] = {"project": spec.project, "region": spec.region, "kubernetes_version": cluster.kubernetes_version}
        if spec.network.creates_vpc:
            out |= {"vpc_cidr": spec.network.vpc_cidr, "az_count": spec.network.az_count, "nat": spec.network.nat}
        else:
            out |= {"existing_vpc_id": spec.network.existing_vpc_id, "existing_private_subnet_ids": spec.network.existing_private_subnet_ids}
        out |= {
            "endpoint_public_access": cluster.endpoint_public_access,
            "endpoint_private_access": cluster.endpoint_private_access,
            "public_access_cidrs": cluster.public_access_cidrs,
            "enabled_log_types": cluster.log_types,
            "node_groups": self._node_groups(spec),
            "namespace": spec.k8s_namespace,
            "api_names": [api.name for api in spec.apis],
            "enable_mountpoint_s3_csi_driver": any(api.model_access == "mount" for api in spec.apis),
            "tags": spec.tags,
        }
        from ..render import asyncapi

        return out | asyncapi.cluster_tfvars(spec)  # each async API's queue (modules/async-queue)

    def _node_groups(self, spec: Spec) -> dict[str, Any]:
        from ..render import nodepools

        if nodepools.enabled(spec):  # the pools are Karpenter NodePools; only the controller's nodes are a group
            return {nodepools.SYSTEM_GROUP: nodepools.system_node_group()}
        return {pool.name: self._node_group(pool) for pool in spec.cluster.node_pools}

    def _node_group(self, pool: NodePool) -> dict[str, Any]:
        from ..render import nodes

        accel = self.node_accelerator(pool)
        itype = pool.instance_type or ""
        ami = AMI.get(accel.kind) or ("AL2023_ARM_64_STANDARD" if GRAVITON.match(itype) else "AL2023_x86_64_STANDARD")
        taints = nodes.taints(pool)
        if accel.kind in TAINT:
            taints.insert(0, {"key": TAINT[accel.kind], "value": "true", "effect": "NO_SCHEDULE"})
        node_labels = nodes.node_labels(pool, accel)
        if accel.kind == "nvidia":
            node_labels = {GPU_LABEL: accel.device, **node_labels}
        return {
            "instance_types": [itype],
            "ami_type": ami,
            "spot": pool.spot,
            "min_size": pool.min_nodes,
            "max_size": pool.max_nodes,
            "disk_size": pool.disk_size_gb,
            "labels": node_labels,
            "taints": taints,
            "autoscaler_tags": node_template_tags(accel),
        }

    def addons_location(self, spec: Spec) -> dict[str, Any]:
        existing = spec.cluster.existing
        out: dict[str, Any] = {"project": spec.project, "region": spec.region}
        if existing is None or existing.name:
            # IRSA roles of add-ons trust the cluster's OIDC provider, found by the cluster's name.
            out["cluster_name"] = existing.name if existing and existing.name else spec.project
        return out

    def addons_features(self, spec: Spec) -> dict[str, Any]:
        from .. import placement
        from ..spec import rules

        existing = spec.cluster.existing
        kinds = {placement.pool_accelerator(pool, self.name).kind for pool in spec.cluster.node_pools}
        out: dict[str, Any] = {
            "enable_nvidia_device_plugin": "nvidia" in kinds,
            "enable_neuron_device_plugin": "neuron" in kinds,
            "enable_metrics_server": existing is None,  # a cluster someone runs has its own, or chose not to
            "tags": spec.tags,
        }
        if existing is None or existing.name:
            out["enable_load_balancer_controller"] = any(api.expose != "cluster" for api in spec.apis)
            # A cluster someone else runs has its own node autoscaling; mlkit's node groups need one,
            # Karpenter's NodePools need its controller instead.
            karpenter = existing is None and spec.cluster.node_provisioning == "karpenter"
            out["enable_cluster_autoscaler"] = existing is None and not karpenter
            if karpenter:
                out["enable_karpenter"] = True
            if existing is None:
                out["cluster_autoscaler_image_tag"] = rules.CLUSTER_AUTOSCALER[spec.cluster.kubernetes_version]
        return out

    def addons_templates(self, named: bool) -> dict[str, str]:
        # The IAM policies of the add-ons' IRSA roles; they need the cluster's OIDC provider, so its name.
        return {"policies.tf": "terraform/aws/addons/policies.tf.j2"} if named else {}

    def node_accelerator(self, pool: NodePool) -> Accelerator:
        from ..spec import accelerators as acc

        return acc.aws_instance(pool.instance_type or "") or acc.NONE

    def account(self, outputs: dict[str, Any]) -> str | None:
        if outputs.get("account_id"):
            return str(outputs["account_id"])
        from ..cluster.credentials import aws_call, require_boto3

        boto3 = require_boto3()
        with aws_call("STS GetCallerIdentity (to find the AWS account of the registry)"):
            return str(boto3.client("sts").get_caller_identity()["Account"])

    def registry_login(self, spec: Spec) -> tuple[str, str, str]:
        from ..deploy import images

        return images.ecr_login(spec.region)

    def has_image(self, spec: Spec, ref: str, api: str, tag: str) -> bool:
        from ..deploy import images

        return images.ecr_has(spec.region, spec.project, f"{api}-{tag}")


def node_template_tags(accel: Accelerator) -> dict[str, str]:
    """The node group tags that tell the cluster autoscaler what a node at zero offers beyond its instance table."""
    if accel.kind != "neuron":
        return {}
    return {
        f"{NODE_TEMPLATE_RESOURCE}aws.amazon.com/neuroncore": str(accel.neuron_cores),
        f"{NODE_TEMPLATE_RESOURCE}aws.amazon.com/neuron": str(accel.count),
        f"{NODE_TEMPLATE_RESOURCE}aws.amazon.com/neurondevice": str(accel.count),
    }


def role_name(spec: Spec, api: str) -> str:
    """The IRSA role of an API, made by the cluster stack's irsa-role module."""
    return f"{spec.project}-{api}"
