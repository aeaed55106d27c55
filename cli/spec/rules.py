"""Rules that relate fields to each other: clouds, accelerators, pools and APIs.

Each rule yields a Problem at the field path the user has to change, so that one run reports every
problem in the spec.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .. import clouds, placement
from ..clouds import gpu_sharing, jobaccess, pool_ami
from . import accelerators as acc
from . import cron, engines
from .engines import ENGINES
from .problem import Loc, Problem
from .schema import Api, AsyncQueue, NodePool, Serving, Spec, TaskSpec, quantity_value


def check(spec: Spec) -> list[Problem]:
    return list(_all(spec))


def _all(spec: Spec) -> Iterator[Problem]:
    yield from _cloud(spec)
    yield from _network(spec)
    pool_problems = list(_pools(spec))
    yield from pool_problems
    # Placement against a broken pool would only repeat the pool's problem in other words.
    yield from _apis(spec, place=not pool_problems)
    if not pool_problems:
        yield from gpu_sharing.check(spec)
    yield from clouds.of(spec).cluster_problems(spec)
    yield from _engines(spec)
    yield from _model_access(spec)
    yield from _kinds(spec)
    yield from pool_ami.problems(spec)


def _cloud(spec: Spec) -> Iterator[Problem]:
    yield from clouds.of(spec).spec_problems(spec)
    if spec.state.backend != "local" and not spec.state.bucket:
        yield Problem(("state", "bucket"), f"required with `backend: {spec.state.backend}`: an existing bucket for the state files")


def _network(spec: Spec) -> Iterator[Problem]:
    net = spec.network
    existing = net.existing_vpc_id or net.existing_network
    if existing:
        for name in ("vpc_cidr", "nat", "az_count"):
            if name in net.model_fields_set:
                yield Problem(("network", name), "applies to a new network only; remove it or remove the existing_* settings")
    yield from clouds.of(spec).network_problems(spec)


def _pools(spec: Spec) -> Iterator[Problem]:
    cluster = spec.cluster
    if cluster.existing is not None:
        if cluster.node_pools:
            yield Problem(("cluster", "node_pools"), "an existing cluster brings its own nodes; remove node_pools or remove existing")
        if not (cluster.existing.name or cluster.existing.context):
            yield Problem(("cluster", "existing"), "name the cluster (`name:`) or a kubeconfig context (`context:`), or both")
        else:
            yield from clouds.of(spec).existing_cluster_problems(spec)
        return
    if not cluster.node_pools:
        yield Problem(("cluster", "node_pools"), "add at least one node pool, e.g. {name: cpu, instance_type: m6i.large, min_nodes: 1, max_nodes: 3}")
    for index in _repeats([p.name for p in cluster.node_pools]):
        yield Problem(("cluster", "node_pools", index, "name"), f"duplicate pool name '{cluster.node_pools[index].name}'; pool names must be unique")
    for i, pool in enumerate(cluster.node_pools):
        loc: Loc = ("cluster", "node_pools", i)
        if pool.min_nodes > pool.max_nodes:
            yield Problem(loc + ("min_nodes",), f"min_nodes ({pool.min_nodes}) is above max_nodes ({pool.max_nodes})")
        yield from clouds.of(spec).pool_problems(spec, pool, loc)


def _repeats(names: list[str]) -> list[int]:
    """Indexes of names seen before: the entries to rename."""
    return [i for i, name in enumerate(names) if name in names[:i]]


def _apis(spec: Spec, place: bool) -> Iterator[Problem]:
    from ..render.wake import FALLBACK, scales_to_zero  # here: cli.render.wake imports the spec package

    for index in _repeats([a.name for a in spec.apis]):
        yield Problem(("apis", index, "name"), f"duplicate API name '{spec.apis[index].name}'; API names must be unique")
    pools = {p.name: p for p in spec.cluster.node_pools}
    for i, api in enumerate(spec.apis):
        loc: Loc = ("apis", i)
        a = api.autoscaling
        if a.min_replicas > a.max_replicas:
            yield Problem(loc + ("autoscaling", "min_replicas"), f"min_replicas ({a.min_replicas}) is above max_replicas ({a.max_replicas})")
        if api.canary is not None and api.expose != "public":
            yield Problem(
                loc + ("canary",),
                "a canary is served through the project's Gateway, an internet-facing load balancer: set `expose: public` on this API, or remove the canary",
            )
        if api.name.endswith("-canary") and api.name.removesuffix("-canary") in {a.name for a in spec.apis}:
            yield Problem(loc + ("name",), f"'{api.name}' is the name of the canary objects of API '{api.name.removesuffix('-canary')}'; pick another name")
        if api.name == "async":
            # Its uploaded model would land under async/, beside the async APIs' payloads and results, which
            # the model bucket's read leaves out (an API's model read must not reach other APIs' results).
            yield Problem(loc + ("name",), "'async' is the model bucket's folder of async APIs' payloads and results (async/<api>/); pick another name")
        if api.name.endswith("-worker") and api.name.removesuffix("-worker") in {a.name for a in spec.apis if a.kind == "async"}:
            base = api.name.removesuffix("-worker")
            yield Problem(loc + ("name",), f"'{api.name}' is the name of the worker objects of async API '{base}'; pick another name")
        if a.min_replicas == 0 and api.canary is not None:
            # The Gateway splits traffic between two always-present Services; the wake-on-request path
            # (the KEDA HTTP add-on's interceptor) sits in front of one, so the two do not combine.
            yield Problem(
                loc + ("autoscaling", "min_replicas"), "an API with a canary cannot scale to zero: set min_replicas to 1 or more, or remove the canary"
            )
        woken = api.name.removesuffix("-backend")
        if woken != api.name and woken in {x.name for x in spec.apis if scales_to_zero(x)}:
            yield Problem(loc + ("name",), f"'{api.name}' is the name of the backend Service of API '{woken}', which scales to zero; pick another name")
        if api.name == FALLBACK and any(scales_to_zero(x) for x in spec.apis):
            yield Problem(loc + ("name",), f"'{api.name}' is the name of the cold-start fallback of the APIs that scale to zero; pick another name")
        asked = [k for k in ("gpu", "neuron_cores", "tpu_chips") if getattr(api.compute, k)]
        if len(asked) > 1:
            yield Problem(loc + ("compute",), f"asks for {' and '.join(asked)}; one replica uses one kind of accelerator")
            continue
        if spec.cluster.existing is not None or not place:
            continue  # the pools of someone else's cluster are not known here
        yield from _placement(spec, api, loc, pools)


_KIND_WORDS = {"nvidia": "NVIDIA GPU(s)", "neuron": "Neuron core(s)", "tpu": "TPU chip(s)", "none": "CPU-only"}
_COMPUTE_FIELD = {"nvidia": "gpu", "neuron": "neuron_cores", "tpu": "tpu_chips"}


def _placement(spec: Spec, api: Api, loc: Loc, pools: dict[str, NodePool]) -> Iterator[Problem]:
    kind, amount = placement.api_demand(api)
    field = loc + ("compute", _COMPUTE_FIELD[kind]) if kind != "none" else loc + ("compute",)
    if problem := clouds.of(spec).demand_problem(kind):
        yield Problem(field, problem)
        return
    if api.node_pool is not None:
        pool = pools.get(api.node_pool)
        if pool is None:
            yield Problem(loc + ("node_pool",), f"no pool named '{api.node_pool}' (valid: {', '.join(pools) or 'none defined'})")
            return
        have = placement.pool_accelerator(pool, spec.cloud)
        if not placement.fits(have, kind, amount):
            yield Problem(loc + ("node_pool",), _misfit(api, kind, amount, pool, have))
        return
    if placement.pool_for(api, spec) is None:
        offers = [f"{p.name}: {_offer(placement.pool_accelerator(p, spec.cloud))}" for p in spec.cluster.node_pools]
        want = f"{amount} {_KIND_WORDS[kind]}" if kind != "none" else "a CPU-only node"
        yield Problem(field, f"no node pool offers {want} per node (pools: {'; '.join(offers) or 'none'}); add such a pool or change the request")


def _offer(have: acc.Accelerator) -> str:
    if have.kind == "none":
        return "CPU only"
    if have.kind == "neuron":
        return f"{have.neuron_cores} Neuron cores"
    if have.kind == "tpu":
        return f"{have.count} TPU chips"
    return f"{have.count} {have.device} GPU(s)"


def _misfit(api: Api, kind: acc.Kind, amount: int, pool: NodePool, have: acc.Accelerator) -> str:
    if kind == "none":
        return f"pool '{pool.name}' has {_offer(have)} nodes; a CPU-only API would hold them idle; pick a CPU pool"
    if kind == "tpu" and have.kind == "tpu":
        return f"pool '{pool.name}' has {have.count} TPU chips per VM; set compute.tpu_chips to {have.count}"
    return f"pool '{pool.name}' offers {_offer(have)} per node, the API asks for {amount} {_KIND_WORDS[kind]}"


################################################################################
# Engine APIs (`engine: vllm`): the engine replaces the predictor, shards the model over the
# accelerators of one replica, and runs only on the accelerators it supports.
################################################################################

# Fields of the predictor runtime that an engine has its own answer to.
_RUNTIME_ONLY = {
    "config": "predictor settings",
    "batching": "server-side batching (the engine batches continuously)",
    "concurrency": "admission control (the engine queues itself)",
    "canary": "a canary",
    "monitoring": "prediction monitoring (the runtime's metric of each prediction; the engine exports its own vllm:* metrics)",
}
_ENGINE_ONLY = ("hf_model", "hf_token_secret", "serving")


def _engines(spec: Spec) -> Iterator[Problem]:
    pools_ok = spec.cluster.existing is None and not list(_pools(spec))
    for i, api in enumerate(spec.apis):
        loc: Loc = ("apis", i)
        if api.engine is None:
            if api.predictor is None:
                yield Problem(loc + ("predictor",), (
                    "required field is missing: the predictor class as `file.py:ClassName` (or `engine: vllm` to serve the model with an engine)"
                ))
            for name in _ENGINE_ONLY:
                if getattr(api, name) is not None:
                    yield Problem(loc + (name,), "only for engine APIs; set `engine: vllm` or remove it")
            if api.autoscaling.target_waiting is not None:
                yield Problem(loc + ("autoscaling", "target_waiting"), "only for engine APIs (it reads the engine's queue); remove it or set `engine: vllm`")
            continue
        yield from _engine_api(spec, api, loc, pools_ok)


def _engine_api(spec: Spec, api: Api, loc: Loc, pools_ok: bool) -> Iterator[Problem]:
    engine = ENGINES[api.engine or ""]
    if api.predictor is not None:
        yield Problem(loc + ("predictor",), (
            f"an API with `engine: {engine.name}` runs the engine's own server, not a predictor; remove predictor, or remove engine"
        ))
    for name, what in _RUNTIME_ONLY.items():
        if name in api.model_fields_set:
            yield Problem(loc + (name,), f"{what} is a predictor-runtime setting, not used with `engine: {engine.name}`; remove it")
    if api.model is None and api.hf_model is None:
        yield Problem(loc + ("model",), "an engine API needs weights: `model:` (s3://, gs:// or a folder in the project) or `hf_model: org/name`")
    elif api.model is not None and api.hf_model is not None:
        yield Problem(loc + ("hf_model",), "give the weights once: `model:` or `hf_model:`, not both")
    if api.hf_token_secret is not None and api.hf_model is None:
        yield Problem(loc + ("hf_token_secret",), "a Hugging Face token is for `hf_model`; remove it, or name the model with hf_model")
    kind, amount = placement.api_demand(api)
    if kind == "none":
        yield Problem(loc + ("compute",), (
            f"engine {engine.name} needs accelerators; it runs on {engine.supported()}: ask for compute.gpu, compute.neuron_cores or compute.tpu_chips"
        ))
        return
    if kind not in engine.devices:
        yield Problem(loc + ("compute", _COMPUTE_FIELD[kind]), f"engine {engine.name} does not run on {_KIND_WORDS[kind]}; it runs on {engine.supported()}")
        return
    shm_size = (api.serving or Serving()).shm_size
    shm, memory = quantity_value(shm_size), quantity_value(api.compute.memory)
    if shm is not None and memory is not None and shm > memory:
        yield Problem(
            loc + ("serving", "shm_size"),
            f"{shm_size} is more than compute.memory ({api.compute.memory}), which /dev/shm counts against; lower it or raise memory",
        )
    if "memory" not in api.compute.model_fields_set:
        yield Problem(
            loc + ("compute", "memory"),
            "set it for an engine API (the default 2Gi is a predictor's): the engine loads the weights through host memory "
            "and /dev/shm counts against it; e.g. 32Gi for an 8B model",
        )
    serving = api.serving
    if serving is not None and serving.tensor_parallel_size is not None and serving.tensor_parallel_size != amount:
        yield Problem(
            loc + ("serving", "tensor_parallel_size"),
            f"tensor_parallel_size {serving.tensor_parallel_size} does not match the {amount} {_KIND_WORDS[kind]} of one replica "
            f"(compute.{_COMPUTE_FIELD[kind]}): the engine shards the model over exactly those; "
            "set both to the same number, or leave tensor_parallel_size out",
        )
    if not pools_ok:
        return  # someone else's cluster, or broken pools: the pool an API lands on is not known
    pool = placement.pool_for(api, spec)
    if pool is None:
        return  # _placement says no pool offers this many per node, naming both numbers
    have = placement.pool_accelerator(pool, spec.cloud)
    if have.kind == kind and have.device not in engine.devices[kind]:
        yield Problem(
            loc + ("compute", _COMPUTE_FIELD[kind]),
            f"pool '{pool.name}' has {have.device}, which engine {engine.name} does not run on; it runs on {engine.supported()}",
        )
    needs_length = have.kind == "neuron" and have.device in engines.NEURON_LEGACY_DEVICES and placement.fits(have, kind, amount)
    if needs_length and (serving is None or serving.max_model_len is None):
        # The Inf2/Trn1 image compiles for max_num_seqs x max_model_len at start; the model's own length
        # (often 128k tokens) takes hours to compile and does not fit the cores' memory.
        yield Problem(
            loc + ("serving", "max_model_len"),
            f"set it for an engine API on {have.device}: the Neuron engine compiles the model for this length at start, e.g. "
            "`serving: {max_model_len: 4096}`",
        )
    if pool.tpu is not None and acc.tpu_slice(pool.tpu.version, pool.tpu.topology).multi_host:
        yield Problem(
            loc + ("node_pool",),
            (
                f"pool '{pool.name}' is a multi-host TPU slice ({pool.tpu.topology}); an engine replica runs on one VM: use a single-host topology (at "
                f"most {max(acc.tpu_versions()[pool.tpu.version]['machine_types'].values())} chips)"
            ),
        )


# What `model_access: mount` hands the bucket driver: the prefix becomes a mount option (`prefix <p>/`
# for Mountpoint, `only-dir=<p>` inside a comma-separated list for Cloud Storage FUSE), so a space or
# a comma in it would split into options of its own.
MOUNT_PREFIX = re.compile(r"(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]*", re.ASCII)


def mountable(prefix: str) -> bool:
    """Whether a bucket prefix can be handed to the bucket driver as a mount option as it is."""
    return bool(MOUNT_PREFIX.fullmatch(prefix)) and not any(part in (".", "..") for part in prefix.split("/"))


def _model_access(spec: Spec) -> Iterator[Problem]:
    for i, api in enumerate(spec.apis):
        if api.model_access != "mount":
            continue
        loc: Loc = ("apis", i)
        if api.hf_model is not None:
            yield Problem(loc + ("model_access",), (
                "`mount` mounts a bucket prefix, and `hf_model` weights come from Hugging Face when the engine starts: "
                "give the weights as `model:` (a bucket prefix or a folder in the project), or remove model_access"
            ))
        elif api.model is None:
            yield Problem(loc + ("model_access",), "this API has no `model:` to mount: set model, or remove model_access")
        tracks = [(loc + ("model",), api.model)] + ([(loc + ("canary", "model"), api.canary.model)] if api.canary else [])
        for where, model in tracks:
            if model is None or "://" not in model:
                continue  # a local folder goes to a prefix mlkit names (api/digest/)
            prefix = model.partition("://")[2].partition("/")[2]
            if not mountable(prefix):
                yield Problem(where, (
                    f"with model_access: mount the prefix {prefix!r:.80} is passed to the bucket driver as a mount option: use letters, "
                    "digits, '_', '.', '-' and '/' (no '.' or '..' folder, no '//'), or model_access: copy"
                ))


################################################################################
# Workload kinds: a batch or task API runs the predictor in Jobs, not behind a Service, so the
# settings of a service mean nothing there; each kind's own block belongs to that kind alone. An async API
# (queue, workers, results by id) takes the queue's settings and none of the Gateway's.
################################################################################

_SERVICE_ONLY = ("autoscaling", "batching", "concurrency", "rollout", "expose", "api_keys", "canary", "monitoring")


def _kinds(spec: Spec) -> Iterator[Problem]:
    for i, api in enumerate(spec.apis):
        loc: Loc = ("apis", i)
        if (api.concurrency.fronts or 1) > 1 and (api.kind != "realtime" or api.engine is not None):
            yield Problem(loc + ("concurrency", "fronts"), "several front processes serve a realtime predictor API only; remove it")
        if api.concurrency.model_per_gpu and (api.kind != "realtime" or api.engine is not None):
            yield Problem(loc + ("concurrency", "model_per_gpu"), "model processes per GPU serve a realtime predictor API only; remove it")
        elif api.concurrency.model_per_gpu and api.compute.gpu < 2:
            yield Problem(loc + ("concurrency", "model_per_gpu"), f"needs `compute.gpu` of 2 or more (it is {api.compute.gpu}); remove it or ask for more GPUs")
        for block in ("batch", "task"):
            if getattr(api, block) is not None and api.kind != block:
                yield Problem(loc + (block,), f"only for `kind: {block}` (this API is `kind: {api.kind}`); set the kind or remove it")
        if api.kind == "async":
            yield from _async(spec, api, loc)
            continue
        if api.queue is not None:
            yield Problem(loc + ("queue",), f"only for `kind: async` (this API is {api.kind}); remove it or set `kind: async`")
        if api.autoscaling.target_queued is not None:
            yield Problem(loc + ("autoscaling", "target_queued"), "only for `kind: async` (it reads the queue's depth); remove it or set `kind: async`")
        if api.kind == "realtime":
            continue
        if api.batch is not None and api.batch.output is not None and (bad := jobaccess.problem(api.batch.output, clouds.of(spec))):
            yield Problem(loc + ("batch", "output"), bad)
        if api.kind == "task" and api.task is not None:
            yield from _task(api.task, loc + ("task",))
        if api.engine is not None:
            yield Problem(loc + ("engine",), f"`kind: {api.kind}` runs the predictor class in Jobs, not an engine's server; remove engine")
        for name in _SERVICE_ONLY:
            if name in api.model_fields_set and not (name == "autoscaling" and api.autoscaling.target_queued is not None):
                yield Problem(loc + (name,), f"a setting of a service (`kind: realtime`); `kind: {api.kind}` runs Jobs: remove it")


def _task(task: TaskSpec, loc: Loc) -> Iterator[Problem]:
    if task.schedule is not None and (bad := cron.problem(task.schedule)):
        yield Problem(loc + ("schedule",), bad)
    if task.time_zone is not None:
        if task.schedule is None:
            yield Problem(loc + ("time_zone",), "the zone of a schedule; set task.schedule or remove it")
        elif bad := cron.zone_problem(task.time_zone):
            yield Problem(loc + ("time_zone",), bad)
    if task.overlap != "forbid" and task.schedule is None:
        yield Problem(loc + ("overlap",), "what overlapping scheduled runs do; set task.schedule or remove it")


def _async(spec: Spec, api: Api, loc: Loc) -> Iterator[Problem]:
    if api.engine is not None:
        yield Problem(loc + ("kind",), "an engine API answers while the client waits; `kind: async` runs a predictor class: remove engine or kind")
    if api.canary is not None:
        yield Problem(loc + ("canary",), "an async API has no canary (its requests go through a queue, not the Gateway); remove the canary")
    yield from clouds.of(spec).queue_problems(api.queue or AsyncQueue(), loc)
