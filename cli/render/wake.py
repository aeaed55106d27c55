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

What the interceptor answers when no replica is ready within `cold_start_timeout_s`
(interceptor/middleware/endpoint_resolver.go, v0.15.0): 504 Gateway Timeout with the body
`Gateway Timeout` and no Retry-After header. A per-route Retry-After would need `coldStart.fallback`
(a Service that answers instead), which means a pod that always runs; mlkit does not add one.
`coldStart.placeholder` answers at once instead of holding, which defeats the wait, so neither is set.
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


def scales_to_zero(api: Api) -> bool:
    return api.autoscaling.min_replicas == 0


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
