"""The cluster objects of a `kind: async` API: where its queue and results are, its two Deployments, and
how each scales.

An async API runs the predictor runtime twice (runtime/asyncq/): a front (`MLKIT_MODE=front`: accept,
store, enqueue, read results) behind the API's Service, scaled on requests in flight like a realtime API
and never to zero, since it is what answers 202; and workers (`MLKIT_MODE=worker`: pull, predict, write
results by id) with the API's compute and pool, scaled by KEDA on the queue's depth, to zero. The queue,
its dead-letter queue and the results prefix are made by the cluster stack (modules/async-queue: SQS on AWS,
Pub/Sub on GCP); their names are decided here, once, for the Terraform values and for the pods' settings
alike, and what differs by cloud (locations, trigger, client env) is asked of the Cloud.
"""

from __future__ import annotations

import copy
from typing import Any

from .. import clouds, labels
from ..clouds import jobaccess
from ..errors import UserError
from ..spec.schema import Api, AsyncQueue, Spec
from .facts import Facts
from .jinja import HEADER

FRONT = "front"
WORKER = "worker"
# The front only parses, stores and enqueues: a small pod on any node, never on the API's accelerators.
# Its memory grows with the largest payload it may hold twice (the body read, then the copy it stores).
FRONT_CPU = "250m"
FRONT_BASE_MI = 256
# Queued requests per worker when `autoscaling.target_queued` is not set (the schema documents it; KEDA's own default too).
DEFAULT_TARGET_QUEUED = 5


def queue(api: Api) -> AsyncQueue:
    return api.queue or AsyncQueue()


def async_apis(spec: Spec) -> list[Api]:
    return [api for api in spec.apis if api.kind == "async"]


def queue_name(spec: Spec, api: str) -> str:
    """The queue of an API (SQS queue; Pub/Sub topic and subscription); its dead-letter queue or topic is `<name>-dead-letter`."""
    return f"{spec.project}-{api}"


def results_prefix(api: str) -> str:
    """Where an API's results and large payloads are in the model bucket; a lifecycle rule expires them."""
    return f"async/{api}"


def model_read(spec: Spec, api: Api) -> list[dict[str, str]]:
    """Where the workers' model is, for a grant on it alone: a folder uploaded on apply lands under `<api>/` in
    the model bucket (deploy/uploads.py; bucket "" is the model bucket, whose name the stack knows), a URI is
    read where it points (bucket "" too when it names the model bucket, where its name is known before apply).
    None without a model. The workers get no read on the rest of the bucket, where the other async APIs keep
    their payloads and results."""
    if api.model is None:
        return []
    if "://" in api.model:
        bucket, _, prefix = api.model.partition("://")[2].partition("/")
        return [{"bucket": "" if bucket == jobaccess.model_bucket(spec, None) else bucket, "prefix": prefix}]
    return [{"bucket": "", "prefix": f"{api.name}/"}]


def cluster_tfvars(spec: Spec) -> dict[str, Any]:
    """The cluster stack's `async_apis` value: each async API's queue settings, by name (none: no key)."""
    apis = {
        api.name: {
            "visibility_timeout_s": queue(api).visibility_timeout_s,
            "max_attempts": queue(api).max_attempts,
            "result_retention_days": queue(api).result_retention_days,
            "model_read": model_read(spec, api),
            **clouds.of(spec).async_api_tfvars(spec, api.name),
        }
        for api in async_apis(spec)
    }
    return {"async_apis": apis} if apis else {}


def addons_tfvars(spec: Spec) -> dict[str, Any]:
    """The add-ons stack's values for reading the queues' depth (on AWS `async_queue_names`, the queues KEDA's operator may read)."""
    names = [queue_name(spec, api.name) for api in async_apis(spec)]
    return clouds.of(spec).async_addons_tfvars(names) if names else {}


def locations(spec: Spec, api: str, account: str) -> dict[str, str]:
    """The runtime's queue settings (runtime/settings.py) for the queue and bucket the cluster stack made."""
    return clouds.of(spec).async_locations(spec, queue_name(spec, api), results_prefix(api), account)  # render() checked refusal() first


def _env(spec: Spec, api: Api, base: dict[str, str], mode: str, account: str) -> dict[str, str]:
    q = queue(api)
    where = locations(spec, api.name, account)
    env = {
        **base,
        "MLKIT_CONFIG": f"@/etc/mlkit/config/{mode}.json",
        "MLKIT_MODE": mode,
        "MLKIT_QUEUE": where["MLKIT_QUEUE"],
        "MLKIT_RESULTS": where["MLKIT_RESULTS"],
        "MLKIT_VISIBILITY_TIMEOUT_S": str(q.visibility_timeout_s),
        "MLKIT_MAX_ATTEMPTS": str(q.max_attempts),
        "MLKIT_MAX_BODY_BYTES": str(q.max_payload_bytes),
    }
    env |= clouds.of(spec).async_client_env(spec)
    if mode == WORKER:
        env["MLKIT_DEAD_LETTER"] = where["MLKIT_DEAD_LETTER"]
    return env


def front_resources(api: Api) -> dict[str, dict[str, str | int]]:
    memory = f"{FRONT_BASE_MI + -(-2 * queue(api).max_payload_bytes // (1024 * 1024))}Mi"
    return {"requests": {"cpu": FRONT_CPU, "memory": memory}, "limits": {"memory": memory}}


def views(view: dict[str, Any], spec: Spec, api: Api, facts: Facts) -> tuple[dict[str, Any], dict[str, Any]]:
    """The front's and the workers' views, from the API's realtime view (k8s.api_view)."""
    account = facts.aws_account_id or "ACCOUNT-ID"
    stable = view["tracks"][0]
    worker = copy.copy(stable)
    worker.name, worker.track = f"{api.name}-{WORKER}", WORKER
    worker.labels = {**stable.labels, labels.TRACK: WORKER}
    worker.env = _env(spec, api, stable.env, WORKER, account)
    front = copy.copy(stable)
    front.track, front.model, front.mount = FRONT, None, None  # the front never loads the model
    front.min_replicas = max(1, api.autoscaling.min_replicas)  # it answers 202: it never scales to zero
    front.labels = {**stable.labels, labels.TRACK: FRONT}
    front.env = _env(spec, api, stable.env, FRONT, account)
    front_view = {
        **view,
        "tracks": [front],
        "resources": front_resources(api),
        "node_selector": {},
        "tolerations": [],
        "accelerator_affinity": [],
        "pod_annotations": {},
        "model_volumes": False,
        "fetch_config": False,
    }
    cloud = clouds.of(spec)
    target = api.autoscaling.target_queued or DEFAULT_TARGET_QUEUED
    trigger_type, trigger_metadata = cloud.async_trigger(spec, locations(spec, api.name, account), target)
    worker_view = {
        **view,
        "tracks": [worker],
        "worker": worker,
        "trigger_auth": f"{api.name}-queue",
        "trigger_type": trigger_type,
        "trigger_metadata": trigger_metadata,
        "pod_identity": cloud.keda_pod_identity,
        "target_queued": target,
        # The workers' own ServiceAccount and cloud identity: they consume the queue and read the model, the front does neither.
        "service_account": worker.name,
        "identity_annotations": {cloud.identity_annotation: cloud.async_worker_identity(spec, api.name, facts.aws_account_id)},
    }
    return front_view, worker_view


FRONT_NOTE = (
    "# {api} (kind: async), front: the runtime in front mode takes each request, stores it, queues it and\n"
    "# answers 202 with its id; GET /predict/{{id}} reads the result. It never loads the model.\n"
)
WORKER_NOTE = (
    "# {api}-worker: the runtime in worker mode pulls up to max_batch_size queued requests, runs the predictor\n"
    "# on them and writes each result by id; on SIGTERM it stops pulling and finishes or releases what it holds.\n"
)
# The dead-letter queue of `<project>-<api>`. SQS takes names of up to 80 characters; a project name has
# at most 20 and an API name 40 (the spec's schema), so the longest, 73, always fits.
DEAD_LETTER_SUFFIX = "-dead-letter"


def refusal(spec: Spec, api: Api) -> str | None:
    """Why this async API cannot be rendered for a cluster yet, or None. `mlkit serve` runs it either way."""
    if not clouds.of(spec).renders_async_queues:
        return f"async APIs do not render for {clouds.of(spec).name} clusters in this version; serve it with `mlkit serve`"
    if spec.cluster.existing is not None:
        return (
            "an async API's queue and identity are made by the cluster stack, which cluster.existing leaves out; "
            "let mlkit create the cluster (remove cluster.existing) or serve it with `mlkit serve`"
        )
    return None


def render(spec: Spec, api: Api, facts: Facts, env: Any, view: dict[str, Any], extra: list[str]) -> dict[str, str]:
    """`infra/k8s/<api>/` of an async API: `extra` names the model objects (models.objects) of its workers."""
    if why := refusal(spec, api):
        raise UserError(f"mlkit.yaml: apis[{spec.apis.index(api)}].kind: async API '{api.name}': {why}")
    front, worker = views(view, spec, api, facts)
    both = {**view, "tracks": [front["tracks"][0], worker["worker"]]}
    k8s = f"infra/k8s/{api.name}"

    def one(template: str, v: dict[str, Any]) -> str:
        return str(env.get_template(f"k8s/{template}.yaml.j2").render(**v))

    files = {
        f"{k8s}/serviceaccount.yaml": one("serviceaccount", {**front, "identity_of": FRONT})
        + "---\n" + one("serviceaccount", {**worker, "identity_of": WORKER}),
        f"{k8s}/configmap.yaml": one("configmap", both),
        f"{k8s}/deployment.yaml": FRONT_NOTE.format(api=api.name) + one("deployment", front) + "---\n"
        + WORKER_NOTE.format(api=api.name) + one("deployment", worker),
        f"{k8s}/service.yaml": one("service", front),
        f"{k8s}/scaledobject.yaml": one("scaledobject", front) + "---\n" + one("async-scaledobject", worker),
        f"{k8s}/poddisruptionbudget.yaml": one("poddisruptionbudget", both),
        f"{k8s}/networkpolicy.yaml": one("networkpolicy", front),
    }
    for name in extra:
        files[f"{k8s}/{name}.yaml"] = one(name, worker)
    return {path: HEADER + text for path, text in files.items()}
