"""`mlkit predict` to an API with `min_replicas: 0`: through the API server's service proxy to the
front Service beside the KEDA HTTP add-on's interceptor, with the routing header.

The real interceptor is a Go binary that no package index here ships, so the emulator's service
proxy plays its routing: it reads the InterceptorRoutes stored in the emulator (as `mlkit apply`
wrote them from the rendered files) and matches them as pkg/routing/tablememory.go does at v0.15.0
(host rules, else header rules on any host), then forwards to a real runtime on loopback.
"""

from __future__ import annotations

import json
import shutil

import httpx
import kmock
import pytest
import yaml

from mlkit.render import wake
from tests.conftest import EXAMPLES, assert_one_line_error, emulator_kubeconfig, mlkit
from tests.render.test_wake import fallback_server
from tests.runtime.conftest import start as start_runtime

SPEC = """\
project: zero-demo
cloud: aws
region: us-west-2
cluster: {existing: {name: prod-eks, context: emulator}}
apis:
  - name: sentiment
    predictor: predictor.py:Predictor
    autoscaling: {min_replicas: 0}
  - name: spam
    predictor: predictor.py:Predictor
"""
NS = "zero-demo"


@pytest.fixture
def proj(tmp_path, k8s):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "mlkit.yaml").write_text(SPEC)
    shutil.copy(EXAMPLES / "sentiment" / "predictor.py", root / "predictor.py")
    kubeconfig = emulator_kubeconfig(tmp_path / "kubeconfig", k8s.url)
    assert mlkit("render", cwd=root).returncode == 0
    return root, {"KUBECONFIG": str(kubeconfig)}


def route_for(routes: list[dict], host: str, headers: dict[str, str]) -> dict | None:
    """The interceptor's choice: an exact host rule first, then a rule for any host whose headers all match."""
    host = host.split(":")[0]
    for route in routes:
        if any(host in rule.get("hosts", []) for rule in route["spec"]["rules"]):
            return route
    for route in routes:
        for rule in route["spec"]["rules"]:
            if not rule.get("hosts") and all(headers.get(h["name"].lower()) == h["value"] for h in rule.get("headers", [])):
                return route
    return None


def front_host(root) -> str:
    """The Host the API's front (its Service's port on the rendered wake nginx) hands the interceptor."""
    from tests.render.test_wake import pinned

    service = yaml.safe_load((root / "infra/k8s/sentiment/service.yaml").read_text().split("\n---\n")[0])
    docs = {d["kind"]: d for d in yaml.safe_load_all((root / "infra/k8s/_shared/wake-fallback.yaml").read_text()) if d}
    return pinned(docs["ConfigMap"]["data"]["nginx.conf"], service["spec"]["ports"][0]["targetPort"])["Host"]


def test_predict_reaches_a_scale_to_zero_api_through_its_front_and_the_interceptor(proj, k8s, tmp_path):
    root, env = proj
    route = yaml.safe_load((root / "infra/k8s/sentiment/interceptorroute.yaml").read_text())
    httpx.post(f"{k8s.url}/apis/http.keda.sh/v1beta1/namespaces/{NS}/interceptorroutes", json=route).raise_for_status()
    host = front_host(root)
    seen: list[dict] = []
    runtime = start_runtime(tmp_path, f"{EXAMPLES / 'sentiment' / 'predictor.py'}:Predictor", "--model-dir", str(EXAMPLES / "sentiment" / "model"))

    def interceptor(request):
        # The API server's proxy sends its own Host (the pod's address); the front replaces it with the API's.
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen.append(headers)
        chosen = route_for(k8s.objects("interceptorroutes"), host, {})
        if chosen is None:
            return kmock.Response(status=404, payload=b"Not Found\n")
        assert chosen["spec"]["target"] == {"service": "sentiment-backend", "port": 80}
        return httpx.post(runtime.url + "/predict", content=request.body, headers={"content-type": "application/json"}).json()

    try:
        k8s.emulator[f"post /api/v1/namespaces/{NS}/services/sentiment:http/proxy/predict"] << interceptor
        answer = mlkit("predict", "sentiment", '{"text": "a great, wonderful film"}', cwd=root, env=env)
        assert answer.returncode == 0, answer.stderr
        assert json.loads(answer.stdout)["label"] == "positive"
        assert host == f"sentiment.{NS}" and wake.ROUTE_HEADER.lower() not in seen[-1]  # the front names the API, not the client
        # Without the front the interceptor would not know the API: the route check can fail.
        assert route_for(k8s.objects("interceptorroutes"), "10.0.0.7:8080", {}) is None
        assert route_for(k8s.objects("interceptorroutes"), f"sentiment.{NS}.svc:80", {})["metadata"]["name"] == "sentiment"
    finally:
        runtime.proc.terminate()
        runtime.proc.wait(10)

    # An API that keeps a replica is still called through its own Service, without the header.
    k8s.emulator[f"post /api/v1/namespaces/{NS}/services/spam:http/proxy/predict"] << (lambda request: seen.append(dict(request.headers)) or {"ok": True})
    plain = mlkit("predict", "spam", "{}", cwd=root, env=env)
    assert plain.returncode == 0, plain.stderr
    assert wake.ROUTE_HEADER.lower() not in {k.lower() for k in seen[-1]}


def test_predict_says_when_to_retry_an_api_still_starting_past_the_bound(proj, k8s, tmp_path):
    """Past cold_start_timeout_s the interceptor forwards the request to the route's coldStart.fallback
    (endpoint_resolver.go, v0.15.0). The project's fallback, its rendered nginx.conf in a real nginx,
    answers 503 with Retry-After; predict says so on one line with the seconds, exit 3."""
    root, env = proj
    host = front_host(root)
    route = yaml.safe_load((root / "infra/k8s/sentiment/interceptorroute.yaml").read_text())
    assert route["spec"]["coldStart"]["fallback"]["service"]["name"] == wake.FALLBACK
    seen: list[int] = []
    with fallback_server((root / "infra/k8s/_shared/wake-fallback.yaml").read_text(), tmp_path / "fallback") as fallback:

        def interceptor(request):
            # No replica became ready in time: the request goes on to the fallback as the front sent it (the API's Host).
            headers = {k: v for k, v in request.headers.items() if k.lower() == "content-type"}
            answer = httpx.post(fallback + "/predict", content=request.body, headers={**headers, "Host": host})
            seen.append(answer.status_code)
            return kmock.Response(status=answer.status_code, payload=answer.content, headers={"Retry-After": answer.headers["retry-after"]})

        k8s.emulator[f"post /api/v1/namespaces/{NS}/services/sentiment:http/proxy/predict"] << interceptor
        result = mlkit("predict", "sentiment", '{"text": "hi"}', cwd=root, env=env)
    assert seen == [503]
    assert_one_line_error(result, "sentiment answered 503: sentiment is starting from zero; retry after 10 s (request ", code=3)


def test_predict_adds_the_seconds_of_retry_after_when_the_answer_does_not_say_them(proj, k8s):
    root, env = proj
    busy = kmock.Response(status=503, payload={"error": "server is at capacity; retry shortly", "request_id": "r1"}, headers={"Retry-After": "1"})
    k8s.emulator[f"post /api/v1/namespaces/{NS}/services/sentiment:http/proxy/predict"] << busy
    result = mlkit("predict", "sentiment", "{}", cwd=root, env=env)
    assert_one_line_error(result, "sentiment answered 503: server is at capacity; retry shortly; retry after 1 s (request r1)", code=3)


def test_predict_says_when_the_interceptor_gave_up_waiting(proj, k8s):
    """Without a fallback, or with its request's own deadline gone, the interceptor answers 504: an external failure, exit 3."""
    root, env = proj
    k8s.emulator[f"post /api/v1/namespaces/{NS}/services/sentiment:http/proxy/predict"] << kmock.Response(status=504, payload=b"Gateway Timeout\n")
    result = mlkit("predict", "sentiment", "{}", cwd=root, env=env)
    assert_one_line_error(result, "sentiment answered 504: Gateway Timeout", code=3)


def test_an_answer_holding_terminal_escapes_is_shown_escaped(proj, k8s):
    """The API's (or anything's behind the proxy) error text reaches the terminal: ESC sequences and bidi overrides are shown as escapes."""
    root, env = proj
    hostile = kmock.Response(status=400, payload={"error": "bad\x1b]0;owned\x07 input\u202e", "request_id": "r\x1b[2J1"})
    k8s.emulator[f"post /api/v1/namespaces/{NS}/services/sentiment:http/proxy/predict"] << hostile
    result = mlkit("predict", "sentiment", "{}", cwd=root, env=env)
    assert_one_line_error(result, "sentiment answered 400: bad\\x1b]0;owned\\x07 input\\u202e (request r\\x1b[2J1)")
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr
