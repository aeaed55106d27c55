"""`Cloud`: the facts and calls every cloud module implements (aws.py, gcp.py). Its own module so that
the cloud modules subclass it without importing the package's __init__, which imports them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import datetime
    from collections.abc import Iterator

    from ..cluster.credentials import Endpoint
    from ..spec.accelerators import Accelerator, Kind
    from ..spec.problem import Loc, Problem
    from ..spec.schema import AsyncQueue, NodePool, Spec
    from .queue_depth import QueueDepth


class Cloud:
    """The facts and calls of one cloud. Class attributes are facts; methods take the spec."""

    name: ClassVar[str]
    # URI scheme of the cloud's object store (model locations, state buckets).
    bucket_scheme: ClassVar[str]
    # The Terraform state backend that keeps state in that store (`state.backend`).
    state_backend: ClassVar[str]
    # What the cloud calls the key-value pairs on its resources (`tags:`), the keys mlkit merges over the
    # spec's own (templates/terraform/*/cluster/main.tf.j2: a user tag with such a key is silently
    # replaced), and how many a resource may carry besides them.
    tag_word: ClassVar[str]
    own_tags: ClassVar[tuple[str, ...]]
    max_tags: ClassVar[int]
    # The kit's Terraform modules of the cluster stack, network first (left out for an existing network).
    cluster_modules: ClassVar[tuple[str, ...]]
    # Modules the add-ons stack calls (IAM roles for add-ons on AWS).
    addons_modules: ClassVar[tuple[str, ...]] = ()
    # The Service's loadBalancerClass for `expose: internal|public`, where a controller needs one.
    load_balancer_class: ClassVar[str | None] = None
    # The annotation that binds a Kubernetes ServiceAccount to a cloud identity.
    identity_annotation: ClassVar[str]
    # The client a worker kind's image needs beyond the runtime wheel (a batch job's bucket, an async API's queue
    # and results: runtime/jobs/storage.py, runtime/asyncq), by kind: pyproject's extra for it, and the one
    # package of that extra to take ("": all of it).
    worker_clients: ClassVar[dict[str, tuple[str, str]]] = {}
    # Whether the cluster stack makes async APIs' queues (async_locations); where not yet, render refuses them.
    renders_async_queues: ClassVar[bool] = False

    # The CSI driver that mounts a bucket prefix as a read-only volume (`model_access: mount`), and
    # whether it takes only static PersistentVolumes (a PV and a PVC per mount) rather than an inline volume.
    mount_driver: ClassVar[str]
    mount_needs_volume: ClassVar[bool] = False

    def async_locations(self, spec: Spec, queue: str, results: str, account: str) -> dict[str, str]:
        """The runtime's settings (MLKIT_QUEUE, MLKIT_DEAD_LETTER, MLKIT_RESULTS) for an async API's queue `queue`
        and its results prefix `results`, as this cloud's cluster stack makes them (where `renders_async_queues`)."""
        raise NotImplementedError

    def queue_depth(self, spec: Spec, queue: str, dead_letter: str | None) -> QueueDepth:
        """How full an async API's queue is (`mlkit status`), from the queue the workers were deployed with: the
        runtime's MLKIT_QUEUE and MLKIT_DEAD_LETTER values. What cannot be read is the answer's `problem`."""
        raise NotImplementedError

    def async_api_tfvars(self, spec: Spec, api: str) -> dict[str, Any]:
        """What the cluster stack needs of one async API beyond its queue settings (render/asyncapi.cluster_tfvars)."""
        return {}

    def async_trigger(self, spec: Spec, where: dict[str, str], target: int) -> tuple[str, dict[str, str]]:
        """KEDA's trigger type and metadata that scale an async API's workers to about `target` queued requests each,
        for the queue `where` names (async_locations), and the pod identity provider its TriggerAuthentication names."""
        raise NotImplementedError

    def async_client_env(self, spec: Spec) -> dict[str, str]:
        """Environment the cloud's SDK needs in an async API's pods beside the runtime's own settings."""
        return {}

    def async_addons_tfvars(self, queues: list[str]) -> dict[str, Any]:
        """The add-ons stack's values for KEDA's operator to read the depth of these async queues."""
        return {}

    # KEDA's podIdentity provider with which the operator reads queue depth (its own cloud identity).
    keda_pod_identity: ClassVar[str] = "none"

    def mount_options(self, spec: Spec, prefix: str, uid: int) -> list[str]:
        """The driver's mount options for a prefix (`a/b/`, or `` for the whole bucket), files owned by `uid`."""
        raise NotImplementedError

    def short_spot_notice(self, pool: NodePool | None) -> bool:
        """Whether pods on this pool get less notice before a spot VM goes than a normal drain needs."""
        return False

    def registry(self, spec: Spec, account: str | None) -> str:
        """The registry host of the project's images."""
        raise NotImplementedError

    def image_ref(self, spec: Spec, api: str, tag: str, account: str | None) -> str:
        raise NotImplementedError

    def identity(self, spec: Spec, api: str, account: str | None) -> str:
        """The value of `identity_annotation` on the ServiceAccount of an API (an async API's: its front's)."""
        raise NotImplementedError

    def async_worker_identity(self, spec: Spec, api: str, account: str | None) -> str:
        """The value of `identity_annotation` on the ServiceAccount of an async API's workers (`<api>-worker`),
        an identity of its own, apart from the front's (see async_api_tfvars)."""
        raise NotImplementedError

    def service_annotations(self, expose: str) -> dict[str, str]:
        """Annotations of an API's Service behind `expose: internal|public`."""
        raise NotImplementedError

    def accelerator_selector(self, pool: NodePool, accel: Accelerator) -> dict[str, str]:
        """Node labels the cloud sets itself that a pod on this pool's accelerator must select."""
        return {}

    def cluster_location(self, spec: Spec) -> str:
        """Where the cluster lives, as the cloud's cluster APIs want it."""
        return spec.region

    def token_args(self, spec: Spec, cluster: str) -> list[str]:
        """The `mlkit token` arguments that mint a token for the cluster (written into the kubeconfig)."""
        raise NotImplementedError

    def endpoint(self, spec: Spec, cluster: str) -> Endpoint:
        """The cluster's API server address and CA, from the cloud's cluster API."""
        raise NotImplementedError

    def token(self, cluster: str, region: str | None) -> tuple[str, datetime.datetime]:
        """A bearer token for the cluster's API server and when it expires (`mlkit token`)."""
        raise NotImplementedError

    # Terraform: the values of the stacks (mlkit.auto.tfvars.json), and templates only one cloud has.

    def cluster_tfvars(self, spec: Spec) -> dict[str, Any]:
        raise NotImplementedError

    def addons_location(self, spec: Spec) -> dict[str, Any]:
        """How the add-ons stack finds the cluster (its project, region, name)."""
        raise NotImplementedError

    def addons_features(self, spec: Spec) -> dict[str, Any]:
        """The cloud's own add-ons the spec turns on (device plugins, load balancer controller, ...)."""
        return {}

    def addons_templates(self, named: bool) -> dict[str, str]:
        """Extra files of the add-ons stack: file name -> template."""
        return {}

    def node_accelerator(self, pool: NodePool) -> Accelerator:
        """What each node of a pool carries, from its instance or machine type (TPU blocks aside)."""
        raise NotImplementedError

    def pool_accelerator(self, pool: NodePool) -> Accelerator:
        """What each node of a valid pool carries, a `tpu:` block included."""
        from ..spec import accelerators as acc

        if pool.tpu is not None:
            s = acc.tpu_slice(pool.tpu.version, pool.tpu.topology)
            return acc.Accelerator("tpu", s.accelerator, s.chips_per_vm)
        return self.node_accelerator(pool)

    # Deploying: the account images and roles live in, the registry, model uploads.

    def account(self, outputs: dict[str, Any]) -> str | None:
        """The account id that registry and role names need, where the cloud has one (AWS)."""
        return None

    def registry_login(self, spec: Spec) -> tuple[str, str, str]:
        """User, password and registry host for `docker login`."""
        raise NotImplementedError

    def has_image(self, spec: Spec, ref: str, api: str, tag: str) -> bool:
        raise NotImplementedError


    # The spec's names (cli/spec/naming.py) and rules (cli/spec/rules.py) of this cloud: each is called
    # where its problems belong in the report.

    def bucket_problem(self, bucket: str) -> str | None:
        """What is wrong with a bucket name of the cloud's object store, or None."""
        raise NotImplementedError

    def tag_problems(self, key: str, value: str) -> tuple[str | None, str | None]:
        """What is wrong with a tag's key and with its value."""
        raise NotImplementedError

    def project_problems(self, spec: Spec) -> Iterator[Problem]:
        """The names that place the project in the cloud's account structure (a GCP project)."""
        return iter(())

    def cluster_name_problem(self, name: str) -> str | None:
        """What is wrong with the name of an existing cluster, or None."""
        return None

    def spec_problems(self, spec: Spec) -> Iterator[Problem]:
        """The top-level fields: region, the fields of other clouds, the state backend."""
        return iter(())

    def network_problems(self, spec: Spec) -> Iterator[Problem]:
        """`network:`: which ways to name an existing network this cloud takes."""
        return iter(())

    def existing_cluster_problems(self, spec: Spec) -> Iterator[Problem]:
        """`cluster.existing`, once it names a cluster or a context."""
        return iter(())

    def pool_problems(self, spec: Spec, pool: NodePool, loc: Loc) -> Iterator[Problem]:
        """One node pool: its instance or machine type and accelerator blocks."""
        return iter(())

    def demand_problem(self, kind: Kind) -> str | None:
        """Why an API may not ask for this kind of accelerator here (one this cloud does not offer), or None."""
        return None

    def cluster_problems(self, spec: Spec) -> Iterator[Problem]:
        """Combinations the cloud refuses when it creates the cluster and its pools (after `terraform validate`)."""
        return iter(())

    def queue_problems(self, queue: AsyncQueue, loc: Loc) -> Iterator[Problem]:
        """An async API's queue settings against the cloud's queue service."""
        return iter(())
