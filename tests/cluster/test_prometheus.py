"""The Prometheus reader through the API server's service proxy: the emulator forwards to the session's
real Prometheus (tests/scraped.py), or answers as an API server does when it cannot."""

from __future__ import annotations

import kmock
import pytest

from mlkit.cluster.prometheus import Prometheus, Unreachable

QUERY_PATH = "/api/v1/namespaces/mlkit-system/services/prometheus-server:http/proxy/api/v1/query"


def test_series_through_the_proxy_and_prometheus_errors_are_none(cluster, k8s, scraped_runtime):
    k8s.proxy("mlkit-system", "prometheus-server:http", scraped_runtime.prometheus)
    up = Prometheus(cluster).query('up{job="kubernetes-pods"}')
    assert up and up[0].value == 1 and up[0].labels["mlkit_dev_api"] == "sentiment"
    assert Prometheus(cluster).query("no_such_metric_anywhere") == []
    assert Prometheus(cluster).query("sum(") is None  # Prometheus' own 400 (a parse error): that cell, not the watch
    assert Prometheus(cluster).query("vector(0) / 0") == []  # NaN is no value


def test_no_right_to_the_proxy_names_the_permission(cluster, k8s):
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": 403,
        "reason": "Forbidden",
        "message": 'services "prometheus-server:http" is forbidden: User "dev" cannot get resource "services/proxy" in the namespace "mlkit-system"',
    }
    k8s.emulator[f"get {QUERY_PATH}"] << kmock.Response(status=403, payload=status)
    with pytest.raises(Unreachable) as refused:
        Prometheus(cluster).query("up")
    assert "(403: services" in refused.value.message and "`get` on `services/proxy` in namespace mlkit-system" in refused.value.message


def test_something_else_answering_is_not_taken_for_prometheus(cluster, k8s):
    k8s.emulator[f"get {QUERY_PATH}"] << kmock.Response(status=200, payload=b"<html>a login page</html>")
    with pytest.raises(Unreachable) as wrong:
        Prometheus(cluster).query("up")
    assert "Prometheus does not answer through the Kubernetes API (200: <html>a login page</html>)" in wrong.value.message
