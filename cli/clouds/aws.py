"""AWS: EKS, ECR, S3, IRSA, the AWS Load Balancer Controller's NLBs."""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

from .. import labels
from ..spec import syntax
from . import aws_queues, aws_rules, jobaccess
from .base import Cloud

if TYPE_CHECKING:
    import datetime
    from collections.abc import Iterator

    from ..cluster.credentials import Endpoint
    from ..spec.accelerators import Accelerator, Kind
    from ..spec.problem import Loc, Problem
    from ..spec.schema import NodePool, Spec
    from .queue_depth import QueueDepth

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
    state_backend = "s3"
    tag_word = "tags"
    own_tags = ("mlkit.dev/project", "managed-by")
    max_tags = 50 - len(own_tags)
    # async-queue is called with for_each over the async APIs: present in every stack, so a first async API adds no module folder.
    cluster_modules = ("vpc", "eks", "node-group", "ecr", "model-bucket", "irsa-role", "async-queue")
    addons_modules = ("irsa-role",)
    load_balancer_class = "service.k8s.aws/nlb"
    identity_annotation = "eks.amazonaws.com/role-arn"
    renders_async_queues = True
    worker_clients = {"batch": ("jobs", "boto3"), "async": ("runtime-aws", "")}

    mount_driver = "s3.csi.aws.com"  # Mountpoint for Amazon S3, the EKS add-on aws-mountpoint-s3-csi-driver
    mount_needs_volume = True  # Mountpoint supports static provisioning only

    def queue_depth(self, spec: Spec, queue: str, dead_letter: str | None) -> QueueDepth:
        return aws_queues.depth(spec.region, queue, dead_letter)

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

    def async_worker_identity(self, spec: Spec, api: str, account: str | None) -> str:
        return f"arn:aws:iam::{account or 'ACCOUNT-ID'}:role/{worker_role_name(spec, api)}"

    def async_api_tfvars(self, spec: Spec, api: str) -> dict[str, Any]:
        return {"worker_role": worker_role_name(spec, api)}

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
            # Only where the spec has batch APIs, so that other stacks render as before.
            **({"batch_apis": jobaccess.tfvars(spec)} if jobaccess.batch_apis(spec) else {}),
            "tags": spec.tags,
        }
        return out

    def async_locations(self, spec: Spec, queue: str, results: str, account: str) -> dict[str, str]:
        base = f"https://sqs.{spec.region}.amazonaws.com/{account}/{queue}"
        bucket = jobaccess.model_bucket(spec, account)  # the results live in the model bucket, as job outputs do
        return {"MLKIT_QUEUE": f"sqs:{base}", "MLKIT_DEAD_LETTER": f"sqs:{base}-dead-letter", "MLKIT_RESULTS": f"s3://{bucket}/{results}"}

    keda_pod_identity = "aws"  # the operator's IRSA role (podIdentity.aws.irsa in the chart's values)

    def async_addons_tfvars(self, queues: list[str]) -> dict[str, Any]:
        # The operator's IRSA role may read these queues' attributes and nothing else (addons/main.tf).
        return {"async_queue_names": queues}

    def async_client_env(self, spec: Spec) -> dict[str, str]:
        # boto3 needs a region; the IRSA webhook may not set one, and the queue's is the spec's.
        return {"AWS_REGION": spec.region}

    def async_trigger(self, spec: Spec, where: dict[str, str], target: int) -> tuple[str, dict[str, str]]:
        # KEDA 2.20's aws-sqs-queue scaler; queueLength counts waiting and in-flight messages (scaleOnInFlight).
        return "aws-sqs-queue", {"queueURL": where["MLKIT_QUEUE"][len("sqs:"):], "queueLength": str(target), "awsRegion": spec.region}

    def _node_groups(self, spec: Spec) -> dict[str, Any]:
        if auto_mode(spec):  # EKS Auto Mode launches every node, its own controllers' included
            return {}
        if enabled(spec):  # the pools are Karpenter NodePools (render/nodepools.py); only the controller's nodes are a group
            return {SYSTEM_GROUP: system_node_group()}
        return {pool.name: self._node_group(pool) for pool in spec.cluster.node_pools}

    def _node_group(self, pool: NodePool) -> dict[str, Any]:
        from ..render import gpu_sharing, nodes

        accel = self.node_accelerator(pool)
        itype = pool.instance_type or ""
        ami = AMI.get(accel.kind) or ("AL2023_ARM_64_STANDARD" if GRAVITON.match(itype) else "AL2023_x86_64_STANDARD")
        taints = nodes.taints(pool)
        if accel.kind in TAINT:
            taints.insert(0, {"key": TAINT[accel.kind], "value": "true", "effect": "NO_SCHEDULE"})
        node_labels = nodes.node_labels(pool, accel)
        if accel.kind == "nvidia":
            node_labels = {GPU_LABEL: accel.device, **node_labels, **gpu_sharing.node_labels(pool)}
        return {
            "instance_types": [itype],
            "ami_type": ami,
            "spot": pool.spot,
            "min_size": pool.min_nodes,
            "max_size": pool.max_nodes,
            "disk_size": pool.disk_size_gb,
            "labels": node_labels,
            "taints": taints,
            "autoscaler_tags": node_template_tags(accel, pool),
        }

    def addons_location(self, spec: Spec) -> dict[str, Any]:
        existing = spec.cluster.existing
        out: dict[str, Any] = {"project": spec.project, "region": spec.region}
        if existing is None or existing.name:
            # IRSA roles of add-ons trust the cluster's OIDC provider, found by the cluster's name.
            out["cluster_name"] = existing.name if existing and existing.name else spec.project
        return out

    def addons_features(self, spec: Spec) -> dict[str, Any]:
        from ..render import gpu_sharing

        existing = spec.cluster.existing
        kinds = {self.pool_accelerator(pool).kind for pool in spec.cluster.node_pools}
        # EKS Auto Mode's nodes come with the device plugins (and the load balancer controller, block storage
        # and node autoscaling are part of the cluster), so the add-ons stack installs none of them.
        auto = auto_mode(spec)
        out: dict[str, Any] = {
            "enable_nvidia_device_plugin": "nvidia" in kinds and not auto,
            "enable_dcgm_exporter": "nvidia" in kinds,
            "enable_neuron_device_plugin": "neuron" in kinds and not auto,
            **({"nvidia_device_plugin_configs": configs} if (configs := gpu_sharing.device_plugin_configs(spec)) else {}),
            "enable_metrics_server": existing is None,  # a cluster someone runs has its own, or chose not to
            "tags": spec.tags,
        }
        if existing is None or existing.name:
            out["enable_load_balancer_controller"] = any(api.expose != "cluster" for api in spec.apis) and not auto
            # A cluster someone else runs has its own node autoscaling; mlkit's node groups need one,
            # Karpenter's NodePools need its controller instead.
            karpenter = existing is None and spec.cluster.node_provisioning == "karpenter"
            out["enable_cluster_autoscaler"] = existing is None and not karpenter and not auto
            if karpenter:
                out["enable_karpenter"] = True
            if existing is None:
                out["cluster_autoscaler_image_tag"] = aws_rules.CLUSTER_AUTOSCALER[spec.cluster.kubernetes_version]
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
        return ecr_login(spec.region)

    def has_image(self, spec: Spec, ref: str, api: str, tag: str) -> bool:
        return ecr_has(spec.region, spec.project, f"{api}-{tag}")

    # The spec's names and rules of this cloud (the rules in aws_rules.py).

    def bucket_problem(self, bucket: str) -> str | None:
        return syntax.s3_bucket(bucket)

    def tag_problems(self, key: str, value: str) -> tuple[str | None, str | None]:
        return syntax.aws_tag(key, value)

    def cluster_name_problem(self, name: str) -> str | None:
        if syntax.EKS_CLUSTER.fullmatch(name):
            return None
        return f"{name!r} is not an EKS cluster name: 1 to 100 letters, digits, '-' and '_', starting with a letter or digit"

    def spec_problems(self, spec: Spec) -> Iterator[Problem]:
        return aws_rules.spec_problems(spec)

    def network_problems(self, spec: Spec) -> Iterator[Problem]:
        return aws_rules.network_problems(spec)

    def existing_cluster_problems(self, spec: Spec) -> Iterator[Problem]:
        return aws_rules.existing_cluster_problems(spec)

    def pool_problems(self, spec: Spec, pool: NodePool, loc: Loc) -> Iterator[Problem]:
        return aws_rules.pool_problems(spec, pool, loc)

    def demand_problem(self, kind: Kind) -> str | None:
        return aws_rules.demand_problem(kind)

    def cluster_problems(self, spec: Spec) -> Iterator[Problem]:
        return aws_rules.cluster_problems(spec)



def node_template_tags(accel: Accelerator, pool: NodePool) -> dict[str, str]:
    """The node group tags that tell the cluster autoscaler what a node at zero offers beyond its instance table."""
    if accel.kind == "nvidia" and pool.gpu_sharing is not None:
        # A shared GPU is `replicas_per_gpu` devices to the scheduler; the instance table counts the
        # physical ones, so without the tag the autoscaler would add a node per replica.
        return {f"{NODE_TEMPLATE_RESOURCE}nvidia.com/gpu": str(accel.count * pool.gpu_sharing.replicas_per_gpu)}
    if accel.kind != "neuron":
        return {}
    return {
        f"{NODE_TEMPLATE_RESOURCE}aws.amazon.com/neuroncore": str(accel.neuron_cores),
        f"{NODE_TEMPLATE_RESOURCE}aws.amazon.com/neuron": str(accel.count),
        f"{NODE_TEMPLATE_RESOURCE}aws.amazon.com/neurondevice": str(accel.count),
    }


def role_name(spec: Spec, api: str) -> str:
    """The IRSA role of an API (an async API's front), made by the cluster stack's irsa-role module."""
    return f"{spec.project}-{api}"


# IAM role names: at most 64 characters.
_ROLE_MAX = 64


def worker_role_name(spec: Spec, api: str) -> str:
    """The IRSA role of an async API's workers: `<project>-<api>-worker`, no other API's (the rules refuse an
    API named `<async api>-worker`), shortened with a hash of the API's name where it would pass 64 characters."""
    plain = f"{spec.project}-{api}-worker"
    if len(plain) <= _ROLE_MAX:
        return plain
    digest = hashlib.sha256(api.encode()).hexdigest()[:6]
    return f"{plain[: _ROLE_MAX - len('-worker') - len(digest) - 1]}-{digest}-worker"


def ecr_login(region: str) -> tuple[str, str, str]:
    """User, password and registry URL for ECR, from boto3 (what `aws ecr get-login-password` does)."""
    import base64

    from ..cluster.credentials import aws_call, require_boto3

    boto3 = require_boto3()
    with aws_call(f"ECR GetAuthorizationToken in {region}"):
        data = boto3.client("ecr", region_name=region).get_authorization_token()["authorizationData"][0]
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return user, password, data["proxyEndpoint"]


def ecr_has(region: str, repository: str, tag: str) -> bool:
    from ..cluster.credentials import aws_call, require_boto3

    boto3 = require_boto3()
    from botocore.exceptions import ClientError

    with aws_call(f"ECR DescribeImages {repository}:{tag}"):
        try:
            boto3.client("ecr", region_name=region).describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("ImageNotFoundException", "RepositoryNotFoundException"):
                return False
            raise


# Karpenter (`cluster.node_provisioning: karpenter`, render/nodepools.py). The controller's own nodes:
# two for the chart's two replicas (spread over zones), one more for a node replacement. On-demand,
# because the controller that replaces interrupted nodes must not be interrupted.
SYSTEM_GROUP = "system"
SYSTEM_INSTANCE_TYPE = "m6i.large"


def enabled(spec: Spec) -> bool:
    return spec.cluster.existing is None and spec.cluster.node_provisioning == "karpenter"


def auto_mode(spec: Spec) -> bool:
    """Whether EKS Auto Mode launches the nodes (render/automode.py asks here too)."""
    return spec.cluster.existing is None and spec.cluster.node_provisioning == "auto-mode"


def system_node_group() -> dict[str, Any]:
    """The `system` managed node group of a Karpenter cluster, in the cluster stack's node_groups shape."""
    return {
        "instance_types": [SYSTEM_INSTANCE_TYPE],
        "ami_type": "AL2023_x86_64_STANDARD",
        "spot": False,
        "min_size": 2,
        "max_size": 3,
        "disk_size": 50,
        "labels": {labels.SYSTEM: "true"},
        "taints": [],
    }
