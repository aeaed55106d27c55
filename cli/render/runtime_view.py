"""The view of a runtime API (the predictor runtime serving a Python class): every decision about its
objects (pool, tolerations, resources, drain, exposure, identity, model access, scale to zero) made in
Python into plain values, which the templates under templates/k8s/ lay out. engine_view.py builds on it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .. import clouds, labels, placement
from ..spec import accelerators as acc
from ..spec.schema import Api, NodePool, Spec
from . import automode, models, wake
from .facts import Facts
from .fronts import api_fronts, api_model_processes

SYSTEM_NAMESPACE = "mlkit-system"  # where the add-ons stack installs KEDA and Prometheus
PROMETHEUS_URL = f"http://prometheus-server.{SYSTEM_NAMESPACE}.svc.cluster.local"
PORT = 8080
RUN_AS = 10001  # the user the predictor images run as (see templates/docker)
MODEL_DIR = "/models"
# Model fetchers: pinned cloud CLI images that sync a bucket prefix into the model volume.
FETCH_IMAGE = {
    "s3": "public.ecr.aws/aws-cli/aws-cli:2.17.0",
    "gs": "gcr.io/google.com/cloudsdktool/google-cloud-cli:500.0.0-slim",
}
# Seconds a terminating pod keeps serving before SIGTERM (preStop), so that load balancers and
# kube-proxy stop sending to it first; then the runtime finishes what it holds within the drain
# timeout. GKE gives spot VMs about 30 s from notice to power-off, so their pods must fit in 25.
PRESTOP_S = 5
DRAIN_TIMEOUT_S = {"on_demand": 30, "short_notice": 15}
EXIT_MARGIN_S = 5
# Policy-scanner findings that are deliberate here, with the reason, where reviewers and checkov both read them.
CHECKOV_SKIPS = {
    "checkov.io/skip1": "CKV_K8S_11=No CPU limit: CFS throttling stalls inference latency; the CPU request reserves the cores",
    "checkov.io/skip2": "CKV_K8S_15=Tags are content hashes of the build, never reused, so IfNotPresent always runs the right image",
    "checkov.io/skip3": "CKV_K8S_43=The tag is a content hash of the build context; mlkit build pushes each hash once",
}
# Vendor taints on accelerator nodes (set by the AWS node groups, by GKE on its own).
TOLERATIONS = {"nvidia": "nvidia.com/gpu", "neuron": "aws.amazon.com/neuron", "tpu": "google.com/tpu"}
RESOURCE = {"nvidia": "nvidia.com/gpu", "neuron": "aws.amazon.com/neuroncore", "tpu": "google.com/tpu"}


@dataclass
class Track:
    """One Deployment of an API: the stable version, or its canary."""

    name: str
    track: str
    predictor: str | None  # None: an engine API
    model: str | None  # None: an API without a model folder
    config_json: str
    min_replicas: int
    weight: int = 100
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    mount: models.Mount | None = None  # model_access: mount; None: the model is copied by the init container


def _labels(spec: Spec, api: str | None = None) -> dict[str, str]:
    return labels.api_labels(spec.project, api) if api else labels.owner_labels(spec.project)


def api_view(spec: Spec, api: Api, facts: Facts) -> dict[str, Any]:
    """Everything the templates of one API need, decided."""
    ns = spec.k8s_namespace
    cloud = clouds.of(spec)
    pool = placement.pool_for(api, spec) if spec.cluster.existing is None else None
    accel = placement.pool_accelerator(pool, spec.cloud) if pool else acc.NONE
    kind, amount = placement.api_demand(api)
    drain_timeout = DRAIN_TIMEOUT_S["short_notice" if cloud.short_spot_notice(pool) else "on_demand"]
    api_labels = _labels(spec, api.name)
    tracks = [_track(spec, facts, api.name, "stable", api.predictor, api.model, api.config, api.autoscaling.min_replicas, api_labels)]
    if api.canary:
        c = api.canary
        tracks[0].weight = 100 - c.weight
        config = api.config if c.config is None else c.config
        # The canary always runs: with no replica it would take no share of the traffic.
        tracks.append(_track(spec, facts, f"{api.name}-canary", "canary", c.predictor or api.predictor, c.model or api.model, config, 1, api_labels, c.weight))
    for track in tracks:
        track.env = _runtime_env(api, track, drain_timeout)
        if api.model_access == "mount" and track.model:
            track.mount = models.mount(spec, track.name, track.model, RUN_AS)
    # A canary API is reached through the Gateway; its Services stay inside the cluster.
    balanced = api.expose != "cluster" and not api.canary
    # Scale to zero (wake.py): the API's Service leads to its front, which pins the route to the
    # interceptor, and the pods are reached through it, so they take requests from pods of the cluster only.
    woken = wake.scales_to_zero(api) and not api.canary  # the rules refuse the pair; a canary keeps its Services
    return {
        "spec": spec,
        "api": api,
        "namespace": ns,
        "labels": api_labels,
        "tracks": tracks,
        "image": _image(spec, api, facts),
        "service_account": api.name,
        "identity_annotations": {cloud.identity_annotation: cloud.identity(spec, api.name, facts.aws_account_id)},
        "resources": _resources(api, kind, amount),
        "node_selector": _node_selector(cloud, pool, accel),
        "tolerations": _tolerations(pool, kind),
        "accelerator_affinity": [accel.device or "none"] if pool else [],
        "prestop_s": PRESTOP_S,
        "drain_timeout_s": drain_timeout,
        "grace_s": PRESTOP_S + drain_timeout + EXIT_MARGIN_S,
        "port": PORT,
        "run_as": RUN_AS,
        "model_dir": MODEL_DIR,
        "service_type": "LoadBalancer" if balanced else "ClusterIP",
        "service_annotations": cloud.service_annotations(api.expose) if balanced else {},
        "load_balancer_class": automode.load_balancer_class(spec, cloud.load_balancer_class) if balanced else None,
        "max_surge": _int_or_percent(api.rollout.max_surge),
        "max_unavailable": _int_or_percent(api.rollout.max_unavailable),
        "prometheus_url": PROMETHEUS_URL,
        "open_ingress": balanced and not woken,  # behind a load balancer the client addresses arrive; else only pods (the Gateway included)
        "wake": _wake(spec, api) if woken else None,
        "region": spec.region,
        "checkov_skips": CHECKOV_SKIPS,
        # Cloud Storage FUSE: GKE's webhook adds its sidecar to pods that carry this annotation.
        "pod_annotations": {models.GCSFUSE_ANNOTATION: "true"} if any(t.mount and not t.mount.claim for t in tracks) else {},
        "model_volumes": any(t.mount and t.mount.claim for t in tracks),
        # aws-cli's S3 transfer settings, for tracks that copy from S3 (models.py).
        "fetch_config": any(t.model and not t.mount and t.model.startswith("s3://") for t in tracks),
        "fetch": models.fetch_view(),
        "model_volume_size": models.MODEL_VOLUME_SIZE,
    }


def _wake(spec: Spec, api: Api) -> dict[str, Any]:
    """The objects of the wake-on-request path of one API (see wake.py)."""
    ns = spec.k8s_namespace
    return {
        "system_namespace": SYSTEM_NAMESPACE,
        "backend": api.name + wake.BACKEND_SUFFIX,
        "front_port": wake.front_ports(spec.apis)[api.name],
        "front_selector": {labels.NAME: wake.FALLBACK, labels.PART_OF: spec.project},
        "hosts": wake.hosts(api.name, ns),
        "header": wake.ROUTE_HEADER,
        "route": wake.route_value(api.name, ns),
        "scaler_address": wake.scaler_address(SYSTEM_NAMESPACE),
        "fallback": wake.FALLBACK,
        "cold_start_timeout_s": wake.cold_start_timeout_s(api),
        "response_header_timeout": wake.response_header_timeout(api),
    }


def _track(
    spec: Spec,
    facts: Facts,
    name: str,
    track: str,
    predictor: str | None,
    model: str | None,
    config: dict[str, Any] | None,
    min_replicas: int,
    api_labels: dict[str, str],
    weight: int = 100,
) -> Track:
    return Track(
        name=name,
        track=track,
        predictor=predictor,
        model=_model_uri(spec, name, model, facts),
        config_json=config_json(config),
        min_replicas=min_replicas,
        weight=weight,
        labels={**api_labels, labels.TRACK: track},
    )


def config_hash(track: Track) -> str:
    return short_hash(track.config_json)


def config_json(config: dict[str, Any] | None) -> str:
    """A config as the ConfigMap carries it; its short_hash is the pods' config-hash annotation."""
    return json.dumps(config, indent=2, sort_keys=True)


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _model_uri(spec: Spec, name: str, model: str | None, facts: Facts) -> str | None:
    if model is None:
        return None
    if pinned := facts.pinned_model(name):  # `mlkit rollback` pinned an earlier revision's model
        return pinned
    if model.startswith(("s3://", "gs://")):
        return model
    return facts.models.get(name) or f"{clouds.of(spec).bucket_scheme}://UPLOADED-ON-APPLY/{name}/"


def _runtime_env(api: Api, track: Track, drain_timeout: int) -> dict[str, str]:
    """The runtime's settings (MLKIT_* variables, see runtime/settings.py) for one version of an API."""
    env = {
        "MLKIT_PREDICTOR": track.predictor or "",
        "MLKIT_NAME": api.name,
        "MLKIT_MODEL_DIR": MODEL_DIR,
        "MLKIT_CONFIG": f"@/etc/mlkit/config/{track.track}.json",
        "MLKIT_HOST": "0.0.0.0",
        "MLKIT_PORT": str(PORT),
        "MLKIT_MAX_BATCH_SIZE": str(api.batching.max_batch_size),
        "MLKIT_MAX_WAIT_MS": f"{api.batching.max_wait_ms:g}",
        "MLKIT_MAX_IN_FLIGHT": str(api.concurrency.max_in_flight),
        "MLKIT_MAX_QUEUE": str(api.concurrency.max_queue),
        "MLKIT_DRAIN_DELAY_S": "0",  # preStop already waited for the endpoints to drop the pod
        "MLKIT_DRAIN_TIMEOUT_S": str(drain_timeout),
        "HOME": "/tmp",  # the root filesystem is read-only; libraries that cache under ~ write to the tmp volume
    }
    if (fronts := api_fronts(api)) > 1:  # only then: one process is the runtime's default
        env["MLKIT_FRONTS"] = str(fronts)
    if (models := api_model_processes(api)) > 1:
        env["MLKIT_MODEL_PROCESSES"] = str(models)
    if api.api_keys:
        env["MLKIT_API_KEYS_FILE"] = "/etc/mlkit/api-keys/keys"
    if api.monitoring is not None:
        env |= {f"MLKIT_{name.upper()}": value for name, value in api.monitoring.runtime_settings().items()}
    return env


def _image(spec: Spec, api: Api, facts: Facts) -> str:
    return image_ref(spec, api.name, facts.image_tag(api.name) or "BUILT-ON-APPLY", facts.aws_account_id or "ACCOUNT-ID")


def registry(spec: Spec, account: str | None) -> str:
    return clouds.of(spec).registry(spec, account)


def image_ref(spec: Spec, api: str, tag: str, account: str | None) -> str:
    return clouds.of(spec).image_ref(spec, api, tag, account)


def _resources(api: Api, kind: str, amount: int) -> dict[str, dict[str, str | int]]:
    requests: dict[str, str | int] = {"cpu": api.compute.cpu, "memory": api.compute.memory}
    limits: dict[str, str | int] = {"memory": api.compute.memory}
    if kind != "none":
        requests[RESOURCE[kind]] = amount
        limits[RESOURCE[kind]] = amount
    return {"requests": requests, "limits": limits}


def _node_selector(cloud: clouds.Cloud, pool: NodePool | None, accel: acc.Accelerator) -> dict[str, str]:
    if pool is None:
        return {}
    return {labels.POOL: pool.name, **cloud.accelerator_selector(pool, accel)}


def _tolerations(pool: NodePool | None, kind: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = [{"key": TOLERATIONS[kind], "operator": "Exists", "effect": "NoSchedule"}] if kind != "none" else []
    for taint in pool.taints if pool else []:
        t = {"key": taint.key, "operator": "Equal" if taint.value else "Exists", "effect": taint.effect}
        if taint.value:
            t["value"] = taint.value
        out.append(t)
    return out


def _int_or_percent(value: str) -> int | str:
    # The API server takes 25% as a string and 0 only as a number.
    return value if value.endswith("%") else int(value)


def prometheus_query(namespace: str, track: Track) -> str:
    # The Prometheus chart's pod scrape job turns pod labels into metric labels (dots and slashes to _).
    api, tr = labels.prometheus_label(labels.API), labels.prometheus_label(labels.TRACK)
    return f'sum(mlkit_requests_in_flight{{namespace="{namespace}",{api}="{track.labels[labels.API]}",{tr}="{track.track}"}})'
