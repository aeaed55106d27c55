"""The `mlkit.yaml` spec as pydantic models: every field, its default and what it means.

Field-level rules live here; rules that relate fields to each other live in `rules.py`, so that all
problems of a spec are reported at once, each at its own field path.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

DNS_LABEL = r"^[a-z]([a-z0-9-]*[a-z0-9])?$"
# Kubernetes resource quantities: 500m, 1, 1.5, 2Gi, 512Mi, 1e3 ...
QUANTITY = r"^([0-9]+(\.[0-9]+)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[0-9]+)?$"
PERCENT_OR_INT = r"^([0-9]+%?)$"
_QUANTITY_SUFFIX: dict[str, int | Fraction] = {
    "": 1, "m": Fraction(1, 1000), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


def quantity_value(text: str) -> Fraction | None:
    """A Kubernetes quantity that matched QUANTITY as an exact number; None when its exponent alone makes
    it absurd (`1e999999`), so that no caller computes 10**999999. Rule: every number parsed is
    range-checked before use; the callers compare this with their bounds."""
    match = re.fullmatch(r"([0-9.]+)(.*)", text)
    if match is None:
        return None
    number, suffix = match.groups()
    if suffix.startswith("e"):
        if len(suffix) > 3:  # e99 is already 10**99
            return None
        factor: int | Fraction = 10 ** int(suffix[1:])
    else:
        factor = _QUANTITY_SUFFIX[suffix]
    return Fraction(number) * factor


# What one replica may ask: Kubernetes takes any quantity, but no node has more than a few hundred
# CPUs or tens of TiB; a zero request would be no request at all.
CPU_RANGE = (Fraction(1, 1000), Fraction(1024))
MEMORY_RANGE = (Fraction(2**20), Fraction(64 * 2**40))


def _in_range(value: str, bounds: tuple[Fraction, Fraction], what: str, lowest: str, highest: str) -> str:
    parsed = quantity_value(value)
    if parsed is None or not bounds[0] <= parsed <= bounds[1]:
        raise PydanticCustomError("quantity_range", "{value} is out of range for {what} (valid: {lowest} to {highest})", {
            "value": repr(value), "what": what, "lowest": lowest, "highest": highest,
        })
    return value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


Name = Annotated[
    str,
    Field(pattern=DNS_LABEL, min_length=1, max_length=40),
]


def _reject_number(value: Any, example: str) -> Any:
    # YAML reads `1.30` as the float 1.3 and `1.0` as 1.0: the value is already wrong by the time we see it.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise PydanticCustomError(
            "yaml_number",
            "YAML read this as the number {number}; quote it as a string, e.g. \"{example}\"",
            {"number": value, "example": example},
        )
    return value


class StateSpec(Strict):
    """Where Terraform keeps the state of the stacks."""

    backend: Literal["local", "s3", "gcs"] = Field(
        "local",
        description="`local` keeps state in a file next to the stack (a first try, one person); "
                    "`s3` (AWS) or `gcs` (GCP) keeps it in a bucket with locking, for a team.",
    )
    bucket: str | None = Field(
        None,
        description="Existing bucket for remote state; required with `s3` and `gcs`. Checked against the "
                    "cloud's bucket naming rules (lowercase letters, digits, `.` and `-`; no IP form, no `..`).",
    )
    key_prefix: str = Field(
        "mlkit",
        description="Folder inside the bucket; each stack's state is `<key_prefix>/<stack>.tfstate`. Folders of letters, "
                    "digits, `_`, `.` and `-` separated by `/`.",
    )
    region: str | None = Field(None, description="Region of the state bucket (`s3` only), e.g. `us-east-1`; defaults to the spec's region.")


class NetworkSpec(Strict):
    """The network the cluster runs in: a new one (default) or an existing one."""

    vpc_cidr: str = Field("10.0.0.0/16", description="IPv4 CIDR block of a new VPC (AWS) or subnet (GCP).")
    nat: Literal["single", "per_az", "none"] = Field(
        "single",
        description="NAT for private nodes: `single` gateway (cheapest), one `per_az` (survives a zone outage) or `none` (no internet egress).",
    )
    az_count: int = Field(2, strict=True, ge=2, le=6, description="Availability zones to spread subnets and nodes over (AWS); at least 2.")
    existing_vpc_id: str | None = Field(
        None, pattern=r"^vpc-[0-9a-f]{1,17}$", description="AWS: run in this existing VPC instead of creating one; needs `existing_private_subnet_ids`."
    )
    existing_private_subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{1,17}$")]] | None = Field(
        None, max_length=16, description="AWS: private subnets of the existing VPC, in at least two availability zones."
    )
    existing_network: str | None = Field(None, description="GCP: name (not URL) of an existing VPC network to use instead of creating one.")
    existing_subnetwork: str | None = Field(None, description="GCP: name of a subnetwork of `existing_network`, with secondary ranges for pods and services.")

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        import ipaddress

        try:
            net = ipaddress.IPv4Network(value, strict=True)
        except ValueError as exc:
            raise PydanticCustomError("cidr", "not an IPv4 CIDR block ({error}); e.g. 10.0.0.0/16", {"error": str(exc)}) from None
        if not 16 <= net.prefixlen <= 20:
            raise PydanticCustomError("cidr", "prefix /{n} is out of range (valid: /16 to /20)", {"n": net.prefixlen})
        return value

    @property
    def creates_vpc(self) -> bool:
        return self.existing_vpc_id is None and self.existing_network is None


class Taint(Strict):
    """A Kubernetes taint on every node of a pool."""

    key: str = Field(
        description="Taint key, a Kubernetes qualified name, e.g. `dedicated` or `example.com/team`; `mlkit.dev/`, `kubernetes.io/`, "
                    "`k8s.io/` and cloud or vendor prefixes (`nvidia.com/`, `cloud.google.com/`, `eks.amazonaws.com/`, ...) are reserved."
    )
    value: str | None = Field(None, description="Taint value, a Kubernetes label value (at most 63 characters).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field("NoSchedule", description="What the taint does to pods that do not tolerate it.")


class GpuSpec(Strict):
    """GCP: GPUs attached to each VM of an N1 pool (A2, A3 and G2 machine types bring their own)."""

    type: str = Field(description="GPU type, e.g. `nvidia-tesla-t4`, `nvidia-l4`.")
    count: int = Field(1, strict=True, ge=1, le=16, description="GPUs per VM.")


class GpuSharing(Strict):
    """NVIDIA GPUs of a pool shared between replicas: each GPU is offered as `replicas_per_gpu` shares."""

    strategy: Literal["time-slicing", "mps"] = Field(
        description="`time-slicing`: replicas take turns on the whole GPU, with no memory limit between them (one replica can "
                    "run the others out of memory). `mps`: NVIDIA's Multi-Process Service runs the replicas' kernels at the same "
                    "time, each with an equal share of the GPU's memory and threads (EKS only: on GKE its pods would need "
                    "hostIPC). See docs/guides/gpu-sharing.md."
    )
    replicas_per_gpu: int = Field(
        strict=True, ge=2, le=48, description="Shares each GPU is split into, from 2 to 48 (GKE's and CUDA MPS's limit of "
                                              "clients per GPU). An API on this pool asks for one share with `compute.gpu: 1`."
    )


class TpuSpec(Strict):
    """GCP: a TPU slice; the machine type and node count follow from version and topology."""

    version: Literal["v4", "v5e", "v5p", "v6e"] = Field(description="TPU generation.")
    topology: str = Field(description="Chips in the slice as `AxB` (v5e, v6e) or `AxBxC` (v4, v5p), e.g. `2x4`.")


class NodePool(Strict):
    """A group of identical nodes: an EKS managed node group or a GKE node pool."""

    name: Name = Field(description="Pool name, a DNS label; nodes carry the label `mlkit.dev/pool=<name>`.")
    instance_type: str | None = Field(
        None,
        description="EC2 instance type (`m6i.large`, `g5.xlarge`, `inf2.xlarge`) or GCE machine type (`n2-standard-4`, "
                    "`g2-standard-8`). Accelerators are inferred from it. Optional for TPU pools.",
    )
    min_nodes: int = Field(0, strict=True, ge=0, le=1000, description="Fewest nodes; 0 lets an accelerator pool cost nothing while idle. "
                                                              "Node groups only: Karpenter and Auto Mode start nodes for pending pods and keep no idle floor.")
    max_nodes: int = Field(3, strict=True, ge=1, le=1000, description="Most nodes the autoscaler may run.")
    spot: bool = Field(False, description="Run on spot capacity: much cheaper, can be reclaimed at short notice.")
    disk_size_gb: int = Field(100, strict=True, ge=20, le=16384, description="Root disk per node in GiB; accelerator images are large.")
    ami: str | None = Field(
        None,
        description="AWS with `node_provisioning: karpenter` only: the EC2NodeClass's AMI alias. `al2023@latest` when left "
        "out; pin a release (`al2023@v20261201`, `bottlerocket@v1.50.0`) to roll node images only when you change it. "
        "`bottlerocket@...` runs Bottlerocket (Karpenter picks its NVIDIA variant on GPU instance types; not for Neuron pools).",
    )
    disk_type: Literal["pd-balanced", "pd-ssd", "pd-standard", "hyperdisk-balanced"] = Field(
        "pd-balanced", description="GCP only: boot disk type (AWS node groups use gp3)."
    )
    zones: list[str] = Field(
        default_factory=list, max_length=16, description="GCP only: zones for this pool's nodes; "
                                                         "a TPU pool in a regional cluster needs one zone that offers its TPU."
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        max_length=64,
        description="Extra Kubernetes labels on the nodes: keys are qualified names (`team`, `example.com/team`), values at most 63 characters; "
                    "reserved prefixes as for taint keys (mlkit's own `mlkit.dev/pool` and friends select the pool).",
    )
    taints: list[Taint] = Field(
        default_factory=list, max_length=32, description="Extra taints on the nodes; accelerator pools get their vendor's taint automatically."
    )
    gpu: GpuSpec | None = Field(None, description="GCP only: GPUs to attach to N1 machines.")
    image_streaming: bool = Field(
        False,
        description="GCP only: GKE image streaming on these nodes, so that containers start while their image is still being read "
        "from Artifact Registry (faster cold starts for large images). Needs the Container File System API "
        "(`containerfilesystem.googleapis.com`) enabled in the project.",
    )
    tpu: TpuSpec | None = Field(None, description="GCP only: make this a TPU slice pool.")
    gpu_sharing: GpuSharing | None = Field(
        None,
        description="NVIDIA pools only: share each GPU between replicas of APIs (GKE's GPU sharing on GCP, the NVIDIA device "
                    "plugin's sharing config on EKS), for models that cannot fill a GPU alone. `compute.gpu: 1` on this pool "
                    "then means one share; more than one share per replica is refused.",
    )

    @field_validator("ami")
    @classmethod
    def _ami_alias(cls, value: str | None) -> str | None:
        # Karpenter's alias forms for the two families mlkit renders: AL2023 releases are dated, Bottlerocket's semver.
        if value is not None and not re.fullmatch(r"al2023@(latest|v[0-9]{8})|bottlerocket@(latest|v[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})", value):
            raise PydanticCustomError(
                "ami_alias", "'{value}' is not an AMI alias: al2023@latest, al2023@vYYYYMMDD, bottlerocket@latest or bottlerocket@vX.Y.Z",
                {"value": value},
            )
        return value


class ExistingCluster(Strict):
    """A cluster someone else runs: mlkit installs add-ons and APIs only."""

    name: str | None = Field(
        None, max_length=100, description="Name of the existing EKS or GKE cluster (the cloud's naming rules apply); "
                                          "the add-ons stack looks it up by name (and, on EKS, trusts its OIDC provider for add-on roles)."
    )
    context: str | None = Field(
        None, min_length=1, max_length=253, description="kubeconfig context to use instead of looking the cluster up; free-form, without control characters."
    )


def _public_cidr(value: str) -> str:
    from .syntax import cidr

    if problem := cidr(value):
        raise PydanticCustomError("cidr", "{problem}", {"problem": problem})
    return value


class ClusterSpec(Strict):
    """The Kubernetes cluster and its node pools."""

    kubernetes_version: str = Field(
        "1.35", description='Kubernetes minor version, quoted: "1.35". '
                            "The default is in standard support on EKS and GKE as of 2026-11-29 (until 2027-03-27 and 2027-02-28)."
    )
    endpoint_public_access: bool = Field(True, description="Whether the Kubernetes API is reachable from the internet (limited by `public_access_cidrs`).")
    endpoint_private_access: bool = Field(True, description="Whether the Kubernetes API is reachable from inside the network.")
    public_access_cidrs: list[Annotated[str, AfterValidator(_public_cidr)]] = Field(
        ["0.0.0.0/0"], min_length=1, max_length=40, description="IPv4 CIDR blocks (network addresses, e.g. `203.0.113.0/24`) "
                                                                "allowed to reach the public API endpoint; at most 40."
    )
    zone: str | None = Field(None, description="GCP only: make the cluster zonal in this zone (cheaper, one-zone control plane); by default it is regional.")
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = Field("REGULAR", description="GCP only: GKE release channel that upgrades the cluster.")
    log_types: list[Literal["api", "audit", "authenticator", "controllerManager", "scheduler"]] = Field(
        ["api", "audit", "authenticator"], description="Control-plane logs to keep (EKS)."
    )
    node_pools: list[NodePool] = Field(default_factory=list, max_length=64, description="Node pools; at least one unless `existing` is set.")
    node_provisioning: Literal["node-groups", "karpenter", "auto-mode"] = Field(
        "node-groups",
        description="AWS only: how pools get nodes. `karpenter`: each pool is a Karpenter NodePool and EC2NodeClass (spot with "
        "on-demand fallback where the pool says spot, consolidation one node at a time), the controller on a small `system` node "
        "group; what `mlkit init` writes for a new project. `auto-mode`: EKS Auto Mode runs Karpenter, load balancing, block "
        "storage and the device plugins itself; each pool is an Auto Mode NodePool and NodeClass, with no node groups and no "
        "such add-ons (an extra per-instance fee; AWS picks the AMIs and the controller version). `node-groups`: one EKS managed "
        "node group per pool, scaled by the Cluster Autoscaler. Left out it is `node-groups`, so a project rendered before the "
        "field existed keeps its nodes on upgrade. Moving between modes: docs/guides/aws-node-provisioning.md.",
    )
    existing: ExistingCluster | None = Field(None, description="Use an existing cluster: no cluster stack is rendered.")

    @field_validator("kubernetes_version", mode="before")
    @classmethod
    def _version(cls, value: Any) -> Any:
        return _reject_number(value, "1.35")

    @field_validator("kubernetes_version")
    @classmethod
    def _version_format(cls, value: str) -> str:
        if not re.fullmatch(r"1\.[0-9]{2}", value):
            raise PydanticCustomError("k8s_version", "'{value}' is not a Kubernetes minor version such as \"1.35\"", {"value": value})
        return value



class Compute(Strict):
    """Resources each replica of an API asks for."""

    cpu: str = Field("1", pattern=QUANTITY, description="CPU request as a Kubernetes quantity: `500m`, `1`, `2` (from 1m to 1024).")
    memory: str = Field("2Gi", pattern=QUANTITY, description="Memory request and limit: `512Mi`, `2Gi` (from 1Mi to 64Ti).")
    gpu: int = Field(0, strict=True, ge=0, le=16, description="NVIDIA GPUs per replica; on a pool with `gpu_sharing`, shares of a GPU (then at most 1).")
    neuron_cores: int = Field(0, strict=True, ge=0, le=256, description="AWS Neuron cores per replica (Inferentia, Trainium).")
    tpu_chips: int = Field(0, strict=True, ge=0, le=8, description="TPU chips per replica; must equal the chips of one VM of its pool.")

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> Any:
        # `cpu: 1` is a fine quantity; YAML numbers become their Kubernetes spelling.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("cpu")
    @classmethod
    def _cpu_range(cls, value: str) -> str:
        return _in_range(value, CPU_RANGE, "a CPU request", "1m", "1024")

    @field_validator("memory")
    @classmethod
    def _memory_range(cls, value: str) -> str:
        return _in_range(value, MEMORY_RANGE, "a memory request", "1Mi", "64Ti")


class Autoscaling(Strict):
    """Request-based autoscaling: replicas follow requests in flight."""

    min_replicas: int = Field(1, strict=True, ge=0, le=1000, description="Fewest replicas; 0 scales to zero when idle.")
    max_replicas: int = Field(10, strict=True, ge=1, le=1000, description="Most replicas.")
    target_in_flight: int = Field(4, strict=True, ge=1, le=100000, description="Requests in flight per replica the autoscaler aims for.")
    scale_down_delay_s: int = Field(
        300,
        strict=True,
        ge=0,
        le=86400,
        description="Seconds of lower load before replicas are removed; with `min_replicas: 0`, also the seconds without traffic "
        "before the last replica goes.",
    )
    cold_start_timeout_s: int = Field(
        300,
        strict=True,
        ge=1,
        le=3600,
        description="With `min_replicas: 0`: longest a request is held while the first replica starts (node, image, model, "
        "warm-up); past it the request gets 503 with Retry-After from the project's cold-start fallback. Default 300; for an engine API, "
        "its startup budget (see serving.model_size_gb) plus 300 s for the node and image, at most 3600.",
    )
    target_queued: int | None = Field(
        None,
        strict=True,
        ge=1,
        le=100000,
        description="`kind: async` only: requests waiting in the queue per worker the autoscaler aims for (KEDA's queue scalers); default 5. "
        "With `min_replicas: 0` the workers scale to zero when the queue is empty.",
    )
    target_waiting: int | None = Field(
        None,
        strict=True,
        ge=1,
        le=100000,
        description=(
            "Engine APIs only: requests waiting in the engine's queue per replica (`vllm:num_requests_waiting`) the autoscaler aims for; default 4. "
            "For engine APIs `target_in_flight` is the engine's running requests per replica (`vllm:num_requests_running`), default 32 there."
        ),
    )


class Batching(Strict):
    """Server-side batching; active when the predictor defines `predict_batch`."""

    max_batch_size: int = Field(8, strict=True, ge=1, le=4096, description="Most requests in one batch.")
    max_wait_ms: float = Field(10, allow_inf_nan=False, ge=0, le=10000, description="Longest a request waits for its batch to fill.")


# Workload kinds of an API. Another kind is one more value here and its rules in rules.py.
ApiKind = Literal["realtime", "async", "batch", "task"]


class AsyncQueue(Strict):
    """`kind: async` only: how requests wait in the cloud's queue and how long their results are kept."""

    result_retention_days: int = Field(
        7, strict=True, ge=1, le=3650, description="Days a result (and a large payload) is kept in the bucket before a lifecycle rule deletes it."
    )
    visibility_timeout_s: int = Field(
        300,
        strict=True,
        ge=10,
        le=43200,
        description="Seconds one attempt holds a request before the queue hands it to another worker (SQS visibility timeout, Pub/Sub ack "
        "deadline: at most 600 on GCP). Workers extend it while a long prediction runs, so it bounds how soon a crashed worker's requests "
        "are retried, not how long a prediction may take.",
    )
    max_attempts: int = Field(
        5,
        strict=True,
        ge=1,
        le=100,
        description="Attempts before a request ends `failed` with the predictor's error and its message goes to the dead-letter queue "
        "(SQS maxReceiveCount; Pub/Sub max delivery attempts, 5 to 100).",
    )
    max_payload_bytes: int = Field(
        10 * 1024 * 1024,
        strict=True,
        ge=1024,
        le=512 * 1024 * 1024,
        description="Largest request body the front accepts; a larger one gets 413. Payloads too large for a queue message travel through the bucket.",
    )


class Concurrency(Strict):
    """Admission control in each replica."""

    max_in_flight: int = Field(32, strict=True, ge=1, le=100000, description="Requests executing at once; beyond this they queue.")
    max_queue: int = Field(64, strict=True, ge=0, le=1000000, description="Requests waiting; beyond this the replica answers 503 with Retry-After.")
    fronts: int | None = Field(
        None, strict=True, ge=1, le=64,
        description="HTTP front processes per replica, beside one model process that loads the model once and batches across them. "
                    "Unset: from `compute.cpu`: 1 up to 1 CPU, else one less than the whole CPUs, at least 2 (`cpu: 2` gives 2, `cpu: 4` gives 3). "
                    "Realtime predictor APIs only (docs/guides/processes.md).",
    )
    model_per_gpu: bool = Field(
        False, strict=True,
        description="One model process per GPU of the replica (`compute.gpu` above 1), each pinned to its GPU, with the fronts spreading "
                    "requests over them; false: one model process sees every GPU (a model sharded across them needs that). "
                    "Realtime predictor APIs only (docs/guides/processes.md).",
    )


class Rollout(Strict):
    """Rolling update of an API's replicas."""

    max_surge: str = Field("25%", pattern=PERCENT_OR_INT, max_length=5, description="Extra replicas during a rollout: a count or a percentage.")
    max_unavailable: str = Field("0", pattern=PERCENT_OR_INT, max_length=5, description="Replicas that may be down during a rollout; 0 keeps full capacity.")

    @field_validator("max_surge", "max_unavailable", mode="before")
    @classmethod
    def _int_ok(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


PREDICTOR = r"^[A-Za-z0-9_./-]+\.py:[A-Za-z_][A-Za-z0-9_]*$"
# A ConfigMap holds at most 1 MiB; the config travels as JSON with the rest of the API's settings.
CONFIG_MAX_BYTES = 512 * 1024


def _check_config(value: dict[str, Any]) -> dict[str, Any]:
    """Predictor settings become JSON in a ConfigMap: only JSON values, and small enough to fit."""
    import json
    import math

    def walk(item: Any, path: str) -> None:
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise PydanticCustomError("config_json", "key {key} at {path} is not a string; quote it", {"key": key, "path": path or "the top"})
                walk(child, f"{path}.{key}" if path else key)
        elif isinstance(item, list):
            for i, child in enumerate(item):
                walk(child, f"{path}[{i}]")
        elif isinstance(item, float) and not math.isfinite(item):
            raise PydanticCustomError("config_json", "{path} is {value}, which JSON cannot carry; use a number or a string", {"path": path, "value": item})
        elif not (item is None or isinstance(item, (str, int, float, bool))):
            raise PydanticCustomError(
                "config_json",
                "{path} is a YAML {kind}, which JSON cannot carry; quote it as a string",
                {"path": path, "kind": type(item).__name__},
            )

    walk(value, "")
    size = len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
    if size > CONFIG_MAX_BYTES:
        raise PydanticCustomError(
            "config_size",
            "is {size} bytes as JSON; at most {limit} (it travels in a ConfigMap, which holds 1 MiB): put large data in the model folder instead",
            {"size": size, "limit": CONFIG_MAX_BYTES},
        )
    return value



class Canary(Strict):
    """A second version of an API that takes a share of its traffic, through the project's Gateway (Gateway API HTTPRoute weights)."""

    weight: int = Field(strict=True, ge=1, le=99, description="Percent of the API's requests sent to the canary; the stable version gets the rest.")
    predictor: str | None = Field(
        None, pattern=PREDICTOR, max_length=255, description="The canary's predictor class as `file.py:ClassName`; defaults to the API's."
    )
    model: str | None = Field(None, max_length=1024, description="The canary's model location, as for the API's `model`; defaults to the API's.")
    config: dict[str, Any] | None = Field(None, description="The canary's predictor settings; default to the API's. At most 512 KiB as JSON.")

    @field_validator("config")
    @classmethod
    def _config(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else _check_config(value)


class Monitoring(Strict):
    """Prediction monitoring: the runtime exports a Prometheus metric from one key of each prediction."""

    key: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="Key of each prediction (a JSON object) to watch, e.g. `label` or `score`: letters, digits, `_`, `.`, `-`.",
    )
    type: Literal["classification", "regression"] = Field(
        description="`classification`: a count per predicted class, `mlkit_predicted_class_total{class}` (the first 100 classes; later ones count as `other`). "
        "`regression`: a histogram of the predicted values, `mlkit_predicted_value`."
    )
    buckets: list[float] | None = Field(
        None, min_length=1, max_length=40, description="Regression only: histogram bucket bounds, increasing; default a symmetric set from -1000 to 1000."
    )

    @model_validator(mode="after")
    def _buckets(self) -> Monitoring:
        if self.buckets is not None:
            if self.type != "regression":
                raise PydanticCustomError("monitoring_buckets", "buckets apply to `type: regression` only; remove them", {})
            if any(not math.isfinite(b) for b in self.buckets) or self.buckets != sorted(set(self.buckets)):
                raise PydanticCustomError("monitoring_buckets", "buckets must be finite numbers in increasing order, each once", {})
        return self

    def runtime_settings(self) -> dict[str, str]:
        """The runtime's monitor_* settings (runtime/settings.py) that carry this to the server."""
        out = {"monitor_key": self.key, "monitor_type": self.type}
        if self.buckets:
            out["monitor_buckets"] = ",".join(repr(b) for b in self.buckets)
        return out


# Hugging Face repository ids: `org/name`, letters, digits, `-`, `_` and `.` (huggingface_hub's rules), 96 each at most.
HF_REPO = r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?/[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$"
# An engine flag: `--name` or `--name=value`; a plain item is the value of the flag before it.
ENGINE_FLAG = re.compile(r"--[a-z0-9][a-z0-9-]*(=.*)?", re.DOTALL)


class SecretKeyRef(Strict):
    """A key of a Kubernetes Secret in the APIs' namespace, created by you (mlkit never reads it)."""

    name: str = Field(
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        max_length=253,
        description="Secret name, a DNS subdomain name, e.g. `hf-token`.",
    )
    key: str = Field("token", pattern=r"^[-._a-zA-Z0-9]+$", max_length=253, description="Key inside the Secret that holds the value.")


class Serving(Strict):
    """Engine APIs: how the engine serves the model. Each option becomes the engine's own flag."""

    max_model_len: int | None = Field(None, strict=True, ge=16, le=10_000_000, description=(
        "Longest context (prompt plus output tokens) per request, `--max-model-len`; default: the model's own."
    ))
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field("auto", description=(
        "Weight and activation type, `--dtype`; `auto` follows the model's config."
    ))
    quantization: str | None = Field(
        None, pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$", description=(
            "Quantization method, `--quantization`, e.g. `awq`, `gptq`, `fp8`; default: what the model's config says."
        )
    )
    tensor_parallel_size: int | None = Field(
        None,
        strict=True,
        ge=1,
        le=256,
        description=(
            "Accelerators one replica shards the model over, `--tensor-parallel-size`; default and only valid value: the accelerators of one replica "
            "(compute.gpu, compute.neuron_cores or compute.tpu_chips)."
        ),
    )
    model_size_gb: float = Field(
        16,
        allow_inf_nan=False,
        gt=0,
        le=10000,
        description=(
            "Size of the weights in GB: sizes the startup probe's budget (download, load and compile; see the docs' LLM engines guide). Default 16, an "
            "8B model in bfloat16."
        ),
    )
    shm_size: str = Field(
        "2Gi", pattern=QUANTITY, description=(
            "Size of `/dev/shm`, a memory-backed volume the engine's workers share tensors through; it counts against compute.memory, so it "
            "may not exceed it."
        )
    )
    extra_args: list[Annotated[str, Field(min_length=1, max_length=1024)]] = Field(
        default_factory=list,
        max_length=64,
        description=(
            "More engine flags, passed through as given, e.g. `[--max-num-seqs, \"128\", --enable-prefix-caching]`: each item a `--flag`, "
            "`--flag=value` or the value of the flag before it; no control characters. Flags mlkit sets from the spec (`--model`, `--port`, "
            "`--api-key`, ...) and any prefix of one (the engine's parser reads `--api-k` as `--api-key`) are refused, and so is `--config`, "
            "which reads flags from a file."
        ),
    )

    @field_validator("shm_size")
    @classmethod
    def _shm_range(cls, value: str) -> str:
        return _in_range(value, MEMORY_RANGE, "/dev/shm", "1Mi", "64Ti")

    @field_validator("extra_args")
    @classmethod
    def _flags(cls, value: list[str]) -> list[str]:
        from .engines import ENGINES

        for i, item in enumerate(value):
            if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in item):
                raise PydanticCustomError("engine_arg", "item {i} holds a control character (a newline, tab, ...); one flag or value per item", {"i": i})
            if item.startswith("-"):
                if not ENGINE_FLAG.fullmatch(item):
                    raise PydanticCustomError(
                        "engine_arg", (
                            "item {i} {item} is not a flag: write `--name` or `--name=value` (lowercase letters, digits and '-')"
                        ), {"i": i, "item": repr(item)}
                    )
                flag = item.split("=", 1)[0]
                for engine in ENGINES.values():
                    if claimed := engine.claims(flag):
                        owned, why = claimed
                        said = flag if flag == owned else f"{flag} (a prefix of {owned}, which {engine.name} reads it as)"
                        raise PydanticCustomError("engine_arg", "item {i}: {said} {why}", {"i": i, "said": said, "why": why})
            elif i == 0:
                raise PydanticCustomError("engine_arg", "item 0 {item} is a value without a flag before it; start with a `--flag`", {"item": repr(item)})
        return value


# A Python exception class as the predictor raises it: `ValueError`, or dotted, `mymodule.BadImage`.
EXCEPTION_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"


class BatchSpec(Strict):
    """`kind: batch`: how a job runs the predictor over a dataset's items, shard by shard."""

    batch_size: int = Field(
        32, strict=True, ge=1, le=4096, description="Items per `predict_batch` call (or per group of `predict` calls); `--batch-size` overrides it."
    )
    workers: int = Field(
        1, strict=True, ge=1, le=1000, description="Shards processed at once (pods of the job, processes of `mlkit job run`); `--workers` overrides it."
    )
    shard_size: int = Field(
        1000,
        strict=True,
        ge=1,
        le=10_000_000,
        description="Items per shard: the unit of retry and of output (one JSONL per shard); the input is split by it.",
    )
    on_error: Literal["fail", "skip"] = Field(
        "fail",
        description=(
            "An item the predictor raises on, or a malformed input line: `fail` fails its shard (retried up to `retries` times), `skip` writes "
            "it to the shard's errors file with the message and goes on."
        ),
    )
    retries: int = Field(2, strict=True, ge=0, le=100, description="Retries of a failed shard before the job counts it failed (`backoffLimitPerIndex`).")
    fatal_errors: list[Annotated[str, Field(pattern=EXCEPTION_NAME, max_length=200)]] = Field(
        default_factory=list,
        max_length=50,
        description=(
            "Exception class names (e.g. `MemoryError`, `mymodule.BadModel`) that fail a shard at once, without retries, whatever `on_error` "
            "says: an error that would happen again on every try."
        ),
    )
    queue: Name | None = Field(
        None,
        description="Kueue LocalQueue (in the APIs' namespace) the job waits in, for clusters that share accelerators through Kueue; left out, a plain Job.",
    )
    output: str | None = Field(
        None,
        max_length=1000,
        description=(
            "Bucket prefix (`s3://BUCKET/PREFIX/` or `gs://BUCKET/PREFIX/`) the job pods may read and write, and nothing else beside the "
            "models: the cluster stack grants it to this API's identity, and `mlkit job submit` writes each job under it (`--output` "
            "defaults to `<prefix><job id>/` and must lie under it). Left out: `jobs/<api>/` in the model bucket."
        ),
    )


class TaskSpec(Strict):
    """`kind: task`: a callable run to completion, once per `mlkit job submit` or on a schedule."""

    schedule: str | None = Field(
        None,
        max_length=200,
        description=(
            "A cron schedule that runs the task as a Kubernetes CronJob, which `mlkit apply` creates, updates, and deletes when the "
            "schedule or the API goes: five fields (minute hour day-of-month month day-of-week, e.g. `0 3 * * *`; names JAN-DEC and "
            "SUN-SAT, ranges, lists and `/` steps) or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`. In UTC unless "
            "`time_zone` says otherwise. Left out, the task runs only when `mlkit job submit` runs it."
        ),
    )
    time_zone: str | None = Field(
        None,
        max_length=64,
        description="IANA time zone the schedule is read in (e.g. `Europe/Berlin`; the CronJob's `timeZone`); left out, UTC.",
    )
    overlap: Literal["forbid", "replace", "allow"] = Field(
        "forbid",
        description=(
            "When a scheduled run is due while the last one still runs: `forbid` (default) skips the new run, `replace` stops the running "
            "one and starts the new, `allow` runs both (the CronJob's `concurrencyPolicy`)."
        ),
    )
    retries: int = Field(
        0,
        strict=True,
        ge=0,
        le=100,
        description="Runs again after a failed run (`backoffLimit`); 0 by default, as a task that half-ran may not be safe to run twice.",
    )


class Api(Strict):
    """A model API: one predictor, or one serving engine, behind one endpoint."""

    name: Name = Field(description="API name, a DNS label; names its Kubernetes objects and its route.")
    kind: ApiKind = Field(
        "realtime",
        description=(
            "`realtime` (default): each request is answered while the client waits. `async`: `POST /predict` answers 202 with an id once the request is "
            "queued, workers run the predictor from the queue (scaled on its depth, to zero), and `GET /predict/{id}` answers its status and "
            "result (see the docs' async APIs guide). `batch`: no service; `mlkit job submit` runs the predictor over a "
            "dataset's items as an Indexed Job, one index per shard (`batch:` settings). `task`: the class's `run()` run to completion as a "
            "Job, once per `mlkit job submit` or on `task.schedule` as a CronJob (Cortex's TaskAPI)."
        ),
    )
    queue: AsyncQueue | None = Field(None, description="`kind: async` only: queue and result settings; defaults apply when left out.")
    engine: Literal["vllm"] | None = Field(
        None,
        description=(
            "The server: left out, the mlkit predictor runtime runs `predictor`; `vllm` runs vLLM's own OpenAI-compatible server for the API's "
            "accelerator (NVIDIA GPUs, AWS Neuron, TPU), with no predictor."
        ),
    )
    predictor: str | None = Field(
        None,
        pattern=PREDICTOR,
        max_length=255,
        description=(
            "The predictor class as `file.py:ClassName`, relative to mlkit.yaml; `mlkit validate` checks that the file is inside the project and "
            "defines the class (without importing it). Required unless `engine` is set; not allowed with it."
        ),
    )
    model: str | None = Field(
        None,
        max_length=1024,
        description=(
            "Model location: `s3://bucket/prefix` (AWS), `gs://bucket/prefix` (GCP), or a folder inside the project, uploaded on apply. An engine API "
            "takes this or `hf_model`."
        ),
    )
    model_access: Literal["copy", "mount"] = Field(
        "copy",
        description=(
            "How replicas get the model from its bucket. `copy` (default): an init container downloads the whole prefix into the "
            "pod (in parallel, resuming after a restart) before the server starts, and the server reads local disk. `mount`: the "
            "cloud's CSI bucket driver mounts the prefix read-only at the model folder (Mountpoint for Amazon S3 on EKS, Cloud "
            "Storage FUSE on GKE; mlkit's cluster stack installs it), so the pod starts without a copy and reads stream from the "
            "bucket on first use: for very large models, many replicas starting at once, or scale to zero (see the docs' cold "
            "starts guide). Needs `model:` (a bucket prefix or a local folder, uploaded on apply), not `hf_model`."
        ),
    )
    hf_model: str | None = Field(
        None,
        pattern=HF_REPO,
        max_length=193,
        description="Engine APIs: a Hugging Face model id, `org/name`, that the engine downloads when it starts (instead of `model`).",
    )

    @field_validator("hf_model")
    @classmethod
    def _hf_repo(cls, value: str | None) -> str | None:
        # The Hub's own rules beyond the characters (huggingface_hub 2.4.0, utils/_validators.py validate_repo_id):
        # no "--" or ".." anywhere, and no ".git" ending; the engine's download would fail on such an id at start.
        if value is not None and ("--" in value or ".." in value or value.endswith(".git")):
            raise PydanticCustomError(
                "hf_repo", "{value} is not a Hugging Face model id: '--', '..' and a '.git' ending are not allowed", {"value": repr(value)}
            )
        return value

    hf_token_secret: SecretKeyRef | None = Field(
        None, description=(
            "Engine APIs with `hf_model`: the Secret that holds a Hugging Face token, for gated or private models; "
            "mounted as a file the engine reads (`HF_TOKEN_PATH`)."
        )
    )
    serving: Serving | None = Field(None, description="Engine APIs: serving options (context length, dtype, quantization, extra engine flags, model size).")
    config: dict[str, Any] = Field(
        default_factory=dict, description="Free-form settings handed to the predictor's constructor; JSON values, at most 512 KiB as JSON."
    )
    node_pool: Name | None = Field(None, description="Pin the API to this pool; by default mlkit picks a pool with the accelerator it asks for.")
    compute: Compute = Field(default_factory=Compute, description="Resources per replica.")
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Replica count limits and target.")
    batching: Batching = Field(default_factory=Batching, description="Server-side batching.")
    concurrency: Concurrency = Field(default_factory=Concurrency, description="Admission control per replica.")
    rollout: Rollout = Field(default_factory=Rollout, description="Rolling update settings.")
    expose: Literal["cluster", "internal", "public"] = Field(
        "cluster",
        description="Who can reach the API: `cluster` (a ClusterIP Service; `mlkit predict` goes through the Kubernetes API), "
                    "`internal` (a load balancer inside the network) or `public` (an internet-facing load balancer).",
    )
    api_keys: bool = Field(
        False, description=(
            "Require an API key (`Authorization: Bearer <key>` or `X-API-Key`); keys live in the Secret `<api>-api-keys`, key `keys`, one per line (an "
            "engine API takes the first line, through the engine's own key option)."
        )
    )
    canary: Canary | None = Field(None, description="An optional second version that takes `weight` percent of the requests.")
    monitoring: Monitoring | None = Field(None, description="Prediction monitoring: a metric from one key of each prediction, and a dashboard panel for it.")
    batch: BatchSpec | None = Field(None, description="`kind: batch` only: batch size, workers, shard size, error handling and queue of its jobs.")
    task: TaskSpec | None = Field(None, description="`kind: task` only: its retries, and a schedule to run it on.")

    @field_validator("config")
    @classmethod
    def _config(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_config(value)


class Spec(Strict):
    """An mlkit project: the cloud, the cluster and the model APIs."""

    project: str = Field(
        pattern=r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$",
        description="Prefix of every resource name: lowercase letters, digits and '-', 3 to 20 characters.",
    )
    cloud: Literal["aws", "gcp"] = Field(description="Cloud to provision on.")
    region: str = Field(max_length=50, description="Region, e.g. `us-west-2` (AWS) or `us-central1` (GCP).")
    gcp_project: str | None = Field(None, max_length=100, description="GCP project ID (6 to 30 lowercase letters, digits and '-'); required when `cloud: gcp`.")
    namespace: Name | None = Field(None, description="Kubernetes namespace of the APIs; defaults to the project name. `kube-*` and `default` are refused.")
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Tags (AWS) or labels (GCP) on every resource. AWS: keys of 1 to 128 letters, digits, spaces and `_ . : / = + - @`, not `aws:`. GCP: "
                    "label syntax, keys of 1 to 63 lowercase letters, digits, `_` and `-` starting with a letter, values of at most 63 of the same.",
    )
    state: StateSpec = Field(default_factory=StateSpec, description="Where Terraform keeps state.")
    network: NetworkSpec = Field(default_factory=NetworkSpec, description="The network: new (default) or existing.")
    cluster: ClusterSpec = Field(default_factory=ClusterSpec, description="The Kubernetes cluster and its node pools.")
    apis: list[Api] = Field(default_factory=list, max_length=100, description="Model APIs to serve.")

    @property
    def k8s_namespace(self) -> str:
        return self.namespace or self.project
