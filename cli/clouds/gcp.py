"""GCP: GKE, Artifact Registry, GCS, Workload Identity, GKE's own load balancers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import Cloud

if TYPE_CHECKING:
    import datetime

    from ..cluster.credentials import Endpoint
    from ..spec.accelerators import Accelerator
    from ..spec.schema import NodePool, Spec


class Gcp(Cloud):
    name = "gcp"
    bucket_scheme = "gs"
    cluster_modules = ("network", "gke", "node-pool", "artifact-registry", "model-bucket")
    identity_annotation = "iam.gke.io/gcp-service-account"

    def short_spot_notice(self, pool: NodePool | None) -> bool:
        # GKE gives spot VMs about 30 s from notice to power-off.
        return bool(pool and pool.spot)

    def registry(self, spec: Spec, account: str | None) -> str:
        return f"{spec.region}-docker.pkg.dev"

    def image_ref(self, spec: Spec, api: str, tag: str, account: str | None) -> str:
        return f"{self.registry(spec, account)}/{spec.gcp_project}/{spec.project}/{api}:{tag}"

    def identity(self, spec: Spec, api: str, account: str | None) -> str:
        # Every API's pods act as the one read-only serving account of the project.
        return serving_account(spec)

    def service_annotations(self, expose: str) -> dict[str, str]:
        return {"networking.gke.io/load-balancer-type": "Internal"} if expose == "internal" else {}

    def accelerator_selector(self, pool: NodePool, accel: Accelerator) -> dict[str, str]:
        # GKE labels GPU nodes with their accelerator and TPU nodes with the slice's accelerator and
        # topology; a pod that asks for the devices must select them.
        if accel.kind == "nvidia":
            return {"cloud.google.com/gke-accelerator": accel.device}
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


def serving_account(spec: Spec) -> str:
    """The read-only service account of the project's serving pods (Workload Identity)."""
    return f"{spec.project}-serving@{spec.gcp_project}.iam.gserviceaccount.com"
