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
- `Service <api>-<ns>-<hash>` in the add-on's namespace, selecting the interceptor pods, port 80 to the
  interceptor's proxy port: ClusterIP for `expose: cluster`, else the API's load balancer (type,
  class and annotations as a plain API's Service has them). It sits beside the interceptor because
  a Service selects pods of its own namespace only.
- `Service <api>` (ExternalName to the front Service): in-cluster clients keep calling
  `http://<api>.<ns>.svc/...` on port 80; DNS answers with the front Service, whose port 80 leads
  to the interceptor. (An ExternalName Service maps no ports, hence the front Service.)
- The API's ScaledObject gains the `external-push` trigger and `cooldownPeriod`.

How the interceptor tells APIs apart: one interceptor fleet serves every route of the cluster, so
it routes on the request (pkg/routing/tablememory.go: exact host, then wildcard, then catch-all,
each filtered by header matches). A route matches the in-cluster host names of the API
(`<api>.<ns>`, `<api>.<ns>.svc`, `<api>.<ns>.svc.cluster.local`; the port is stripped), or any
host with the header `X-Mlkit-Api: <api>.<ns>`. The header is what `mlkit predict` sends, since
the API server's service proxy sets its own Host, and what clients of a load balancer send: the
load balancer's DNS name is known only after apply, and every such load balancer leads to the
same interceptor pods, so the host alone cannot say which API was meant.

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

`mlkit predict` waits `cold_start_timeout_s` + 30 s for its answer (its client's default is 30 s),
so it gets the fallback's 503 and prints it on one line with the seconds.

While the fallback pod itself is down (one replica; a node drain moves it) the interceptor cannot
reach it and answers 502 (interceptor/handler/upstream.go, its ErrorHandler).

The cost: one pod of 10m CPU and 16 MiB requested while an API of the project scales to zero, on
a node without an accelerator (it has no accelerator toleration, and prefers `mlkit.dev/accelerator:
none` nodes). The interceptor itself is a Go binary no package index here ships, so the tests run
the rendered nginx.conf in a real nginx and check the route against the add-on's CRD schema, but
not the interceptor's hand-off to the fallback.
"""

from __future__ import annotations

import hashlib

from ..spec.schema import Api

# The add-on's chart (kedacore/charts http-add-on) names its Services after the chart, not the
# release: keda-add-ons-http-interceptor-proxy, keda-add-ons-http-external-scaler.
CHART = "keda-add-ons-http"
SCALER_PORT = 9090  # scaler.grpcPort
PROXY_PORT_NAME = "proxy"  # the interceptor container's port name (interceptor.proxy.port, 8080)
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
FALLBACK_RESOURCES = {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "32Mi"}}
RETRY_AFTER_S = 10
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


def front_service(api: str, namespace: str) -> str:
    """The API's Service in the add-on's namespace: `<api>-<ns>-<hash>`, a DNS label of at most 63 characters.

    Every project's front Services share that namespace. `<api>-<ns>` alone is ambiguous (API
    `a-b` of namespace `c` and API `a` of `b-c`) and can pass 63 characters (both are labels of up
    to 40), so a hash of the pair keeps it unique and the readable part is cut to fit.
    """
    digest = hashlib.sha256(f"{namespace}/{api}".encode()).hexdigest()[:6]
    return f"{f'{api}-{namespace}'[:56].rstrip('-')}-{digest}"


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
    return api.autoscaling.cold_start_timeout_s + CLIENT_MARGIN_S
