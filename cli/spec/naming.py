"""Names that reach Terraform, Kubernetes or an image reference, against the rules of whoever reads them.

The state bucket, key prefix and region are written into `backend.tf` (a backend block cannot read
variables), so these checks are what keeps a quote or a newline out of HCL text; everything else
travels in `mlkit.auto.tfvars.json`, and is checked here so that a bad name fails at `mlkit validate`
rather than half way through an apply.
"""

from __future__ import annotations

from collections.abc import Iterator

from .. import clouds
from . import syntax
from .problem import Loc, Problem
from .schema import Spec

RESERVED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


def check(spec: Spec) -> list[Problem]:
    return list(_all(spec))


def _all(spec: Spec) -> Iterator[Problem]:
    yield from _state(spec)
    yield from _cloud_names(spec)
    yield from _tags(spec)
    yield from _pools(spec)
    ns = spec.namespace
    if ns is not None and (ns in RESERVED_NAMESPACES or ns.startswith("kube-")):
        yield Problem(("namespace",), f"'{ns}' belongs to Kubernetes itself; "
                                      f"mlkit's objects and network policies need a namespace of their own (e.g. {spec.project})")


def _state(spec: Spec) -> Iterator[Problem]:
    state = spec.state
    if state.bucket is not None:
        backend = state.backend if state.backend != "local" else clouds.of(spec).state_backend
        problem = syntax.s3_bucket(state.bucket) if backend == "s3" else syntax.gcs_bucket(state.bucket)
        if problem:
            yield Problem(("state", "bucket"), f"{state.bucket!r} {problem}")
    if problem := syntax.key_prefix(state.key_prefix):
        yield Problem(("state", "key_prefix"), f"{state.key_prefix!r} {problem}")
    if state.region is not None:
        if clouds.of(spec).state_backend != "s3":
            yield Problem(("state", "region"), "used with `backend: s3` only (a GCS bucket needs no region); remove it")
        elif problem := syntax.aws_region(state.region):
            yield Problem(("state", "region"), problem)


def _cloud_names(spec: Spec) -> Iterator[Problem]:
    yield from clouds.of(spec).project_problems(spec)
    net = spec.network
    for field in ("existing_network", "existing_subnetwork"):
        value = getattr(net, field)
        if value is not None and not syntax.GCP_NAME.fullmatch(value):
            yield Problem(("network", field), f"{value!r} is not a GCP resource name: 1 to 63 lowercase letters, "
                                              "digits and '-', starting with a letter (the name, not a URL)")
    existing = spec.cluster.existing
    if existing is not None and existing.name is not None and (problem := clouds.of(spec).cluster_name_problem(existing.name)):
        yield Problem(("cluster", "existing", "name"), problem)


def _tags(spec: Spec) -> Iterator[Problem]:
    cloud = clouds.of(spec)
    check = cloud.tag_problems
    word = cloud.tag_word
    limit = cloud.max_tags
    if len(spec.tags) > limit:
        yield Problem(("tags",), f"{len(spec.tags)} {word}; {spec.cloud.upper()} allows {limit} besides the {len(cloud.own_tags)} mlkit adds")
    for key, value in spec.tags.items():
        loc: Loc = ("tags", key)
        if key in cloud.own_tags:
            yield Problem(loc, f"mlkit sets the {word[:-1]} {key!r} on every resource itself and would replace yours; pick another key", key=True)
            continue
        key_problem, value_problem = check(key, value)
        if key_problem:
            yield Problem(loc, key_problem, key=True)
        if value_problem:
            yield Problem(loc, value_problem)


def _pools(spec: Spec) -> Iterator[Problem]:
    for i, pool in enumerate(spec.cluster.node_pools):
        loc: Loc = ("cluster", "node_pools", i)
        for key, value in pool.labels.items():
            if problem := syntax.qualified_name(key) or syntax.reserved_key(key):
                yield Problem(loc + ("labels", key), problem, key=True)
            elif problem := syntax.label_value(value):
                yield Problem(loc + ("labels", key), problem)
        for j, taint in enumerate(pool.taints):
            if problem := syntax.qualified_name(taint.key) or syntax.reserved_key(taint.key):
                yield Problem(loc + ("taints", j, "key"), problem)
            if taint.value is not None and (problem := syntax.label_value(taint.value)):
                yield Problem(loc + ("taints", j, "value"), problem)
        if pool.gpu is not None and not syntax.GCP_NAME.fullmatch(pool.gpu.type):
            yield Problem(loc + ("gpu", "type"), f"{pool.gpu.type!r} is not a GPU type: lowercase letters, digits and '-' (e.g. nvidia-tesla-t4, nvidia-l4)")
