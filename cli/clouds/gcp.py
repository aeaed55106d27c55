"""GCP: GKE, Artifact Registry, GCS, Workload Identity, GKE's own load balancers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..spec import syntax
from ..spec.problem import Problem
from . import gcp_queues, gcp_rules, jobaccess
from .base import Cloud

if TYPE_CHECKING:
    import datetime
    from collections.abc import Iterator

    from ..cluster.credentials import Endpoint
    from ..spec.accelerators import Accelerator, Kind
    from ..spec.problem import Loc
    from ..spec.schema import AsyncQueue, NodePool, Spec
    from .queue_depth import QueueDepth

# GKE's GPU sharing (node_config.guest_accelerator.gpu_sharing_config): the API's strategy names, and the
# node label values GKE sets on shared nodes, which a pod must select (GKE's time-sharing and MPS guides).
# The spec refuses MPS on GKE for now (cli/clouds/gpu_sharing.py: its pods need hostIPC); both are mapped.
SHARING_STRATEGY = {"time-slicing": "TIME_SHARING", "mps": "MPS"}
SHARING_LABEL = {"time-slicing": "time-sharing", "mps": "mps"}
SHARING_STRATEGY_KEY = "cloud.google.com/gke-gpu-sharing-strategy"
SHARING_CLIENTS_KEY = "cloud.google.com/gke-max-shared-clients-per-gpu"
# API kinds whose pods act as a Google service account of their own rather than the shared serving one.
OWN_ACCOUNT_KINDS = ("batch", "async")
# Cloud Monitoring's Prometheus HTTP API, which KEDA's prometheus scaler queries with podIdentity gcp, and the
# Pub/Sub metric of a subscription's backlog (tests/render/data/keda/gcp-pubsub-2.20.json).
MONITORING_PROMQL = "https://monitoring.googleapis.com/v1/projects/{project}/location/global/prometheus"
PUBSUB_DEPTH_METRIC = "pubsub.googleapis.com/subscription/num_undelivered_messages"


class Gcp(Cloud):
    name = "gcp"
    bucket_scheme = "gs"
    state_backend = "gcs"
    tag_word = "labels"
    own_tags = ("mlkit-project", "managed-by")
    max_tags = 64 - len(own_tags)
    # async-queue is called with for_each over the async APIs: present in every stack, so a first async API adds no module folder.
    cluster_modules = ("network", "gke", "node-pool", "artifact-registry", "model-bucket", "async-queue")
    identity_annotation = "iam.gke.io/gcp-service-account"
    renders_async_queues = True
    keda_pod_identity = "gcp"  # the operator's own Google service account (podIdentity.gcp in the chart's values)
    worker_clients = {"batch": ("jobs", "google-cloud-storage"), "async": ("runtime-gcp", "")}

    mount_driver = "gcsfuse.csi.storage.gke.io"  # Cloud Storage FUSE, GKE's gcs_fuse_csi_driver_config add-on

    def queue_depth(self, spec: Spec, queue: str, dead_letter: str | None) -> QueueDepth:
        return gcp_queues.depth(queue, dead_letter)

    def mount_options(self, spec: Spec, prefix: str, uid: int) -> list[str]:
        # Cloud Storage FUSE flags: uploads hold no folder objects, so folders are implied from object
        # names (implicit-dirs); only-dir mounts the prefix as the volume's root.
        options = ["implicit-dirs"]
        if prefix.strip("/"):
            options.append(f"only-dir={prefix.strip('/')}")
        return options + [f"uid={uid}", f"gid={uid}"]

    def short_spot_notice(self, pool: NodePool | None) -> bool:
        # GKE gives spot VMs about 30 s from notice to power-off.
        return bool(pool and pool.spot)

    def registry(self, spec: Spec, account: str | None) -> str:
        return f"{spec.region}-docker.pkg.dev"

    def image_ref(self, spec: Spec, api: str, tag: str, account: str | None) -> str:
        return f"{self.registry(spec, account)}/{spec.gcp_project}/{spec.project}/{api}:{tag}"

    def identity(self, spec: Spec, api: str, account: str | None) -> str:
        # Every API's pods act as the one read-only serving account of the project, but a batch API's, which
        # write job results, and an async API's, which use a queue and write results: each has an account of
        # its own, granted its prefix (clouds/jobaccess.py) and its queue.
        if any(a.name == api and a.kind in OWN_ACCOUNT_KINDS for a in spec.apis):
            return jobaccess.gcp_identity(spec, api)
        return serving_account(spec)

    def service_annotations(self, expose: str) -> dict[str, str]:
        return {"networking.gke.io/load-balancer-type": "Internal"} if expose == "internal" else {}

    def accelerator_selector(self, pool: NodePool, accel: Accelerator) -> dict[str, str]:
        # GKE labels GPU nodes with their accelerator and TPU nodes with the slice's accelerator and
        # topology; a pod that asks for the devices must select them.
        if accel.kind == "nvidia":
            sharing = pool.gpu_sharing
            shared = {SHARING_STRATEGY_KEY: SHARING_LABEL[sharing.strategy], SHARING_CLIENTS_KEY: str(sharing.replicas_per_gpu)} if sharing else {}
            return {"cloud.google.com/gke-accelerator": accel.device, **shared}
        if accel.kind == "tpu" and pool.tpu is not None:
            from ..spec import accelerators as acc

            s = acc.tpu_slice(pool.tpu.version, pool.tpu.topology)
            return {"cloud.google.com/gke-tpu-accelerator": s.accelerator, "cloud.google.com/gke-tpu-topology": s.topology}
        return {}

    def cluster_location(self, spec: Spec) -> str:
        return spec.cluster.zone or spec.region

    def token_args(self, spec: Spec, cluster: str) -> list[str]:
        return ["--cloud", "gcp", "--cluster", cluster, "--location", self.cluster_location(spec), "--gcp-project", spec.gcp_project or ""]

    def endpoint(self, spec: Spec, cluster: str) -> Endpoint:
        from ..cluster import credentials

        return credentials.gke_endpoint(spec.gcp_project or "", self.cluster_location(spec), cluster)

    def token(self, cluster: str, region: str | None) -> tuple[str, datetime.datetime]:
        # A Google OAuth access token works for every GKE cluster the credentials may reach.
        from ..cluster import credentials

        return credentials.gke_token()


    def cluster_tfvars(self, spec: Spec) -> dict[str, Any]:
        cluster = spec.cluster
        out: dict[str, Any] = {
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
            "node_pools": {pool.name: self._node_pool(pool) for pool in cluster.node_pools},
            "namespace": spec.k8s_namespace,
            "api_names": [api.name for api in spec.apis],
            "enable_gcs_fuse_csi_driver": any(api.model_access == "mount" for api in spec.apis),
            # Only where the spec has batch APIs, so that other stacks render as before.
            **({"batch_apis": jobaccess.tfvars(spec)} if jobaccess.batch_apis(spec) else {}),
            "labels": spec.tags,
        }
        return out

    def async_api_tfvars(self, spec: Spec, api: str) -> dict[str, Any]:
        # The front acts as the API's own account, the workers as `<api>-worker`'s (no other API's: the rules
        # refuse an API of that name).
        return {"account_id": jobaccess.account_id(spec, api), "worker_account_id": jobaccess.account_id(spec, f"{api}-worker")}

    def async_worker_identity(self, spec: Spec, api: str, account: str | None) -> str:
        return jobaccess.gcp_identity(spec, f"{api}-worker")

    def async_locations(self, spec: Spec, queue: str, results: str, account: str) -> dict[str, str]:
        # modules/async-queue names the topic and its pull subscription alike, the dead-letter topic after them.
        topics = f"projects/{spec.gcp_project}/topics"
        bucket = jobaccess.model_bucket(spec, None)  # the results live in the model bucket, as job outputs do
        return {
            "MLKIT_QUEUE": f"pubsub:{topics}/{queue}/subscriptions/{queue}",
            "MLKIT_DEAD_LETTER": f"pubsub:{topics}/{queue}-dead-letter",
            "MLKIT_RESULTS": f"gs://{bucket}/{results}",
        }

    def async_client_env(self, spec: Spec) -> dict[str, str]:
        # The Cloud Storage client takes its project from here before asking the metadata server.
        return {"GOOGLE_CLOUD_PROJECT": spec.gcp_project or ""}

    def async_trigger(self, spec: Spec, where: dict[str, str], target: int) -> tuple[str, dict[str, str]]:
        # KEDA 2.20 deprecates its gcp-pubsub scaler (it queries Cloud Monitoring in MQL) and names the prometheus
        # scaler on Cloud Monitoring's PromQL endpoint as its replacement; the subscription's undelivered messages
        # count those waiting and those a worker holds unacked. No series (an idle subscription) reads as 0.
        subscription = where["MLKIT_QUEUE"].rsplit("/", 1)[1]
        query = (
            f'sum({{__name__="{PUBSUB_DEPTH_METRIC}",monitored_resource="pubsub_subscription",'
            f'project_id="{spec.gcp_project}",subscription_id="{subscription}"}})'
        )
        return "prometheus", {"serverAddress": MONITORING_PROMQL.format(project=spec.gcp_project), "query": query, "threshold": str(target)}

    def _node_pool(self, pool: NodePool) -> dict[str, Any]:
        from ..render import nodes
        from ..spec import accelerators as acc

        accel = self.pool_accelerator(pool)
        machine_type = pool.instance_type
        tpu_topology = None
        slice_nodes = 1
        if pool.tpu is not None:
            s = acc.tpu_slice(pool.tpu.version, pool.tpu.topology)
            machine_type = s.machine_type
            if s.multi_host:
                tpu_topology, slice_nodes = s.topology, s.nodes
        # GKE wants A2, A3 and G2 GPUs declared too, so that it installs the driver.
        gpu: dict[str, Any] | None = {"type": accel.device, "count": accel.count} if accel.kind == "nvidia" else None
        if gpu is not None and pool.gpu_sharing is not None:
            gpu["sharing"] = {
                "strategy": SHARING_STRATEGY[pool.gpu_sharing.strategy],
                "max_shared_clients_per_gpu": pool.gpu_sharing.replicas_per_gpu,
            }
        return {
            "machine_type": machine_type,
            "min_nodes": pool.min_nodes,
            "max_nodes": pool.max_nodes,
            "spot": pool.spot,
            "disk_size_gb": pool.disk_size_gb,
            "disk_type": gcp_rules.gcp_boot_disk(pool),
            "zones": pool.zones,
            "labels": nodes.node_labels(pool, accel),
            "taints": nodes.taints(pool),
            "gpu": gpu,
            "tpu_topology": tpu_topology,
            "slice_nodes": slice_nodes,
            "image_streaming": pool.image_streaming,
        }

    def addons_location(self, spec: Spec) -> dict[str, Any]:
        existing = spec.cluster.existing
        out: dict[str, Any] = {"project_id": spec.gcp_project, "region": spec.region}
        if existing is None or (existing.name and not existing.context):
            # Looked up by name unless a kubeconfig context reaches it.
            out["cluster_name"] = existing.name if existing and existing.name else spec.project
            out["cluster_location"] = self.cluster_location(spec)
        return out

    def node_accelerator(self, pool: NodePool) -> Accelerator:
        from ..spec import accelerators as acc

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

    def registry_login(self, spec: Spec) -> tuple[str, str, str]:
        user, password = gar_login()
        return user, password, self.registry(spec, None)

    def has_image(self, spec: Spec, ref: str, api: str, tag: str) -> bool:
        from .registry import registry_has

        return registry_has(ref, *gar_login())

    # The spec's names and rules of this cloud (the rules in gcp_rules.py).

    def bucket_problem(self, bucket: str) -> str | None:
        return syntax.gcs_bucket(bucket)

    def tag_problems(self, key: str, value: str) -> tuple[str | None, str | None]:
        return syntax.gcp_label(key, value)

    def project_problems(self, spec: Spec) -> Iterator[Problem]:
        if spec.gcp_project is not None and not syntax.GCP_PROJECT.fullmatch(spec.gcp_project):
            yield Problem(
                ("gcp_project",),
                f"{spec.gcp_project!r} is not a GCP project ID: 6 to 30 lowercase letters, "
                "digits and '-', starting with a letter, not ending with '-' (e.g. acme-ml-prod)",
            )

    def cluster_name_problem(self, name: str) -> str | None:
        if syntax.GKE_CLUSTER.fullmatch(name):
            return None
        return f"{name!r} is not a GKE cluster name: 1 to 40 lowercase letters, digits and '-', starting with a letter"

    def spec_problems(self, spec: Spec) -> Iterator[Problem]:
        return gcp_rules.spec_problems(spec)

    def network_problems(self, spec: Spec) -> Iterator[Problem]:
        return gcp_rules.network_problems(spec)

    def pool_problems(self, spec: Spec, pool: NodePool, loc: Loc) -> Iterator[Problem]:
        return gcp_rules.pool_problems(spec, pool, loc)

    def demand_problem(self, kind: Kind) -> str | None:
        return gcp_rules.demand_problem(kind)

    def cluster_problems(self, spec: Spec) -> Iterator[Problem]:
        return gcp_rules.cluster_problems(spec)

    def queue_problems(self, queue: AsyncQueue, loc: Loc) -> Iterator[Problem]:
        return gcp_rules.queue_problems(queue, loc)



def serving_account(spec: Spec) -> str:
    """The read-only service account of the project's serving pods (Workload Identity)."""
    return f"{spec.project}-serving@{spec.gcp_project}.iam.gserviceaccount.com"


def gar_login() -> tuple[str, str]:
    from ..cluster.credentials import gke_token

    token, _ = gke_token()
    return "oauth2accesstoken", token
