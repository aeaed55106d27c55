"""An async API on the embedded queue and a results folder (`--mode async --queue local`), through a real server."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.runtime.conftest import Server


def run(serve, tmp_path, *flags: str) -> Server:
    return serve(
        "queued.py:Predictor", "--mode", "async", "--queue", "local", "--results", f"file:{tmp_path / 'results'}",
        "--max-attempts", "2", "--visibility-timeout-s", "5", *flags,
    )


def wait_done(client: httpx.Client, location: str, bound_s: float = 20) -> dict:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        record = client.get(location).json()
        if record["status"] in ("completed", "failed"):
            return record
        time.sleep(0.05)
    raise AssertionError(f"{location} is still {record['status']} after {bound_s} s")


def test_submit_answers_202_with_an_id_and_the_result_is_read_by_it(serve, tmp_path):
    server = run(serve, tmp_path)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        answer = client.post("/predict", json={"x": 21})
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["status"] == "queued" and len(body["id"]) == 32 and int(body["id"], 16) >= 0
        assert answer.headers["location"] == f"/predict/{body['id']}"
        record = wait_done(client, answer.headers["location"])
        assert record["status"] == "completed" and record["result"] == {"y": 42, "n": None} and record["id"] == body["id"]
        assert record["created_at"] <= record["started_at"] <= record["finished_at"]
        raw = client.post("/predict", content=b"\x00\x01\x02", headers={"content-type": "application/octet-stream"})
        assert wait_done(client, raw.headers["location"])["result"] == {"bytes": 3}
    # The record a client reads is the file in the results folder, one per request.
    assert json.loads((tmp_path / "results" / f"{body['id']}.json").read_text())["status"] == "completed"


def test_ids_are_random_and_unknown_or_malformed_ids_are_404(serve, tmp_path):
    server = run(serve, tmp_path)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        ids = {client.post("/predict", json={"x": i}).json()["id"] for i in range(20)}
        assert len(ids) == 20
        for bad in ("0" * 32, "...", "A" * 32, "x", "0" * 31 + "g"):
            answer = client.get(f"/predict/{bad}")
            assert answer.status_code == 404 and "no request has this id" in answer.json()["error"]
        assert client.get("/predict/..%2f..%2fetc%2fpasswd").status_code == 404  # no such route
        # Routes that answer while the client waits do not run an async API's predictor.
        assert client.post("/v1/models/echo:predict", json={"instances": [1]}).status_code == 404


def test_bad_requests_are_refused_before_they_are_queued(serve, tmp_path):
    server = run(serve, tmp_path, "--max-body-bytes", "2048")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/predict", json={"x": "a" * 4096}).status_code == 413
        assert client.post("/predict", content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
        assert client.post("/predict", content=b"[" * 100 + b"]" * 100, headers={"content-type": "application/json"}).status_code == 400
        assert client.post("/predict", data={"x": "1"}).status_code == 415
    # Nothing was queued, so nothing was kept.
    assert not [p for p in (tmp_path / "results").glob("*.json")]


def test_a_poison_request_fails_after_its_attempts_with_the_predictors_error_and_is_dead_lettered(serve, tmp_path):
    server = run(serve, tmp_path)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        poison = client.post("/predict", json={"poison": True}).headers["location"]
        good = [client.post("/predict", json={"x": i}).headers["location"] for i in range(5)]
        record = wait_done(client, poison)
        assert record["status"] == "failed" and record["attempt"] == 2
        assert record["error"] == "the predictor raised ValueError: poison request"
        # The batch it shared with good requests was split: they completed.
        assert [wait_done(client, g)["status"] for g in good] == ["completed"] * 5
    dead = list((tmp_path / "results" / "dead-letter").iterdir())
    assert len(dead) == 1 and poison.rsplit("/", 1)[1] in dead[0].read_text()
    assert "mlkit_async_failed_total 1.0" in httpx.get(server.url + "/metrics").text


def test_api_keys_guard_submitting_and_reading(serve, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("s3cret\n")
    server = run(serve, tmp_path, "--api-keys-file", str(keys))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/predict", json={"x": 1}).status_code == 401
        answer = client.post("/predict", json={"x": 1}, headers={"x-api-key": "s3cret"})
        assert answer.status_code == 202
        assert client.get(answer.headers["location"]).status_code == 401
        assert client.get(answer.headers["location"], headers={"authorization": "Bearer s3cret"}).status_code == 200


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--mode", "worker", "--queue", "local", "--results", "file:/tmp/x"), "--queue local is an in-process queue"),
        (("--mode", "front"), "needs --queue"),
        (("--mode", "async", "--queue", "kafka:x", "--results", "file:/tmp/x"), "is not local, sqs:"),
        (("--mode", "batch"), "is not one of"),
        (("--mode", "front", "--queue", "sqs:https://sqs.us-west-2.amazonaws.com/1/q", "--results", "s3://"), "is not file:/folder, s3://"),
        (("--mode", "front", "--queue", "sqs:https://q", "--results", "file:"), "is not file:/folder, s3://"),
        (("--mode", "front", "--queue", "pubsub:projects/p/topics/t", "--results", "file:/tmp/x"), "is not projects/PROJECT/topics/TOPIC/subscriptions"),
        (("--mode", "front", "--queue", "sqs:https://q", "--dead-letter", "pubsub:projects/p/topics/t", "--results", "file:/tmp/x"), "does not go with"),
    ],
)
def test_bad_async_settings_are_one_line_and_exit_2(serve, tmp_path, flags, says):
    server = serve("queued.py:Predictor", *flags, wait=False)
    assert server.proc.wait(timeout=30) == 2
    out = server.output()
    assert says in out and "Traceback" not in out and len(out.strip().splitlines()) == 1


def test_a_backend_that_cannot_be_opened_is_one_line_and_exit_1(serve, tmp_path):
    # No credentials anywhere: the Cloud Storage client cannot be made, and the server must not start.
    env = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "missing.json"), "STORAGE_EMULATOR_HOST": "", "PUBSUB_EMULATOR_HOST": ""}
    server = serve(
        "queued.py:Predictor", "--mode", "front", "--queue", "pubsub:projects/test-project/topics/ocr-requests/subscriptions/ocr-workers",
        "--results", "gs://models/results", env=env, wait=False,
    )
    assert server.proc.wait(timeout=60) == 1
    out = server.output()
    assert "Traceback" not in out and "--queue pubsub:projects/test-project" in out and "missing.json" in out, out


def test_workers_report_how_long_requests_waited_in_the_queue(serve, tmp_path):
    """The dashboard's "Time queued before a worker took it": each request taken adds one observation, of the
    time since it was submitted; one held back a second by a slow request before it waited at least that."""
    server = run(serve, tmp_path, "--max-batch-size", "1")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        slow = client.post("/predict", json={"x": 1, "sleep_s": 1.0})
        after = client.post("/predict", json={"x": 2})
        for answer in (slow, after):
            assert wait_done(client, answer.headers["location"])["status"] == "completed"
        page = client.get("/metrics").text
    samples = {line.split(" ")[0]: float(line.split(" ")[1]) for line in page.splitlines() if line.startswith("mlkit_async_queue_wait_seconds")}
    assert samples["mlkit_async_queue_wait_seconds_count"] == 2
    assert 0.9 <= samples["mlkit_async_queue_wait_seconds_sum"] < 10  # the second waited behind the first's second
    assert samples['mlkit_async_queue_wait_seconds_bucket{le="0.5"}'] >= 1  # the first was taken at once
