"""API discovery: what the server's documents say is taken as data (a plural that would change the
request path is ignored), and an answer that is not a discovery document is one line."""

from __future__ import annotations

import pytest

from mlkit.cluster.discovery import Discovery
from mlkit.errors import ToolError

# Shapes as a real API server writes them (kubectl get --raw /api, /apis, /apis/acme.dev/v1).
DOCS = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.0.0.1:6443"}]},
    "/apis": {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {
                "name": "acme.dev",
                "versions": [{"groupVersion": "acme.dev/v1beta1", "version": "v1beta1"}, {"groupVersion": "acme.dev/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "acme.dev/v1", "version": "v1"},
            },
            "not a group",
        ],
    },
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod", "verbs": ["get", "list"]},
            {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]},
            {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node", "verbs": ["get"]},
        ],
    },
    "/apis/acme.dev/v1": {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": "acme.dev/v1",
        "resources": [
            {"name": "../../../api/v1/namespaces/kube-system/secrets", "namespaced": True, "kind": "Widget"},
            {"name": "gadgets", "namespaced": "yes", "kind": "Gadget"},
            {"name": "sprockets", "namespaced": False, "kind": "Sprocket; rm"},
            7,
        ],
    },
    "/apis/acme.dev/v1beta1": {
        "kind": "APIResourceList",
        "groupVersion": "acme.dev/v1beta1",
        "resources": [{"name": "widgets", "namespaced": True, "kind": "Widget"}],
    },
}


def test_documents_are_read_once_and_their_entries_checked():
    asked: list[str] = []

    def get(path):
        asked.append(path)
        return DOCS.get(path)

    discovery = Discovery(get)
    pod = discovery.find("v1", "Pod")
    assert (pod.plural, pod.namespaced, pod.collection("ns")) == ("pods", True, "/api/v1/namespaces/ns/pods")
    assert discovery.find("v1", "Node").collection("ns") == "/api/v1/nodes"
    assert discovery.find("acme.dev/v1", "Widget") is None, "a plural that is not a path segment is ignored"
    assert discovery.find("acme.dev/v1", "Sprocket; rm") is None
    assert discovery.find("acme.dev/v1", "Gadget").namespaced is False, "only `true` is namespaced"
    assert discovery.find_in_group("acme.dev", "Widget").api_version == "acme.dev/v1beta1"
    assert discovery.groups()["acme.dev"] == ["v1", "v1beta1"], "the preferred version first"
    assert discovery.why_not("acme.dev/v1", "Widget") == "the cluster serves Widget as acme.dev/v1beta1, not acme.dev/v1; change apiVersion"
    assert discovery.find("batch/v1", "Job") is None
    assert sorted(asked) == sorted(set(asked)) == ["/api", "/api/v1", "/apis", "/apis/acme.dev/v1", "/apis/acme.dev/v1beta1"]


@pytest.mark.parametrize("body", [b"<html>login</html>", b"[1, 2]"], ids=["not-json", "not-a-document"])
def test_an_answer_that_is_not_a_discovery_document_is_one_line(cluster, k8s, body):
    k8s.emulator["get /apis"] << body
    with pytest.raises(
        ToolError,
        match=r"^the Kubernetes API at http://127.0.0.1:\d+ answered GET "
        r"/apis with something that is not (JSON|a discovery document)$",
    ):
        cluster.discovery.groups()
