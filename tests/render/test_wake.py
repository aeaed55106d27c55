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
from mlkit.render.runtime_view import SYSTEM_NAMESPACE
from mlkit.spec.loader import loads
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


def front_server(conf: str, port: int) -> str:
    """The server block of the wake nginx.conf that listens on `port`."""
    found = re.search(rf"^    server {{\n        listen {port};\n(.*?)^    }}$", conf, re.M | re.S)
    assert found, port
    return found.group(1)


def pinned(conf: str, port: int) -> dict[str, str]:
    """The request headers a front port sets, whatever the client sent."""
    return dict(re.findall(r'proxy_set_header (\S+) "([^"$]+)";', front_server(conf, port)))


@pytest.mark.parametrize(("cloud", "expose"), [(c, e) for c in ("aws", "gcp") for e in ("cluster", "internal", "public")])
def test_a_request_finds_its_way_from_the_client_to_the_pods(cloud, expose):
    objs = objects(spec_text(cloud, expose))
    ns = "zero-demo"
    client = objs[("Service", ns, "a")]
    backend = objs[("Service", ns, "a-backend")]
    route = objs[("InterceptorRoute", ns, "a")]
    deployment = objs[("Deployment", ns, "a")]
    front = objs[("Deployment", ns, wake.FALLBACK)]
    conf = objs[("ConfigMap", ns, wake.FALLBACK)]["data"]["nginx.conf"]
    interceptor_route_check(route)

    # The API's own Service keeps its name and exposure (as a plain API's Service: type, class, annotations)...
    plain = objs[("Service", ns, "b")]
    for key in ("type", "loadBalancerClass"):
        assert client["spec"].get(key) == plain["spec"].get(key)
    assert client["metadata"].get("annotations") == plain["metadata"].get("annotations")
    assert client["spec"]["type"] == ("ClusterIP" if expose == "cluster" else "LoadBalancer")
    # ...and leads to the API's own front port of the wake nginx, a port its container has.
    assert client["spec"]["selector"].items() <= front["spec"]["template"]["metadata"]["labels"].items()
    (port,) = [p["targetPort"] for p in client["spec"]["ports"]]
    assert port in [p["containerPort"] for p in front["spec"]["template"]["spec"]["containers"][0]["ports"]]
    # Nothing in the cluster but the fronts selects the interceptor's pods: no load balancer leads to them.
    assert not [o for o in objs.values() if o["kind"] == "Service" and o["spec"].get("selector") == wake.INTERCEPTOR_SELECTOR]
    # The front hands the request to the interceptor's proxy Service as a request for API a.
    assert f"proxy_pass http://{wake.interceptor_proxy(SYSTEM_NAMESPACE)};" in front_server(conf, port)
    assert pinned(conf, port) == {"Host": f"a.{ns}", wake.ROUTE_HEADER: f"a.{ns}"}
    # The interceptor routes the API's in-cluster host names (what the front sets) and the header.
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
    # The front port takes what the API's Service would: anyone behind a load balancer, else cluster pods.
    front_policy = objs[("NetworkPolicy", ns, wake.FALLBACK)]
    rule = next(r for r in front_policy["spec"]["ingress"] if {"port": port, "protocol": "TCP"} in r["ports"])
    assert rule.get("from") == ([{"namespaceSelector": {}}] if expose == "cluster" else None)
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


def test_each_api_at_zero_has_its_own_front_port_beside_the_fallbacks():
    apis = loads(ZERO_APIS.replace("  - {name: c, predictor: p.py:P}", "  - {name: c, predictor: p.py:P, autoscaling: {min_replicas: 0}}")).apis
    ports = wake.front_ports(apis)
    assert ports == {"a": 8081, "b": 8082, "c": 8083} and wake.FALLBACK_PORT not in ports.values()
    assert wake.front_ports(loads(ZERO_APIS).apis) == {"a": 8081, "b": 8082}  # c keeps a replica: no front



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
    assert all(f"listen {p['containerPort']};" in conf for p in container["ports"])
    # Read-only root: everything nginx writes is under the tmp volume.
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    written = re.findall(r"^\s*(?:pid|\w+_temp_path) (\S+);$", conf, re.M)
    assert len(written) == 6 and all(path.startswith("/tmp/") for path in written)
    # Small, and never on an accelerator node: no vendor toleration, no pool selector.
    assert container["resources"] == wake.FALLBACK_RESOURCES
    assert "tolerations" not in pod["spec"] and "nodeSelector" not in pod["spec"]
    # Only the interceptor pods reach the fallback port; it reaches the interceptor's proxy port and DNS only.
    policy = objs[("NetworkPolicy", ns, ref["name"])]
    assert policy["spec"]["podSelector"]["matchLabels"] == service["spec"]["selector"]
    system = {"kubernetes.io/metadata.name": SYSTEM_NAMESPACE}
    interceptor = {"namespaceSelector": {"matchLabels": system}, "podSelector": {"matchLabels": wake.INTERCEPTOR_SELECTOR}}
    assert policy["spec"]["ingress"][0] == {"ports": [{"port": "http", "protocol": "TCP"}], "from": [interceptor]}
    assert policy["spec"]["egress"] == [
        {"ports": [{"port": wake.INTERCEPTOR_PROXY_PORT, "protocol": "TCP"}], "to": [interceptor]},
        {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]},
    ]
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert deployment["spec"]["replicas"] == 2  # the front of every request, so it survives a node drain
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


# The wake nginx.conf in a real nginx. What the test substitutes, and only that: each listen address
# (127.0.0.1 and a free port instead of 8080 and the front ports), the interceptor's address (a server
# of the test's, or a closed port), the pid file and the five temporary paths (a test folder instead of
# /tmp); every other line, and the Deployment's command, run as rendered.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")


@contextlib.contextmanager
def wake_nginx(manifest: str, where: Path, interceptor: str | None = None) -> Iterator[dict[int, str]]:
    """Run the nginx of a rendered `wake-fallback.yaml` on loopback; yield its base URL by rendered port."""
    if NGINX is None:
        pytest.skip("nginx is not installed (scripts/setup.sh installs nginx-light from apt when run as root)")
    docs = {d["kind"]: d for d in yaml.safe_load_all(manifest) if d}
    conf = docs["ConfigMap"]["data"]["nginx.conf"]
    container = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    command = container["command"]
    where.mkdir(parents=True, exist_ok=True)
    ports = {p["containerPort"]: free_port() for p in container["ports"]}
    for rendered, port in ports.items():
        old = f"listen {rendered};"
        assert conf.count(old) == 1, old
        conf = conf.replace(old, f"listen 127.0.0.1:{port};")
    upstream = wake.interceptor_proxy(SYSTEM_NAMESPACE)
    # Without an interceptor, an upstream that refuses: a port bound and held, never listened on. A port merely
    # found free (and let go) could be taken meanwhile by another test's interceptor, which then received this
    # nginx's requests (a routing test failed once on a foreign request: Host internal-admin.shop).
    refusing = socket.socket()
    refusing.bind(("127.0.0.1", 0))
    target = interceptor or f"127.0.0.1:{refusing.getsockname()[1]}"
    conf = conf.replace(f"proxy_pass http://{upstream};", f"proxy_pass http://{target};")
    assert conf.count("pid /tmp/nginx.pid;") == 1
    conf = conf.replace("pid /tmp/nginx.pid;", f"pid {where}/nginx.pid;")
    conf, temp_paths = re.subn(r"^(\s*\w+_temp_path) /tmp/", rf"\1 {where}/", conf, flags=re.M)
    assert temp_paths == 5 and "/tmp/" not in conf.replace(str(where), "") and upstream not in conf
    (where / "nginx.conf").write_text(conf)
    assert command[0] == "nginx" and command[-2] == "-c"
    log = open(where / "nginx.log", "w")
    proc = subprocess.Popen([NGINX, *command[1:-1], str(where / "nginx.conf")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 10
        for port in ports.values():
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"nginx did not start: {(where / 'nginx.log').read_text()}")
                    time.sleep(0.05)
        yield {rendered: f"http://127.0.0.1:{port}" for rendered, port in ports.items()}
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        refusing.close()


@contextlib.contextmanager
def fallback_server(manifest: str, where: Path) -> Iterator[str]:
    """Run the nginx of a rendered `wake-fallback.yaml` on loopback; yield its fallback's base URL."""
    with wake_nginx(manifest, where) as urls:
        yield urls[wake.FALLBACK_PORT]


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


@pytest.mark.parametrize(("compute", "size_gb", "hold_s"), [
    ("{gpu: 1, memory: 12Gi}", 16, 300 + 16 * 20 + 300),  # NVIDIA: graphs, weights, then a node and the image first
    ("{gpu: 1, memory: 12Gi}", 3, 300 + 3 * 20 + 300),
    ("{neuron_cores: 2, memory: 12Gi}", 16, 1800 + 16 * 20 + 300),
])
def test_an_engine_at_zero_holds_the_first_request_through_its_own_startup_budget(compute, size_gb, hold_s):
    # The predictor default (300 s) is below every engine's startup budget: the first request after idling
    # always got the fallback's 503 while the engine was still loading.
    pool = "{name: gpu, instance_type: g6.xlarge, min_nodes: 0, max_nodes: 2}" if "gpu" in compute else "{name: inf, instance_type: inf2.xlarge, min_nodes: 0}"
    text = (ENGINE_AT_ZERO.replace("    - {name: gpu, instance_type: g6.xlarge, min_nodes: 0, max_nodes: 2}", f"    - {pool}")
            .replace("compute: {gpu: 1, memory: 12Gi}", f"compute: {compute}\n    serving: {{model_size_gb: {size_gb}, max_model_len: 2048}}")
            .replace(", cold_start_timeout_s: 420", ""))
    objs = objects(text)
    route = objs[("InterceptorRoute", "zero-llm", "chat")]
    deployment = objs[("Deployment", "zero-llm", "chat")]
    startup = deployment["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert int(route["spec"]["timeouts"]["readiness"].rstrip("s")) == hold_s > startup["periodSeconds"] * startup["failureThreshold"]
    api = loads(text).apis[0]
    assert wake.client_timeout_s(api) == hold_s + wake.CLIENT_MARGIN_S  # mlkit predict outwaits it
    # A value the spec gives is kept, and a runtime API keeps the predictor default.
    assert objects(ENGINE_AT_ZERO)[("InterceptorRoute", "zero-llm", "chat")]["spec"]["timeouts"]["readiness"] == "420s"
    assert wake.cold_start_timeout_s(loads(spec_text(autoscaling="{min_replicas: 0}")).apis[0]) == 300


def test_an_engine_route_waits_for_a_long_completions_headers():
    # A non-streamed completion sends its headers with its last token; the interceptor's 300 s default
    # (KEDA_HTTP_RESPONSE_HEADER_TIMEOUT) answered 504 while vLLM was still generating.
    engine = objects(ENGINE_AT_ZERO)[("InterceptorRoute", "zero-llm", "chat")]
    assert engine["spec"]["timeouts"]["responseHeader"] == "0s"  # no deadline on this route (v1beta1 InterceptorRouteTimeouts)
    interceptor_route_check(engine)
    runtime = objects(spec_text())[("InterceptorRoute", "zero-demo", "a")]
    assert "responseHeader" not in runtime["spec"]["timeouts"]



def interceptor_route(routes: list[dict], host: str, headers: list[tuple[str, str]]) -> str | None:
    """The InterceptorRoute the interceptor picks for a request, as pkg/routing/tablememory.go (v0.15.0)
    Route does: rules listing the host first, then rules without hosts (catch-all); a rule's header
    matches hold when any of the request's values of that header equals the rule's."""
    host = host.rsplit(":", 1)[0].lower() if ":" in host else host.lower()

    def matches(rule: dict) -> bool:
        return all(any(k.lower() == h["name"].lower() and v == h["value"] for k, v in headers) for h in rule.get("headers", []))

    for want_hosts in (True, False):
        for route in routes:
            for rule in route["spec"]["rules"]:
                listed = [h.lower() for h in rule.get("hosts", [])]
                if (host in listed if want_hosts else not listed) and matches(rule):
                    return str(route["metadata"]["name"])
    return None


class Interceptor:
    """A stand-in for the interceptor's proxy port on loopback: it records what arrives, header by header."""

    def __init__(self) -> None:
        import http.server
        import threading

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                seen.append((self.path, list(self.headers.items())))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _any

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


PUBLIC_AND_PRIVATE = """project: shop
cloud: aws
region: us-east-1
cluster: {node_pools: [{name: cpu, instance_type: m6i.large}]}
apis:
  - {name: storefront, predictor: p.py:P, expose: public, autoscaling: {min_replicas: 0}}
  - {name: internal-admin, predictor: p.py:P, expose: cluster, autoscaling: {min_replicas: 0}}
"""


def raw_request(url: str, lines: list[str]) -> bytes:
    """Send a request exactly as written (duplicate headers, odd names, an absolute URI) and read the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        close = [] if lines[0].endswith("HTTP/1.0") else ["Connection: close"]
        sock.sendall(("\r\n".join(lines + close) + "\r\n\r\n").encode())
        return b"".join(iter(lambda: sock.recv(65536), b""))


@pytest.mark.parametrize(
    ("lines", "direct"),
    [
        (["POST /predict HTTP/1.1", "Host: lb.example", f"{wake.ROUTE_HEADER}: internal-admin.shop", "Content-Length: 0"], {"internal-admin"}),
        (["POST /predict HTTP/1.1", "Host: internal-admin.shop", "Content-Length: 0"], {"internal-admin"}),
        (["POST /predict HTTP/1.1", "Host: internal-admin.shop.svc.cluster.local:80", f"{wake.ROUTE_HEADER}: x", "Content-Length: 0"], {"internal-admin"}),
        # Two values: the interceptor's header match takes any of them (slices.Contains), so either route.
        (["POST /predict HTTP/1.1", "Host: lb.example", f"{wake.ROUTE_HEADER}: storefront.shop", f"{wake.ROUTE_HEADER}: internal-admin.shop",
          "Content-Length: 0"], {"internal-admin", "storefront"}),
        (["POST /predict HTTP/1.1", "Host: lb.example", "x-mlkit-api: internal-admin.shop", "X_Mlkit_Api: internal-admin.shop", "Content-Length: 0"],
         {"internal-admin"}),
        (["POST http://internal-admin.shop/predict HTTP/1.1", "Host: internal-admin.shop", "Content-Length: 0"], {"internal-admin"}),  # absolute form
        (["GET /v1/models HTTP/1.0"], {None}),  # no Host at all
    ],
    ids=["header", "host", "host-wins", "two-headers", "case-and-underscore", "absolute-uri", "http-1.0"],
)
def test_a_request_through_a_public_apis_load_balancer_reaches_that_api_only(tmp_path, lines, direct):
    """Issue 22: the public API's load balancer led to the interceptor, which routes on Host or X-Mlkit-Api
    alone, so a client of it could name a private API of any namespace. The routing as rendered: the
    public Service's port on the rendered nginx, then the interceptor's choice among the rendered routes."""
    files = render(loads(PUBLIC_AND_PRIVATE))
    public = yaml.safe_load(files["infra/k8s/storefront/service.yaml"].split("\n---\n")[0])
    scheme = public["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"]
    assert public["spec"]["type"] == "LoadBalancer" and scheme == "internet-facing"
    (port,) = [p["targetPort"] for p in public["spec"]["ports"]]
    routes = [yaml.safe_load(files[f"infra/k8s/{api}/interceptorroute.yaml"]) for api in ("storefront", "internal-admin")]
    # Sent to the interceptor as it came (what the public load balancer did before), it reached the private API:
    sent = [tuple(line.split(": ", 1)) for line in lines[1:] if ": " in line]
    host = next((v for k, v in sent if k.lower() == "host"), "")
    assert interceptor_route(routes, host, sent) in direct
    interceptor = Interceptor()
    try:
        with wake_nginx(files[f"infra/k8s/_shared/{FALLBACK_FILE}"], tmp_path / "nginx", interceptor.address) as urls:
            answer = raw_request(urls[port], lines)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        (path, headers), = interceptor.seen
        routing = [(k, v) for k, v in headers if k.lower() in ("host", wake.ROUTE_HEADER.lower(), "x_mlkit_api")]
        assert sorted(routing) == [("Host", "storefront.shop"), (wake.ROUTE_HEADER, "storefront.shop")]
        assert interceptor_route(routes, "storefront.shop", headers) == "storefront"
        assert path.startswith("/")
    finally:
        interceptor.close()


def test_a_bare_service_name_in_the_apis_namespace_reaches_it_at_zero(tmp_path):
    """Issue 23: `http://sentiment/` from the API's namespace sends `Host: sentiment`, which no route lists
    (a bare name would clash with another namespace's API of the same name). The API's Service leads to
    its front, which names the API whatever Host came."""
    files = render(loads(PUBLIC_AND_PRIVATE))
    service = yaml.safe_load(files["infra/k8s/internal-admin/service.yaml"].split("\n---\n")[0])
    assert service["metadata"]["name"] == "internal-admin" and service["spec"]["type"] == "ClusterIP"
    (port,) = [p["targetPort"] for p in service["spec"]["ports"]]
    routes = [yaml.safe_load(files[f"infra/k8s/{api}/interceptorroute.yaml"]) for api in ("storefront", "internal-admin")]
    assert interceptor_route(routes, "internal-admin", []) is None  # what the interceptor alone would do: 404
    interceptor = Interceptor()
    try:
        with wake_nginx(files[f"infra/k8s/_shared/{FALLBACK_FILE}"], tmp_path / "nginx", interceptor.address) as urls:
            answer = raw_request(urls[port], ["GET /healthz HTTP/1.1", "Host: internal-admin"])
        assert answer.startswith(b"HTTP/1.1 200")
        (_, headers), = interceptor.seen
        assert interceptor_route(routes, dict(headers)["Host"], headers) == "internal-admin"
    finally:
        interceptor.close()
