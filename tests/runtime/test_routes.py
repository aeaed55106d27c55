"""Every route of a real server, and every kind of result a predictor may return."""

from __future__ import annotations

import httpx
import pytest

from tests.runtime.conftest import start, stop


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = start(tmp_path_factory.mktemp("routes"), "echo.py:Echo", "--max-body-bytes", "1000")
    yield s
    stop(s)


def test_predict_json(client):
    r = client.post("/predict", json={"x": [1, 2]})
    assert r.status_code == 200 and r.json() == {"echo": {"x": [1, 2]}}
    assert r.headers["content-type"] == "application/json"


def test_predict_bytes_arrive_as_bytes(client):
    r = client.post("/predict", content=b"\x89PNG....", headers={"content-type": "image/png"})
    assert r.json() == {"bytes": 8}


@pytest.mark.parametrize(
    "kind, status, ctype, body",
    [
        ("str", 200, "text/plain; charset=utf-8", b"plain text"),
        ("bytes", 200, "application/octet-stream", b"\x00\x01\x02"),
        ("response", 201, "text/x-custom; charset=utf-8", b"custom body"),
    ],
)
def test_result_kinds(client, kind, status, ctype, body):
    r = client.post("/predict", json={"kind": kind})
    assert (r.status_code, r.headers["content-type"], r.content) == (status, ctype, body)
    assert r.headers["x-request-id"]


def test_request_id_is_honoured(client):
    r = client.post("/predict", json={}, headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


def test_kserve_v1(client):
    r = client.post("/v1/models/echo:predict", json={"instances": [{"a": 1}, {"a": 2}]})
    assert r.json() == {"predictions": [{"echo": {"a": 1}}, {"echo": {"a": 2}}]}
    assert client.get("/v1/models/echo").json() == {"name": "echo", "ready": True}


def test_kserve_v1_needs_instances(client):
    r = client.post("/v1/models/echo:predict", json={"inputs": []})
    assert r.status_code == 400 and '"instances"' in r.json()["error"]


def test_oip_v2_infer_wraps_the_result(client):
    body = {"id": "r1", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4]]}]}
    r = client.post("/v2/models/echo/infer", json=body)
    assert r.status_code == 200
    out = r.json()
    assert out["model_name"] == "echo" and out["id"] == "r1"
    assert out["outputs"][0]["name"] == "echo"


@pytest.mark.parametrize(
    "tensor, message",
    [
        ({"name": "x", "shape": [3], "datatype": "FP32", "data": [1, 2]}, "shape [3] holds 3 elements but data has 2"),
        ({"name": "x", "shape": [2], "datatype": "FLOAT", "data": [1, 2]}, "inputs[0].datatype: Input should be 'BOOL'"),
        ({"name": "x", "shape": "2", "datatype": "FP32", "data": [1, 2]}, "inputs[0].shape: Input should be a valid list (got '2')"),
        ({"name": "x", "datatype": "FP32", "data": [1]}, "inputs[0].shape: Field required"),
    ],
)
def test_oip_v2_checks_tensors(client, tensor, message):
    r = client.post("/v2/models/echo/infer", json={"inputs": [tensor]})
    assert r.status_code == 400 and message in r.json()["error"]


def test_oip_v2_metadata_and_health(client):
    assert client.get("/v2/models/echo").json()["name"] == "echo"
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/echo/ready").status_code == 200
    assert client.get("/v2").json()["name"] == "mlkit_runtime"


@pytest.mark.parametrize("method, path", [("post", "/v1/models/other:predict"), ("post", "/v2/models/other/infer"), ("get", "/v2/models/other")])
def test_unknown_model_is_404(client, method, path):
    r = client.request(method, path, json={"instances": []})
    assert r.status_code == 404 and "'other' is not served here (this server serves 'echo')" in r.json()["error"]


def test_health_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/v1/models/{name}:predict", "/v2/models/{name}/infer", "/metrics"} <= set(spec["paths"])


def test_bad_input_errors(client):
    r = client.post("/predict", content=b'{"a": [1, 2', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "malformed JSON" in r.json()["error"] and "line 1 column" in r.json()["error"]
    r = client.post("/predict", content=b"a=1", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415 and "Content-Type: application/json" in r.json()["error"]
    r = client.post("/v1/models/echo:predict", content=b"abc", headers={"content-type": "text/plain"})
    assert r.status_code == 415
    r = client.post("/predict", content=b"x" * 1001, headers={"content-type": "application/octet-stream"})
    assert r.status_code == 413 and "limit is 1000" in r.json()["error"]
    r = client.post("/predict", content=b"", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "empty request body" in r.json()["error"]


def test_predictor_exception_is_500_with_request_id_and_server_goes_on(client, server):
    r = client.post("/predict", json={"raise": True}, headers={"x-request-id": "boom-1"})
    assert r.status_code == 500
    assert r.json() == {"error": "the predictor raised ValueError: asked to fail", "request_id": "boom-1"}
    assert client.post("/predict", json={"ok": 1}).status_code == 200
    log = server.output()
    assert "request boom-1 on /predict: predictor raised" in log and "Traceback" in log


def test_metrics(client):
    client.post("/predict", json={})
    text = client.get("/metrics").text
    assert 'mlkit_requests_total{route="/predict",status="200"}' in text
    assert "mlkit_request_duration_seconds_bucket" in text
    assert "mlkit_requests_in_flight 0.0" in text and "mlkit_queue_depth 0.0" in text
    assert "mlkit_predictor_errors_total" in text and "mlkit_batch_size_bucket" in text


def test_access_log_is_one_json_line_per_request(client, server):
    import json

    client.post("/predict", json={}, headers={"x-request-id": "log-me"})
    lines = [json.loads(line) for line in server.output().splitlines() if line.startswith('{"ts"')]
    mine = [line for line in lines if line["request_id"] == "log-me"]
    assert len(mine) == 1 and mine[0]["route"] == "/predict" and mine[0]["status"] == 200 and mine[0]["latency_ms"] > 0


def test_async_predictor(serve):
    s = serve("echo.py:AsyncEcho")
    assert httpx.post(s.url + "/predict", json=[1]).json() == {"async": [1]}


def test_fastapi_routes_answer_like_the_fast_path(tmp_path):
    """The FastAPI routes (what /openapi.json documents, and what an app mounting create_app() gets)
    give the same answers as the fast path the server puts in front of them."""
    from starlette.testclient import TestClient

    from mlkit_runtime.app import create_app
    from mlkit_runtime.settings import Settings
    from tests.runtime.conftest import PREDICTORS

    settings = Settings.load({"predictor": f"{PREDICTORS}/echo.py:Echo", "model_dir": str(tmp_path), "name": "echo", "access_log": False}, environ={})
    with TestClient(create_app(settings)) as client:
        assert client.post("/predict", json={"a": 1}).json() == {"echo": {"a": 1}}
        assert client.post("/v1/models/echo:predict", json={"instances": [1]}).json() == {"predictions": [{"echo": 1}]}
        assert client.post("/v1/models/nope:predict", json={"instances": [1]}).status_code == 404
        assert client.post("/v2/models/echo/infer", json={"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]}).status_code == 200
        assert client.post("/predict", content=b"{", headers={"content-type": "application/json"}).status_code == 400
