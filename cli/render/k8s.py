"""The Kubernetes manifests of every API: `infra/k8s/<api>/` and the project's shared objects.

All decisions are made here, in Python, into plain values; the templates under `templates/k8s/`
only lay them out as YAML that a reviewer reads top to bottom.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from .. import clouds, labels, placement
from ..errors import UserError
from ..spec import accelerators as acc
from ..spec import engines
from ..spec.engines import ENGINES
from ..spec.schema import Api, NodePool, Spec
from . import dashboard, models, nodepools, wake
from .facts import Facts
from .fronts import api_fronts
from .jinja import HEADER, environment

K8S = PurePosixPath("infra/k8s")
SHARED = K8S / "_shared"  # API names are DNS labels, so no API folder can be called this
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


# Kubernetes expands `$(NAME)` in a container's command, args and env values, and reads `$$` as `$`
# (k8s.io/kubernetes third_party/forked/golang/expansion/expand.go): a model URI or an extra_args
# value holding `$(HOME)` would reach the process as another string. Doubling each `$` that starts
# `$(` or `$$` makes the process see exactly the rendered value; any other `$` is literal already.
_EXPANDABLE = re.compile(r"\$(?=[$(])")


def container_value(value: object) -> str:
    """A string (or list of strings) for a container's command, args or env value: quoted as q, and
    inert to Kubernetes' $(VAR) expansion. Every such value in templates/k8s goes through it."""
    if isinstance(value, (list, tuple)):
        return json.dumps([_EXPANDABLE.sub("$$", str(v)) for v in value])
    return json.dumps(_EXPANDABLE.sub("$$", str(value)))


def template_environment() -> Any:
    """The Jinja environment of the manifests, with the filters and globals their templates use."""
    env = environment()
    env.filters["q"] = json.dumps  # a JSON string is a YAML double-quoted scalar: always safe
    env.filters["cq"] = container_value
    env.filters["combine"] = lambda a, b: {**a, **b}
    env.globals.update(
        keys=labels,
        mapping=mapping,
        metadata=metadata,
        config_hash=config_hash,
        fetch_image=lambda uri: FETCH_IMAGE[uri.split("://", 1)[0]],
        prometheus_query=prometheus_query,
    )
    return env


def render(spec: Spec, facts: Facts) -> dict[str, str]:
    env = template_environment()
    ns = spec.k8s_namespace
    shared = {
        "namespace": ns,
        "labels": _labels(spec),
        "gateway_class": f"mlkit-{spec.project}",
        # The Gateway's load balancer is public (rules.py: a canary needs `expose: public`). Envoy Gateway
        # copies spec.infrastructure.annotations onto its proxy Service (v1.9.0 internal/gatewayapi/
        # translator.go buildIR, proxy/resource_provider.go): without them the AWS Load Balancer
        # Controller's webhook takes the Service and makes its NLB internal, its default scheme.
        "gateway_annotations": clouds.of(spec).service_annotations("public"),
    }
    files = {str(SHARED / "namespace.yaml"): HEADER + env.get_template("k8s/namespace.yaml.j2").render(**shared)}
    if any(api.canary for api in spec.apis):
        files[str(SHARED / "gateway.yaml")] = HEADER + env.get_template("k8s/gateway.yaml.j2").render(**shared)
    files |= dashboard.render(spec, env, HEADER, SHARED, owner_labels(spec))
    files |= nodepools.render(spec, HEADER, SHARED)
    woken: list[Api] = []
    for i, api in enumerate(spec.apis):
        if api.kind == "async":
            # The runtime serves async APIs (`mlkit serve`); their cluster objects (queue, front and worker
            # Deployments, queue-depth triggers) are not rendered yet, and a realtime Deployment would be a lie.
            raise UserError(
                f"mlkit.yaml: apis[{i}].kind: async API '{api.name}' runs on a laptop with `mlkit serve`; rendering it for a cluster "
                "is not supported yet: remove it from the spec you render, or set `kind: realtime`"
            )
        if api.engine is not None:
            view = engine_view(spec, api, facts)
            names = [*ENGINE_OBJECTS, *models.objects(view)]
            if view["wake"]:  # scale to zero: the same holding path as a runtime API's, on the engine's running target
                names.append("interceptorroute")
                woken.append(api)
            for name in names:
                template = f"k8s/engine-{name}.yaml.j2" if name in ("deployment", "scaledobject") else f"k8s/{name}.yaml.j2"
                files[str(K8S / api.name / f"{name}.yaml")] = HEADER + env.get_template(template).render(**view)
            continue
        view = api_view(spec, api, facts)
        if api.kind != "realtime":
            # Batch and task APIs run only in Jobs (`mlkit job submit`): between jobs nothing runs, so only
            # their identity and settings are standing objects.
            for name in ("serviceaccount", "configmap", *models.objects(view)):
                files[str(K8S / api.name / f"{name}.yaml")] = HEADER + env.get_template(f"k8s/{name}.yaml.j2").render(**view)
            continue
        names = ["serviceaccount", "configmap", "deployment", "service", "scaledobject", "poddisruptionbudget", "networkpolicy"]
        names += models.objects(view)
        if api.canary:
            names.append("httproute")
        if view["wake"]:
            names.append("interceptorroute")
            woken.append(api)
        for name in names:
            files[str(K8S / api.name / f"{name}.yaml")] = HEADER + env.get_template(f"k8s/{name}.yaml.j2").render(**view)
    if woken:
        files[str(SHARED / "wake-fallback.yaml")] = HEADER + env.get_template("k8s/wake-fallback.yaml.j2").render(**wake_fallback_view(spec, woken, env))
    return files


def wake_fallback_view(spec: Spec, woken: list[Api], env: Any) -> dict[str, Any]:
    """The answer past the cold-start bound of the APIs that scale to zero (wake.py): its nginx.conf and pod."""
    ns = spec.k8s_namespace
    ports = wake.front_ports(spec.apis)
    apis = [
        {
            "name": api.name,
            "hosts": wake.hosts(api.name, ns),
            "route": wake.route_value(api.name, ns),
            "retry_after_s": wake.retry_after_s(api),
            "front_port": ports[api.name],
            "expose": api.expose,
            "read_timeout_s": wake.front_read_timeout_s(api),
        }
        for api in sorted(woken, key=lambda a: a.name)
    ]
    nginx_conf = env.get_template("k8s/wake-nginx.conf.j2").render(
        name=wake.FALLBACK,
        apis=apis,
        header=wake.ROUTE_HEADER,
        header_variable=wake.header_variable(wake.ROUTE_HEADER),
        default_retry_after_s=wake.RETRY_AFTER_S,
        port=wake.FALLBACK_PORT,
        interceptor=wake.interceptor_proxy(SYSTEM_NAMESPACE),
    )
    selector = {labels.NAME: wake.FALLBACK, labels.PART_OF: spec.project}
    return {
        "name": wake.FALLBACK,
        "namespace": ns,
        "labels": {**_labels(spec), labels.NAME: wake.FALLBACK},
        "selector": selector,
        "api_names": [api.name for api in woken],
        "fronts": apis,
        # Front ports whose clients arrive from outside the cluster: a load balancer forwards them.
        "open_fronts": [a["front_port"] for a in apis if a["expose"] != "cluster"],
        "cluster_fronts": [a["front_port"] for a in apis if a["expose"] == "cluster"],
        "replicas": wake.FALLBACK_REPLICAS,
        "interceptor_port": wake.INTERCEPTOR_PROXY_PORT,
        "nginx_conf": nginx_conf,
        "config_hash": hashlib.sha256(nginx_conf.encode()).hexdigest()[:16],
        "image": wake.FALLBACK_IMAGE,
        "port": wake.FALLBACK_PORT,
        "resources": wake.FALLBACK_RESOURCES,
        "run_as": RUN_AS,
        "checkov_skips": wake.FALLBACK_CHECKOV_SKIPS,
        "system_namespace": SYSTEM_NAMESPACE,
        "interceptor_selector": wake.INTERCEPTOR_SELECTOR,
    }


def mapping(values: dict[str, Any], indent: int) -> str:
    """A YAML block mapping at `indent`, values quoted (JSON strings are YAML scalars), no trailing newline."""
    return "\n".join(f"{' ' * indent}{key}: {json.dumps(value)}" for key, value in values.items())


def metadata(name: str, namespace: str | None, labels: dict[str, str], annotations: dict[str, str] | None = None) -> str:
    lines = ["metadata:", f"  name: {name}"]
    if namespace:
        lines.append(f"  namespace: {namespace}")
    lines += ["  labels:", mapping(labels, 4)]
    if annotations:
        lines += ["  annotations:", mapping(annotations, 4)]
    return "\n".join(lines)


def owner_labels(spec: Spec) -> dict[str, str]:
    """The labels that mark an object as mlkit's, of this project: apply selects and prunes by them."""
    return labels.owner_labels(spec.project)


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
        "load_balancer_class": cloud.load_balancer_class if balanced else None,
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


################################################################################
# Engine APIs: the engine's own server image instead of the predictor runtime; the ServiceAccount,
# Service, PodDisruptionBudget and NetworkPolicy are the runtime's, from the same templates.
################################################################################

HF_TOKEN_DIR = "/etc/mlkit/hf-token"
ENGINE_UNITS = {"nvidia": "GPU(s)", "neuron": "NeuronCore(s)", "tpu": "TPU chip(s)", "none": ""}
ENGINE_OBJECTS = ("serviceaccount", "deployment", "service", "scaledobject", "poddisruptionbudget", "networkpolicy")
# Startup probe budget: a fixed part per accelerator (CUDA graph capture; XLA precompilation on TPU;
# Neuron compiles the model on first start, tens of minutes for 8B models), plus seconds per GB of
# weights (read from the volume or downloaded from Hugging Face at about 100 MB/s, then loaded).
ENGINE_STARTUP_PERIOD_S = 10
# Readiness and liveness wait this long for /health: a saturated vLLM answers it late (its event loop is
# busy with the batch), and the kubelet's default of 1 s made liveness kill a busy engine after 3 misses,
# losing every generation in flight and paying a full cold start. llm-d-benchmark raised its probes to
# timeoutSeconds 15 for this (llm-d/llm-d-benchmark, its vLLM standup probes).
ENGINE_PROBE_TIMEOUT_S = 15
# The Inf2/Trn1 image's Neuron plugin (vllm-project/vllm-neuron 0.2.x, vllm_neuron/worker/
# neuronx_distributed_model_loader.py _get_compiled_model_path) compiles into $NEURON_COMPILED_ARTIFACTS,
# else into `<model path>/neuron-compiled-artifacts/` or, for a hub id, `local-models/` under the working
# directory (where _save_pretrained_model also writes the weights): the model volume and the root
# filesystem are read-only here, so both go to the tmp volume (the working directory is /tmp). Its README's known issues: the engine needs
# `num_gpu_blocks_override = ceil(max_model_len // block_size) * max_num_seqs` (else an out-of-bounds error),
# and its scheduler turns chunked prefill off; it compiles for max_num_seqs x max_model_len (platform.py:
# max_num_seqs defaults to 32, block_size to max_model_len unless prefix caching is on).
NEURON_WORK_DIR = "/tmp"
NEURON_MAX_NUM_SEQS = 32
ENGINE_CHECKOV_SKIPS = {
    "checkov.io/skip1": CHECKOV_SKIPS["checkov.io/skip1"],
    "checkov.io/skip2": "CKV_K8S_15=The engine image is pinned by its release tag, which its publisher does not move",
    "checkov.io/skip3": "CKV_K8S_43=Pinned by release tag (cli/spec/engines.py); replace it with a digest here to pin further",
}


def api_key_script(variable: str) -> str:
    """The engine reads one key from `variable`; the API's Secret holds keys one per line (schema.Api.api_keys).

    User values never enter the script: the engine's command and flags arrive as its arguments ("$@").
    """
    return (
        f'{variable}="$(grep -m1 . /etc/mlkit/api-keys/keys)"; '
        f'[ -n "${variable}" ] || {{ echo "mlkit: no key in the API key Secret" >&2; exit 1; }}; '
        f'export {variable}; exec "$@"'
    )


def engine_view(spec: Spec, api: Api, facts: Facts) -> dict[str, Any]:
    """The predictor view, with the engine's image, command, arguments, probes and autoscaling decided."""
    view = api_view(spec, api, facts)
    engine = ENGINES[api.engine or ""]
    serving = api.serving
    pool = placement.pool_for(api, spec) if spec.cluster.existing is None else None
    accel = placement.pool_accelerator(pool, spec.cloud) if pool else acc.NONE
    kind, amount = placement.api_demand(api)
    track = view["tracks"][0]
    track.env = _engine_env(api, kind)
    size_gb = serving.model_size_gb if serving else 16.0
    budget = engines.startup_budget_s(kind, size_gb)
    target_running, target_waiting = engines.autoscaling_targets(api.autoscaling)
    selector = _metric_selector(spec.k8s_namespace, track)
    view.update(
        engine=engine,
        engine_image=engine.image(kind, accel.device),
        engine_command=list(engine.command),
        key_command=["/bin/sh", "-c", api_key_script(engine.key_env), "engine", *engine.command],
        engine_args=engine_args(api, amount, accel.device if kind == "neuron" else ""),
        engine_working_dir=NEURON_WORK_DIR if kind == "neuron" else None,
        probe_timeout_s=ENGINE_PROBE_TIMEOUT_S,
        tensor_parallel_size=amount,
        accelerator_words=" ".join(filter(None, [str(amount), accel.device, ENGINE_UNITS[kind]])),
        model_size_gb=f"{size_gb:g}",
        startup_budget_s=budget,
        startup_period_s=ENGINE_STARTUP_PERIOD_S,
        startup_failures=-(-budget // ENGINE_STARTUP_PERIOD_S),
        shm_size=serving.shm_size if serving else "2Gi",
        engine_checkov_skips=ENGINE_CHECKOV_SKIPS,
        hf_token_dir=HF_TOKEN_DIR,
        running_query=f"sum(vllm:num_requests_running{{{selector}}})",
        waiting_query=f"sum(vllm:num_requests_waiting{{{selector}}})",
        target_running=target_running,
        target_waiting=target_waiting,
    )
    return view


def engine_args(api: Api, tensor_parallel_size: int, neuron_device: str = "") -> list[str]:
    """The engine's flags, from the spec: weights, name, sharding, serving options, then the extra flags.

    vLLM's flag names; an engine that spells them otherwise maps them here. `neuron_device`: the Neuron
    device the API runs on, whose image may need flags of its own (neuron_args).
    """
    serving = api.serving
    args = ["--model", api.hf_model or MODEL_DIR, "--served-model-name", api.name, "--host", "0.0.0.0", "--port", str(PORT)]
    args += ["--tensor-parallel-size", str(tensor_parallel_size)]
    if api.hf_model:
        args += ["--download-dir", f"{MODEL_DIR}/hf"]
    if serving is not None:
        if serving.max_model_len is not None:
            args += ["--max-model-len", str(serving.max_model_len)]
        if serving.dtype != "auto":
            args += ["--dtype", serving.dtype]
        if serving.quantization is not None:
            args += ["--quantization", serving.quantization]
        args += serving.extra_args
    if neuron_device in engines.NEURON_LEGACY_DEVICES and serving is not None and serving.max_model_len is not None:
        args += neuron_args(serving.max_model_len, serving.extra_args)
    return args


def neuron_args(max_model_len: int, extra_args: list[str]) -> list[str]:
    """The flags the Inf2/Trn1 image's known issues ask for (NEURON_WORK_DIR's comment), unless extra_args sets them."""
    given = _flag_values(extra_args)
    out = []
    max_num_seqs = NEURON_MAX_NUM_SEQS
    if "--max-num-seqs" in given and given["--max-num-seqs"].isdigit():
        max_num_seqs = int(given["--max-num-seqs"])
    else:
        out += ["--max-num-seqs", str(max_num_seqs)]
    block_size = max_model_len  # the plugin's own choice without prefix caching
    if "--block-size" in given and given["--block-size"].isdigit() and int(given["--block-size"]) > 0:
        block_size = int(given["--block-size"])
    if "--num-gpu-blocks-override" not in given:
        # The README writes ceil(max_model_len // block_size); rounding the true quotient up never gives fewer blocks.
        out += ["--num-gpu-blocks-override", str(-(-max_model_len // block_size) * max_num_seqs)]
    if "--enable-chunked-prefill" not in given:
        out.append("--no-enable-chunked-prefill")
    return out


def _flag_values(args: list[str]) -> dict[str, str]:
    """`--flag value` and `--flag=value` of a flag list, by flag ("" for a flag without a value)."""
    out: dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            flag, eq, value = arg.partition("=")
            if not eq and i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
            out[flag] = value
    return out


def _engine_env(api: Api, kind: str) -> dict[str, str]:
    env = {
        # The root filesystem is read-only and the image user has no home: caches go to the tmp volume.
        "HOME": "/tmp",
        "XDG_CACHE_HOME": "/tmp/.cache",
        "USER": "mlkit",  # torch's compile caches ask getpass for a user name; uid 10001 has no passwd entry
        "VLLM_NO_USAGE_STATS": "1",  # a served model reports nothing to the engine's makers
    }
    if api.hf_model:
        env["HF_HOME"] = f"{MODEL_DIR}/hf"
    if api.hf_token_secret:
        env["HF_TOKEN_PATH"] = f"{HF_TOKEN_DIR}/token"  # huggingface_hub reads the token from this file
    if kind == "neuron":
        env["NEURON_COMPILE_CACHE_URL"] = "/tmp/neuron-compile-cache"
        env["NEURON_COMPILED_ARTIFACTS"] = f"{NEURON_WORK_DIR}/neuron-compiled-artifacts"
    return env


def _metric_selector(namespace: str, track: Track) -> str:
    # The Prometheus chart's pod scrape job turns pod labels into metric labels, as for the runtime's gauge.
    api, tr = labels.prometheus_label(labels.API), labels.prometheus_label(labels.TRACK)
    return f'namespace="{namespace}",{api}="{track.labels[labels.API]}",{tr}="{track.track}"'
