"""Wake on request for `min_replicas: 0`: the InterceptorRoute against the add-on's CRD schema, and the
path a request takes (client Service, front Service, interceptor, route, backend, pods) by structure."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest

from mlkit.render import wake
from mlkit.render.infra import addons_tfvars, render
from mlkit.render.k8s import SYSTEM_NAMESPACE
from mlkit.spec import loads
from tests.render.test_k8s import ALL, manifests, strict

SCHEMAS = Path(__file__).resolve().parent / "schemas"
CHARTS = Path(__file__).resolve().parents[1] / "terraform" / "data" / "charts"
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def spec_text(cloud: str = "aws", expose: str = "cluster", autoscaling: str = "{min_replicas: 0, scale_down_delay_s: 120, cold_start_timeout_s: 90}") -> str:
    pool = "m6i.large" if cloud == "aws" else "n2-standard-4"
    region = "us-east-1" if cloud == "aws" else "us-central1\ngcp_project: acme-ml"
    return (
        f"project: zero-demo\ncloud: {cloud}\nregion: {region}\ncluster: {{node_pools: [{{name: cpu, instance_type: {pool}}}]}}\n"
        f"apis:\n  - {{name: a, predictor: p.py:P, expose: {expose}, autoscaling: {autoscaling}}}\n  - {{name: b, predictor: p.py:P, expose: {expose}}}\n"
    )


def objects(text: str) -> dict[tuple[str, str | None, str], dict]:
    """Every rendered object by (kind, namespace, name)."""
    return {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for _, d in manifests(render(loads(text)))}


def interceptor_route_check(doc: dict) -> None:
    """The CRD's structural schema, strictly, and the CEL rules it carries (which jsonschema cannot run), by hand."""
    schema = json.loads((SCHEMAS / "http.keda.sh_v1beta1_interceptorroute.json").read_text())
    jsonschema.validate(doc, strict(schema))
    spec = doc["spec"]
    # x-kubernetes-validations of the CRD at v0.15.0, written out:
    assert ("port" in spec["target"]) != ("portName" in spec["target"]), "exactly one of 'port' or 'portName' must be set"
    assert {"concurrency", "requestRate"} & set(spec["scalingMetric"]), "at least one of 'concurrency' or 'requestRate' must be set"
    if "coldStart" in spec:
        assert {"fallback", "placeholder"} & set(spec["coldStart"])
    # Durations are Go durations (metav1.Duration): the API server refuses anything else.
    for value in spec.get("timeouts", {}).values():
        assert re.fullmatch(r"([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+", value), value


ROUTES = [d for d in ALL if d[2]["kind"] == "InterceptorRoute"]


def test_every_scale_to_zero_example_renders_a_route():
    assert {example for example, _, _ in ROUTES} == {"aws-accelerators", "gcp-l4", "gcp-tpu-v5e"}


@pytest.mark.parametrize(("example", "rel", "doc"), ROUTES, ids=lambda v: v if isinstance(v, str) else "")
def test_interceptor_routes_match_the_add_on_crd(example, rel, doc):
    interceptor_route_check(doc)


@pytest.mark.parametrize(
    "breaks",
    [
        lambda s: s["target"].update(namespace="x"),  # an unknown field
        lambda s: s["target"].update(port="80"),  # a wrong type
        lambda s: s["target"].update(portName="http"),  # port and portName both
        lambda s: s.pop("scalingMetric"),  # a required field
        lambda s: s["scalingMetric"].update(concurrency={"targetValue": 0}),  # below the minimum
        lambda s: s["timeouts"].update(readiness="90"),  # not a duration
    ],
)
def test_the_route_check_can_fail(breaks):
    doc = copy.deepcopy(ROUTES[0][2])
    breaks(doc["spec"])
    with pytest.raises((jsonschema.ValidationError, AssertionError)):
        interceptor_route_check(doc)


@pytest.mark.parametrize(("cloud", "expose"), [(c, e) for c in ("aws", "gcp") for e in ("cluster", "internal", "public")])
def test_a_request_finds_its_way_from_the_client_to_the_pods(cloud, expose):
    objs = objects(spec_text(cloud, expose))
    ns = "zero-demo"
    front_name = wake.front_service("a", ns)
    client = objs[("Service", ns, "a")]
    front = objs[("Service", SYSTEM_NAMESPACE, front_name)]
    backend = objs[("Service", ns, "a-backend")]
    route = objs[("InterceptorRoute", ns, "a")]
    deployment = objs[("Deployment", ns, "a")]
    interceptor_route_check(route)

    # In-cluster clients: the API's own name resolves to the front Service, port 80 leads to the interceptor.
    assert client["spec"] == {"type": "ExternalName", "externalName": f"{front_name}.{SYSTEM_NAMESPACE}.svc.cluster.local"}
    assert DNS_LABEL.match(front_name) and len(front_name) <= 63
    assert front["spec"]["selector"] == wake.INTERCEPTOR_SELECTOR
    assert front["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "proxy", "protocol": "TCP"}]
    # Clients of a load balancer: the front Service is it, as a plain API's Service would be.
    plain = objs[("Service", ns, "b")]
    for key in ("type", "loadBalancerClass"):
        assert front["spec"].get(key) == plain["spec"].get(key)
    assert front["metadata"].get("annotations") == plain["metadata"].get("annotations")
    assert front["spec"]["type"] == ("ClusterIP" if expose == "cluster" else "LoadBalancer")
    # The interceptor routes the API's in-cluster host names and the header mlkit predict sends.
    hosts = [h for rule in route["spec"]["rules"] for h in rule.get("hosts", [])]
    assert {f"a.{ns}", f"a.{ns}.svc", f"a.{ns}.svc.cluster.local"} <= set(hosts)
    header_rules = [rule for rule in route["spec"]["rules"] if "headers" in rule]
    assert header_rules == [{"headers": [{"name": wake.ROUTE_HEADER, "value": f"a.{ns}"}]}]  # no hosts: any host
    # ...to the backend Service, on a port it has, which selects the Deployment's pods.
    assert route["spec"]["target"] == {"service": "a-backend", "port": 80}
    assert [p["port"] for p in backend["spec"]["ports"]] == [80] and backend["spec"]["type"] == "ClusterIP"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert backend["spec"]["selector"].items() <= pod_labels.items()
    # The pods take requests from pods of the cluster (the interceptor) only, whatever the exposure.
    policy = objs[("NetworkPolicy", ns, "a")]
    assert policy["spec"]["ingress"][0]["from"] == [{"namespaceSelector": {}}]
    # The API without min_replicas 0 beside it keeps its plain path.
    assert ("InterceptorRoute", ns, "b") not in objs and ("Service", ns, "b-backend") not in objs


def test_the_scaled_object_wakes_on_held_requests_and_sleeps_after_the_delay():
    objs = objects(spec_text())
    so = objs[("ScaledObject", "zero-demo", "a")]
    route = objs[("InterceptorRoute", "zero-demo", "a")]
    assert so["spec"]["minReplicaCount"] == 0
    assert so["spec"]["cooldownPeriod"] == 120  # scale_down_delay_s: idle time before 1 -> 0
    assert route["spec"]["timeouts"]["readiness"] == "90s"  # cold_start_timeout_s
    assert route["spec"]["scalingMetric"] == {"concurrency": {"targetValue": 4}}  # target_in_flight, as the prometheus trigger
    kinds = [t["type"] for t in so["spec"]["triggers"]]
    assert kinds == ["prometheus", "external-push"]
    push = so["spec"]["triggers"][1]["metadata"]
    assert push["interceptorRoute"] == route["metadata"]["name"]  # the scaler looks it up in the ScaledObject's namespace
    assert route["metadata"]["namespace"] == so["metadata"]["namespace"]
    # The scaler's Service as the chart names it: <chart>-<scaler.service>.<namespace>:<scaler.grpcPort>.
    chart = json.loads((CHARTS / "keda-add-ons-http.json").read_text())
    assert {"scaler.service", "scaler.grpcPort", "interceptor.proxy.port"} <= set(chart["keys"])
    assert push["scalerAddress"] == f"keda-add-ons-http-external-scaler.{SYSTEM_NAMESPACE}:9090"
    plain = objs[("ScaledObject", "zero-demo", "b")]
    assert "cooldownPeriod" not in plain["spec"] and len(plain["spec"]["triggers"]) == 1


def test_the_add_on_is_installed_only_when_an_api_scales_to_zero():
    assert addons_tfvars(loads(spec_text()))["enable_http_add_on"] is True
    assert addons_tfvars(loads(spec_text(autoscaling="{min_replicas: 1}")))["enable_http_add_on"] is False
    gcp = render(loads(spec_text("gcp")))
    assert json.loads(gcp["infra/terraform/addons/mlkit.auto.tfvars.json"])["enable_http_add_on"] is True
    assert 'count = var.enable_http_add_on ? 1 : 0' in gcp["infra/terraform/addons/serving.tf"]
    assert 'variable "enable_http_add_on"' in gcp["infra/terraform/addons/variables.tf"]


def test_front_service_names_are_labels_and_tell_ambiguous_pairs_apart():
    assert wake.front_service("a-b", "c") != wake.front_service("a", "b-c")
    longest = wake.front_service("a" * 40, "b" * 40)
    assert len(longest) <= 63 and DNS_LABEL.match(longest)
    assert wake.front_service("a" * 40, "b" * 40) != wake.front_service("a" * 40, "b" * 39 + "c")
    assert DNS_LABEL.match(wake.front_service("a" * 39 + "-x", "n" * 16))  # a cut never ends in '-'

