"""The Kubernetes manifests of every API: `infra/k8s/<api>/` and the project's shared objects.

All decisions are made in Python into plain values, in the view of each API (runtime_view.py for the
predictor runtime, engine_view.py for an engine); here, which objects each API gets; the templates under
`templates/k8s/` only lay them out as YAML that a reviewer reads top to bottom.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import PurePosixPath
from typing import Any

from .. import clouds, labels
from ..spec.schema import Api, Spec
from . import asyncapi, automode, dashboard, models, nodepools, schedule, wake
from .engine_view import ENGINE_OBJECTS, engine_view
from .facts import Facts
from .jinja import HEADER, new_environment
from .runtime_view import FETCH_IMAGE, RUN_AS, SYSTEM_NAMESPACE, api_view, config_hash, prometheus_query

K8S = PurePosixPath("infra/k8s")
SHARED = K8S / "_shared"  # API names are DNS labels, so no API folder can be called this


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


@functools.cache
def template_environment() -> Any:
    """The Jinja environment of the manifests, with the filters and globals their templates use: one per
    process, as jinja.environment() is, so that each template is compiled once."""
    env = new_environment()
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
        "labels": owner_labels(spec),
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
    # EKS Auto Mode's pools build on Karpenter's NodePool (automode.py imports nodepools.py), so the choice is made here.
    files |= (automode.render if automode.enabled(spec) else nodepools.render)(spec, HEADER, SHARED)
    woken: list[Api] = []
    for api in spec.apis:
        if api.kind == "async":


            view = api_view(spec, api, facts)
            files |= asyncapi.render(spec, api, facts, env, view, models.objects(view))
            continue
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
            if api.task is not None and api.task.schedule is not None:
                files[str(K8S / api.name / "cronjob.yaml")] = schedule.render(spec, api, facts, env)
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
        "labels": {**owner_labels(spec), labels.NAME: wake.FALLBACK},
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
