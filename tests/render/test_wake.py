"""Wake on request for `min_replicas: 0`: the InterceptorRoute against the add-on's CRD schema, the
path a request takes (client Service, front Service, interceptor, route, backend, pods) by structure,
and the cold-start fallback: its objects by structure, and its rendered nginx.conf in a real nginx.

Not modelled: the interceptor itself. Its routing (host first, else the routing header) is this
test's reading of the add-on's source at v0.15.0, so a change in how the interceptor routes would
pass here."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
import yaml

from mlkit import labels
from mlkit.render import wake
from mlkit.render.infra import addons_tfvars, render
from mlkit.render.k8s import SYSTEM_NAMESPACE
from mlkit.spec import loads
from tests.conftest import free_port
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
        service = spec["coldStart"].get("fallback", {}).get("service", {})
        assert not service or ("port" in service) != ("portName" in service), "exactly one of 'port' or 'portName' must be set"
    # Durations are Go durations (metav1.Duration): the API server refuses anything else.
    for value in spec.get("timeouts", {}).values():
        assert re.fullmatch(r"([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+", value), value


ROUTES = [d for d in ALL if d[2]["kind"] == "InterceptorRoute"]
FALLBACK_FILE = "wake-fallback.yaml"


def test_every_scale_to_zero_example_renders_a_route_and_the_fallback():
    assert {example for example, _, _ in ROUTES} == {"aws-accelerators", "gcp-l4", "gcp-tpu-v5e"}
    fallbacks = {example for example, rel, _ in ALL if rel == f"infra/k8s/_shared/{FALLBACK_FILE}"}
    assert fallbacks == {"aws-accelerators", "gcp-l4", "gcp-tpu-v5e"}


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
        lambda s: s["coldStart"]["fallback"]["service"].update(portName="http"),  # the fallback's port twice
        lambda s: s["coldStart"]["fallback"]["service"].update(namespace="mlkit-system"),  # the add-on has no such field
        lambda s: s["coldStart"]["fallback"].pop("service"),  # a required field
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



def test_past_the_bound_the_route_falls_back_to_a_pod_that_answers():
    """The route's coldStart.fallback leads to the nginx whose config the ConfigMap holds."""
    objs = objects(spec_text())
    ns = "zero-demo"
    route = objs[("InterceptorRoute", ns, "a")]
    assert set(route["spec"]["coldStart"]) == {"fallback"}  # a placeholder would answer at once instead of holding
    ref = route["spec"]["coldStart"]["fallback"]["service"]
    # The add-on resolves the fallback in the route's namespace (routing.go): a Service there, on a port it has...
    service = objs[("Service", ns, ref["name"])]
    port = next(p for p in service["spec"]["ports"] if p["port"] == ref["port"])
    deployment = objs[("Deployment", ns, ref["name"])]
    pod = deployment["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert deployment["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    container = pod["spec"]["containers"][0]
    assert port["targetPort"] in [p["name"] for p in container["ports"]]
    # ...whose nginx reads the ConfigMap's nginx.conf, which listens on the container's port.
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert container["command"][-2:] == ["-c", f"{mount['mountPath']}/nginx.conf"]
    configmap = next(v for v in pod["spec"]["volumes"] if v["name"] == "config")["configMap"]["name"]
    conf = objs[("ConfigMap", ns, configmap)]["data"]["nginx.conf"]
    assert f"listen {container['ports'][0]['containerPort']};" in conf
    # Read-only root: everything nginx writes is under the tmp volume.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    written = re.findall(r"^\s*(?:pid|\w+_temp_path) (\S+);$", conf, re.M)
    assert len(written) == 6 and all(path.startswith("/tmp/") for path in written)
    # Small, and never on an accelerator node: no vendor toleration, no pool selector.
    assert container["resources"] == wake.FALLBACK_RESOURCES
    assert "tolerations" not in pod["spec"] and "nodeSelector" not in pod["spec"]
    # Only the interceptor pods reach it, and it reaches nothing.
    policy = objs[("NetworkPolicy", ns, ref["name"])]
    assert policy["spec"]["podSelector"]["matchLabels"] == service["spec"]["selector"]
    system = {"kubernetes.io/metadata.name": SYSTEM_NAMESPACE}
    interceptor = {"namespaceSelector": {"matchLabels": system}, "podSelector": {"matchLabels": wake.INTERCEPTOR_SELECTOR}}
    assert policy["spec"]["ingress"][0]["from"] == [interceptor]
    assert policy["spec"]["egress"] == [] and set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert objs[("PodDisruptionBudget", ns, ref["name"])]["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    # Apply owns and prunes it with the project's objects.
    assert deployment["metadata"]["labels"].items() >= labels.owner_labels("zero-demo").items()


def test_the_fallback_exists_only_while_an_api_scales_to_zero_and_rolls_with_its_config():
    files = render(loads(spec_text()))
    assert f"infra/k8s/_shared/{FALLBACK_FILE}" in files
    assert f"infra/k8s/_shared/{FALLBACK_FILE}" not in render(loads(spec_text(autoscaling="{min_replicas: 1}")))

    def config_hash(text: str) -> str:
        deployment = objects(text)[("Deployment", "zero-demo", wake.FALLBACK)]
        return deployment["spec"]["template"]["metadata"]["annotations"][labels.CONFIG_HASH]

    # nginx reads its config once: a new Retry-After must roll the pod.
    assert config_hash(spec_text()) != config_hash(spec_text(autoscaling="{min_replicas: 0, scale_down_delay_s: 5}"))


def test_retry_after_ends_before_the_cooldown_drops_the_starting_replica():
    assert wake.retry_after_s(loads(spec_text()).apis[0]) == wake.RETRY_AFTER_S == 10
    assert wake.retry_after_s(loads(spec_text(autoscaling="{min_replicas: 0, scale_down_delay_s: 4}")).apis[0]) == 4
    # mlkit predict outwaits the hold (cold_start_timeout_s 90 here), to get the fallback's answer.
    assert wake.client_timeout_s(loads(spec_text()).apis[0]) > 90


# The fallback's nginx.conf in a real nginx. What the test substitutes, and only that: the listen
# address (127.0.0.1 and a free port instead of 8080), the pid file and the five temporary paths (a
# test folder instead of /tmp); every other line, and the Deployment's command, run as rendered.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


@contextlib.contextmanager
def fallback_server(manifest: str, where: Path) -> Iterator[str]:
    """Run the fallback of a rendered `wake-fallback.yaml` on loopback; yield its base URL."""
    if NGINX is None:
        pytest.skip("nginx is not installed (scripts/setup.sh installs nginx-light from apt when run as root)")
    docs = {d["kind"]: d for d in yaml.safe_load_all(manifest) if d}
    conf = docs["ConfigMap"]["data"]["nginx.conf"]
    command = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["command"]
    where.mkdir(parents=True, exist_ok=True)
    port = free_port()
    for old, new in {f"listen {wake.FALLBACK_PORT};": f"listen 127.0.0.1:{port};", "pid /tmp/nginx.pid;": f"pid {where}/nginx.pid;"}.items():
        assert conf.count(old) == 1, old
        conf = conf.replace(old, new)
    conf, temp_paths = re.subn(r"^(\s*\w+_temp_path) /tmp/", rf"\1 {where}/", conf, flags=re.M)
    assert temp_paths == 5 and "/tmp/" not in conf.replace(str(where), "")
    (where / "nginx.conf").write_text(conf)
    assert command[0] == "nginx" and command[-2] == "-c"
    log = open(where / "nginx.log", "w")
    proc = subprocess.Popen([NGINX, *command[1:-1], str(where / "nginx.conf")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"nginx did not start: {(where / 'nginx.log').read_text()}")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


ZERO_APIS = """project: zero-demo
cloud: aws
region: us-east-1
cluster: {node_pools: [{name: cpu, instance_type: m6i.large}]}
apis:
  - {name: a, predictor: p.py:P, autoscaling: {min_replicas: 0}}
  - {name: b, predictor: p.py:P, expose: public, autoscaling: {min_replicas: 0, scale_down_delay_s: 4}}
  - {name: c, predictor: p.py:P}
"""


@pytest.mark.parametrize(
    ("headers", "api", "retry_after"),
    [
        ({wake.ROUTE_HEADER: "a.zero-demo"}, "a", 10),  # mlkit predict and load balancer clients: the header
        ({wake.ROUTE_HEADER: "b.zero-demo"}, "b", 4),  # each API's own pause
        ({"Host": "a.zero-demo.svc.cluster.local:80"}, "a", 10),  # in-cluster clients: the host, port stripped
        ({"Host": "B.Zero-Demo.svc"}, "b", 4),  # host names are case-insensitive
        ({"Host": "a.zero-demo", wake.ROUTE_HEADER: "b.zero-demo"}, "a", 10),  # the host rule first, as the interceptor
        ({wake.ROUTE_HEADER: "c.zero-demo"}, None, 10),  # c keeps a replica: never held, unknown here
        ({"Host": "elsewhere.example"}, None, 10),  # unknown: the default
    ],
)
def test_the_rendered_fallback_answers_503_with_retry_after_for_each_api(tmp_path, headers, api, retry_after):
    manifest = render(loads(ZERO_APIS))[f"infra/k8s/_shared/{FALLBACK_FILE}"]
    with fallback_server(manifest, tmp_path / "nginx") as url:
        response = httpx.post(url + "/predict", json={"text": "hi"}, headers=headers)
    assert response.status_code == 503
    assert response.headers["retry-after"] == str(retry_after)
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"] == f"{api or 'the API'} is starting from zero; retry after {retry_after} s"
    assert set(body) == {"error", "request_id"} and body["request_id"] == response.headers["x-request-id"]  # the runtime's error shape


def test_the_fallback_answers_any_request_and_keeps_a_sensible_request_id(tmp_path):
    manifest = render(loads(ZERO_APIS))[f"infra/k8s/_shared/{FALLBACK_FILE}"]
    route = {wake.ROUTE_HEADER: "a.zero-demo"}
    with fallback_server(manifest, tmp_path / "nginx") as url, httpx.Client(base_url=url, headers=route) as client:
        big = client.post("/v2/models/a/infer", content=b"x" * (3 << 20))  # over nginx's default 1 MiB body limit
        assert big.status_code == 503 and big.json()["error"].startswith("a is starting")
        assert client.get("/v1/models").status_code == 503
        assert client.head("/").headers["retry-after"] == "10"
        sent = client.post("/predict", json={}, headers={"X-Request-ID": "job-7/step:2"})
        assert sent.json()["request_id"] == sent.headers["x-request-id"] == "job-7/step:2"  # as the runtime keeps it
        hostile = client.post("/predict", json={}, headers={"X-Request-ID": 'x", "error": "pwned'})
        assert hostile.json()["error"].startswith("a is starting") and re.fullmatch(r"[0-9a-f]{32}", hostile.json()["request_id"])


ENGINE_AT_ZERO = """
project: zero-llm
cloud: aws
region: us-east-1
cluster:
  node_pools:
    - {name: cpu, instance_type: m6i.large}
    - {name: gpu, instance_type: g6.xlarge, min_nodes: 0, max_nodes: 2}
apis:
  - name: chat
    engine: vllm
    hf_model: HuggingFaceTB/SmolLM2-135M-Instruct
    compute: {gpu: 1, memory: 12Gi}
    autoscaling: {min_replicas: 0, scale_down_delay_s: 600, cold_start_timeout_s: 420, target_in_flight: 24}
"""


def test_an_engine_api_at_zero_gets_the_same_holding_path_on_its_running_target():
    """Scale to zero is the GPU's largest saving: an engine API at min_replicas 0 is routed, held and woken
    like a runtime API, the interceptor aiming at the engine's running target."""
    objs = objects(ENGINE_AT_ZERO)
    route = objs[("InterceptorRoute", "zero-llm", "chat")]
    interceptor_route_check(route)
    so = objs[("ScaledObject", "zero-llm", "chat")]
    assert so["spec"]["minReplicaCount"] == 0 and so["spec"]["cooldownPeriod"] == 600
    assert [t.get("name", t["type"]) for t in so["spec"]["triggers"]] == ["running", "waiting", "external-push"]
    assert so["spec"]["triggers"][2]["metadata"]["interceptorRoute"] == "chat"
    running = next(t for t in so["spec"]["triggers"] if t.get("name") == "running")
    assert route["spec"]["scalingMetric"] == {"concurrency": {"targetValue": int(running["metadata"]["threshold"])}} == {"concurrency": {"targetValue": 24}}
    assert route["spec"]["timeouts"]["readiness"] == "420s"
    assert route["spec"]["target"]["service"] in {name for kind, _, name in objs if kind == "Service"}
    assert ("Deployment", "zero-llm", wake.FALLBACK) in objs  # past the bound, 503 + Retry-After
