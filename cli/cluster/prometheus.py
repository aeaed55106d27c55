"""Ask the project's Prometheus instant queries through the Kubernetes API server's service proxy.

The add-ons stack installs Prometheus (the prometheus-community chart, release `prometheus`) as the
ClusterIP Service `prometheus-server` in `mlkit-system`, port `http`: nothing outside the cluster
reaches it directly, but the API server proxies to it for anyone allowed `get` on `services/proxy`
there, with the credentials mlkit already uses. No port-forward, no extra exposure.

Two kinds of failure are kept apart. The API server answering instead of Prometheus (no such
Service, no endpoints, no right to the proxy) means Prometheus cannot be reached at all: one error
naming what is missing and the fix. Prometheus answering with an error, or with no series, for one
query is that query's problem only: its value is None and the caller shows "-".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import httpx

from ..errors import UserError
from ..render.runtime_view import SYSTEM_NAMESPACE
from .client import Cluster, _message

SERVICE = "prometheus-server"  # the chart's server Service: `<release>-server`, release `prometheus`
PORT = "http"  # the name of its port 80 (to the server's 9090)
QUERY = "api/v1/query"


class Unreachable(UserError):
    """Prometheus cannot be reached through the API server; the message says what is missing and the fix."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class Prometheus:
    def __init__(self, cluster: Cluster, namespace: str = SYSTEM_NAMESPACE, service: str = SERVICE, port: str = PORT):
        self.cluster, self.namespace, self.service, self.port = cluster, namespace, service, port

    @property
    def where(self) -> str:
        return f"Service {self.service} in namespace {self.namespace}"

    def query(self, expr: str) -> list[Sample] | None:
        """The series of an instant query, without NaN and infinite values; None when Prometheus answers an error.

        Raises Unreachable when the answer comes from the API server rather than from Prometheus.
        """
        response = self.cluster.proxy_get(self.namespace, f"{self.service}:{self.port}", QUERY, {"query": expr})
        body = _prometheus_body(response)
        if body is None:
            raise self._unreachable(response)
        if body.get("status") != "success":
            return None  # a bad or failing query (Prometheus says why in body["error"]): this cell only
        data = body.get("data")
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list):
            return None
        samples = []
        for series in result:
            try:
                value = float(series["value"][1])
                labels = {str(k): str(v) for k, v in dict(series.get("metric") or {}).items()}
            except (KeyError, IndexError, TypeError, ValueError):
                continue  # not a vector sample (a scalar or matrix answer): nothing a cell can show
            if math.isfinite(value):
                samples.append(Sample(labels, value))
        return samples

    def _unreachable(self, response: httpx.Response) -> Unreachable:
        reason = _message(response) or response.reason_phrase
        status = response.status_code
        if status == 404:
            return Unreachable(
                f"Prometheus is not installed: the Kubernetes API has no {self.where} ({status}: {reason}); "
                "install the add-ons with `mlkit apply --only addons`"
            )
        if status in (401, 403):
            return Unreachable(
                f"the Kubernetes API refused to proxy to Prometheus ({status}: {reason}); "
                f"your identity needs `get` on `services/proxy` in namespace {self.namespace} (a Role and RoleBinding, or cluster admin)"
            )
        return Unreachable(
            f"Prometheus does not answer through the Kubernetes API ({status}: {reason}); "
            f"check its pod with `kubectl -n {self.namespace} get pods -l app.kubernetes.io/name=prometheus`, "
            "or install the add-ons with `mlkit apply --only addons`"
        )


def _prometheus_body(response: httpx.Response) -> dict | None:
    """Prometheus' own JSON answer (`{"status": "success"|"error", ...}`), or None when something else answered."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("kind") == "Status" or body.get("status") not in ("success", "error"):
        return None
    return body
