"""Wake on request: the path in front of an API with `min_replicas: 0`, through the KEDA HTTP add-on.

With no replica running, nothing reports load, so something outside the API must hold the first
request and ask for a replica. mlkit uses the KEDA HTTP add-on (kedacore/http-add-on, v0.15): its
interceptor proxies every request of the API, counts them, and holds a request while the target
Service has no ready endpoint; its external scaler hands that count to KEDA through an
`external-push` trigger, which wakes the Deployment from zero.

What mlkit renders for such an API (k8s.py lays it out, the templates name each object):
- `InterceptorRoute <api>` (http.keda.sh/v1beta1; HTTPScaledObject v1alpha1 is deprecated since
  v0.14): requests for the API go to `<api>-backend`, held up to `cold_start_timeout_s`
  (`timeouts.readiness`), and counted per replica against `target_in_flight`.
- `Service <api>-backend` (ClusterIP): the pods, the interceptor's target.
- `Service <api>`: the API's own name and exposure (ClusterIP, or the load balancer with the type,
  class and annotations a plain API's Service has), selecting the project's wake nginx
  (`mlkit-wake-fallback`, below) on the API's own front port.
- The API's ScaledObject gains the `external-push` trigger and `cooldownPeriod`.

The front: one interceptor fleet serves every route of the cluster, and it routes on the request
alone (pkg/routing/tablememory.go: exact host, then wildcard, then catch-all, each filtered by header
matches). A load balancer in front of the interceptor itself would let its clients pick any route
of the cluster by Host or header: a request that came in through a public API's load balancer could
reach an `expose: cluster` API of any namespace (issue 22). So nothing but the wake nginx selects the
interceptor's pods: the nginx listens on one front port per API (`front_ports`), and each port's
server proxies to the interceptor's Service with `Host: <api>.<ns>` and `X-Mlkit-Api: <api>.<ns>`
set by nginx, whatever the client sent (nginx drops a client's own headers of those names and
ignores header names with underscores). The port a request arrived on is its API, and no header can
change that. In-cluster clients that call `http://<api>/` from the API's namespace (Host `<api>`,
which no route could list without clashing with another namespace's API of the same name) land on
the same port and are pinned the same way. The interceptor's own Service stays inside the cluster,
where any pod may already reach any `expose: cluster` API.

The route still lists the API's in-cluster host names (`<api>.<ns>`, `<api>.<ns>.svc`,
`<api>.<ns>.svc.cluster.local`; the port is stripped) and the header `X-Mlkit-Api: <api>.<ns>`: the
front sets both, and a pod that talks to the interceptor's Service directly names its API either way.

Past the bound: 503 with Retry-After, from a fallback. The interceptor's EndpointResolver
(interceptor/middleware/endpoint_resolver.go, v0.15.0, ServeHTTP lines 47-93) waits for a ready
endpoint of the target with `WaitForReady` (pkg/k8s/ready_endpoints_cache.go lines 55-99), which
returns only when one is ready or when the route's `timeouts.readiness` expires; only then, if the
route has `coldStart.fallback`, it swaps the upstream for the fallback Service (lines 82-93) and
forwards the request there. Without a fallback it answers 504 `Gateway Timeout` with no Retry-After
(lines 69-79). It answers 504 past the bound even with a fallback when the request's own deadline
has gone too (lines 82-88): the chart leaves that deadline unset (`interceptor.requestTimeout`,
kedacore/charts http-add-on 0.15.0, so KEDA_HTTP_REQUEST_TIMEOUT keeps its default, none) and the
routes set no `timeouts.request`. So the fallback is used after the wait, never instead of it, and
mlkit sets it:
- `Service mlkit-wake-fallback` (+ Deployment, ConfigMap, PodDisruptionBudget, NetworkPolicy) in the
  project's namespace, rendered only when an API of the project scales to zero: one nginx
  (nginx-unprivileged, a pinned release) whose `nginx.conf` answers every request 503 with
  `Retry-After` and `{"error": "<api> is starting from zero; retry after N s", "request_id": ...}`,
  the runtime's error shape. It tells the API by the request as the interceptor does (the API's host
  names, else `X-Mlkit-Api`; unknown requests get "the API" and the default pause).
- Every InterceptorRoute's `coldStart.fallback` names it, port 80. The add-on resolves the
  fallback Service in the route's namespace (`<name>.<route namespace>:<port>`,
  interceptor/middleware/routing.go lines 70-79 and 118-132), so it sits beside the routes rather
  than in `mlkit-system`.
`coldStart.placeholder` would answer at once while there is no ready endpoint, which defeats the
wait, so it stays unset.

Retry-After: `min(10, scale_down_delay_s)` seconds. A retry goes through the interceptor again,
which holds it up to `cold_start_timeout_s` and forwards it the moment a replica is ready, so a
longer pause only adds latency (the replica may come up while the client sleeps) and a client that
honours it still makes at most one request per `cold_start_timeout_s` + 10 s. The pause must also
end before KEDA's `cooldownPeriod` (`scale_down_delay_s`) runs out: nothing is held during it, and
once the cooldown passes without a held request KEDA scales the starting replica back to zero.

`mlkit predict` calls `Service <api>` through the API server's proxy, as for any API, and waits
`cold_start_timeout_s` + 30 s for its answer (its client's default is 30 s), so it gets the
fallback's 503 and prints it on one line with the seconds.

While the fallback pod itself is down (one replica; a node drain moves it) the interceptor cannot
reach it and answers 502 (interceptor/handler/upstream.go, its ErrorHandler).

The cost: two pods (the front is on the path of every request) of 50m CPU and 32 MiB requested
while an API of the project scales to zero, on nodes without an accelerator (no accelerator
toleration, and a preference for `mlkit.dev/accelerator: none` nodes). The interceptor itself is a Go binary no package index here ships, so the tests run
the rendered nginx.conf in a real nginx and check the route against the add-on's CRD schema, but
not the interceptor's hand-off to the fallback.
"""

from __future__ import annotations

from .. import placement
from ..spec import engines
from ..spec.schema import Api

# The add-on's chart (kedacore/charts http-add-on) names its Services after the chart, not the
# release: keda-add-ons-http-interceptor-proxy, keda-add-ons-http-external-scaler.
CHART = "keda-add-ons-http"
SCALER_PORT = 9090  # scaler.grpcPort
# The interceptor pods' labels: app.kubernetes.io/{component,name} and the chart's matchLabels
# (part-of is the chart name, instance the release name: serving.tf.j2 names the release after the chart).
INTERCEPTOR_SELECTOR = {
    "app.kubernetes.io/component": "interceptor",
    "app.kubernetes.io/name": "http-add-on",
    "app.kubernetes.io/instance": CHART,
}
ROUTE_HEADER = "X-Mlkit-Api"
BACKEND_SUFFIX = "-backend"
# The answer past the cold-start bound (see the module docstring). nginx-unprivileged 1.30.4 is the
# stable release of nginx/docker-nginx-unprivileged (commit 8b44229, 2026-07-15); alpine-slim has no
# extra modules. Its user is 101; the pod runs as mlkit's 10001, which the config allows (it writes
# only under /tmp).
FALLBACK = "mlkit-wake-fallback"
FALLBACK_IMAGE = "docker.io/nginxinc/nginx-unprivileged:1.30.4-alpine-slim"
FALLBACK_PORT = 8080
FALLBACK_RESOURCES = {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "64Mi"}}
FALLBACK_REPLICAS = 2  # it is the front of every API at zero, not only the answer past the bound
# One front port per API at zero, from here in the order of the API names.
FRONT_PORT_BASE = 8081
# The interceptor's proxy Service (the chart's keda-add-ons-http-interceptor-proxy) and its pods' port
# (interceptor.proxy.port, 8080): the only way into the interceptor, from the fronts.
INTERCEPTOR_PROXY_PORT = 8080
# How long nginx waits between two reads from the interceptor: the hold, then the API's answer (the
# interceptor's own header deadline for a predictor, 300 s; an engine's completion may take far longer).
FRONT_ANSWER_S = {"runtime": 300, "engine": 3600}
RETRY_AFTER_S = 10
# Before an engine's own start: a node from zero (EKS and GKE: one to three minutes) and its image
# (the vLLM images are 8 to 20 GB). COLD_START_MAX_S is the spec's bound on cold_start_timeout_s.
ENGINE_NODE_AND_IMAGE_S = 300
COLD_START_MAX_S = 3600
CLIENT_MARGIN_S = 30  # past the hold: the fallback's answer, through the interceptor and the API server's proxy
FALLBACK_CHECKOV_SKIPS = {
    "checkov.io/skip1": "CKV_K8S_15=A pinned nginx release; a rebuild of the same tag (base image fixes) answers the same fixed 503",
    "checkov.io/skip2": "CKV_K8S_43=Pinned by release tag (cli/render/wake.py); replace it with a digest there to pin further",
}


def scales_to_zero(api: Api) -> bool:
    """Whether requests need the holding path: an async API's front always runs (its workers scale to zero on the queue)."""
    return api.autoscaling.min_replicas == 0 and api.kind != "async"


def route_value(api: str, namespace: str) -> str:
    """The value of the routing header, and the shortest in-cluster host of the API: `<api>.<ns>`."""
    return f"{api}.{namespace}"


def hosts(api: str, namespace: str) -> list[str]:
    short = route_value(api, namespace)
    return [short, f"{short}.svc", f"{short}.svc.cluster.local"]


def front_ports(apis: list[Api]) -> dict[str, int]:
    """The wake nginx's port for each API at zero (no canary: the rules refuse the pair), by name."""
    names = sorted(api.name for api in apis if scales_to_zero(api) and api.canary is None)
    return {name: FRONT_PORT_BASE + i for i, name in enumerate(names)}


def interceptor_proxy(system_namespace: str) -> str:
    return f"{CHART}-interceptor-proxy.{system_namespace}.svc.cluster.local:{INTERCEPTOR_PROXY_PORT}"


def front_read_timeout_s(api: Api) -> int:
    return cold_start_timeout_s(api) + FRONT_ANSWER_S["engine" if api.engine is not None else "runtime"]


def scaler_address(system_namespace: str) -> str:
    return f"{CHART}-external-scaler.{system_namespace}:{SCALER_PORT}"


def retry_after_s(api: Api) -> int:
    """Seconds a client should wait before retrying a request that outwaited the cold start (module docstring)."""
    return min(RETRY_AFTER_S, api.autoscaling.scale_down_delay_s)


def header_variable(header: str) -> str:
    """nginx's variable part for a request header: `X-Mlkit-Api` is `$http_x_mlkit_api`."""
    return header.lower().replace("-", "_")


def client_timeout_s(api: Api) -> float:
    """How long `mlkit predict` waits for an API that scales to zero: the longest hold, then the fallback's answer."""
    return cold_start_timeout_s(api) + CLIENT_MARGIN_S


def response_header_timeout(api: Api) -> str | None:
    """The route's `timeouts.responseHeader`: None keeps the interceptor's (KEDA_HTTP_RESPONSE_HEADER_TIMEOUT, 300 s).

    An engine sends no header of a non-streamed completion until the last token, which may take longer
    than 300 s: the interceptor answered 504 while vLLM was still generating. "0s" lifts the deadline on
    that route (operator/apis/http/v1beta1/interceptorroute_types.go, v0.15.0); the engine bounds a
    request itself (max_tokens within max_model_len), and its liveness probe ends a hung one.
    """
    return "0s" if api.engine is not None else None


def cold_start_timeout_s(api: Api) -> int:
    """How long the interceptor holds a request while the first replica starts.

    The spec's value when it gives one. An engine API's default covers its own startup budget (the
    startup probe's) and the node and image that come before it; the predictor default (300 s) is below
    every engine's budget, so the first request after idling would always get the fallback's 503.
    """
    auto = api.autoscaling
    if api.engine is None or "cold_start_timeout_s" in auto.model_fields_set:
        return auto.cold_start_timeout_s
    kind, _ = placement.api_demand(api)
    size_gb = api.serving.model_size_gb if api.serving else 16.0
    return min(COLD_START_MAX_S, max(auto.cold_start_timeout_s, engines.startup_budget_s(kind, size_gb) + ENGINE_NODE_AND_IMAGE_S))
