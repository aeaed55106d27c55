"""`mlkit init --example async` to a result: `mlkit serve` of an async API (front and worker in one
process, on the embedded queue and a results folder), read with plain HTTP and with `mlkit predict`,
whose cluster path (the API server's service proxy) the Kubernetes emulator forwards to that server."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from tests.conftest import assert_one_line_error, emulator_kubeconfig, mlkit
from tests.runtime.conftest import free_port


@pytest.fixture
def served(tmp_path, request):
    """The async example made by `mlkit init`, served by `mlkit serve` with the example's own settings; (project, URL)."""
    assert mlkit("init", "docs", "--example", "async", cwd=tmp_path).returncode == 0
    proj = tmp_path / "docs"
    spec = yaml.safe_load((proj / "mlkit.yaml").read_text())
    spec["apis"][0]["config"]["seconds_per_document"] = 0.2
    (proj / "mlkit.yaml").write_text(yaml.safe_dump(spec))
    if getattr(request, "param", None) == "hostile":
        # A predictor whose error quotes the payload, as many do ("bad value: ..."): whoever calls the API writes it.
        with (proj / "predictor.py").open("a") as f:
            f.write("\n\nclass Predictor(Predictor):\n    def predict(self, payload):\n"
                    "        if isinstance(payload, dict) and 'fail' in payload:\n            raise ValueError(payload['fail'])\n"
                    "        return super().predict(payload)\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlkit", "serve", "--port", str(port)], cwd=proj, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield proj, url
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "serving documents (async)" in err and ".mlkit/serve/documents-results" in err


def test_init_serve_submit_poll_result(served):
    proj, url = served
    payload = json.loads((proj / "payload.json").read_text())
    with httpx.Client(base_url=url, timeout=10) as client:
        answer = client.post("/predict", json=payload)
        assert answer.status_code == 202 and answer.json()["status"] == "queued"
        seen = set()
        deadline = time.monotonic() + 20
        while (record := client.get(answer.headers["location"]).json())["status"] != "completed" and time.monotonic() < deadline:
            seen.add(record["status"])
            time.sleep(0.02)
        assert record["status"] == "completed" and seen and seen <= {"queued", "running"}
        assert record["result"]["label"] in ("positive", "negative") and len(record["result"]["sentences"]) == 3
        # The example's largest payload (1 MiB) holds at the front.
        assert client.post("/predict", json={"text": "x" * (2 << 20)}).status_code == 413
        # A document without text fails its 3 attempts with the predictor's message, and is dead-lettered.
        bad = client.post("/predict", json={"words": 1}).headers["location"]
        deadline = time.monotonic() + 20
        while (record := client.get(bad).json())["status"] != "failed" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert record["attempt"] == 3 and 'send a JSON object with a "text" string' in record["error"]
    results = proj / ".mlkit/serve/documents-results"
    assert (results / f"{answer.json()['id']}.json").is_file() and len(list((results / "dead-letter").iterdir())) == 1
    assert (proj / ".mlkit/serve/.gitignore").read_text().endswith("*\n")  # results stay out of git


def test_predict_waits_for_the_result_or_prints_the_id(served, tmp_path, k8s):
    proj, url = served
    spec = yaml.safe_load((proj / "mlkit.yaml").read_text())
    spec["cluster"] = {"existing": {"name": "prod-eks", "context": "emulator"}}
    (proj / "mlkit.yaml").write_text(yaml.safe_dump(spec))
    env = {"KUBECONFIG": str(emulator_kubeconfig(tmp_path / "kubeconfig", k8s.url))}
    k8s.proxy("async-demo", "documents:http", url)  # the cluster's Service is the server `mlkit serve` runs

    waited = mlkit("predict", "documents", '{"text": "A great film."}', cwd=proj, env=env)
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["label"] == "positive"
    assert "documents: request" in waited.stderr  # progress on stderr, the result alone on stdout

    quick = mlkit("predict", "documents", '{"text": "A great film."}', "--no-wait", cwd=proj, env=env)
    assert quick.returncode == 0, quick.stderr
    request_id = quick.stdout.strip()
    assert len(request_id) == 32 and httpx.get(f"{url}/predict/{request_id}").status_code == 200

    failed = mlkit("predict", "documents", '{"words": 1}', cwd=proj, env=env)
    assert_one_line_error(failed, "failed after 3 attempts", 'send a JSON object with a "text" string', code=3)

    bounded = mlkit("predict", "documents", '{"text": "' + "Slow. " * 10 + '"}', "--wait-s", "1", cwd=proj, env={**env})
    if bounded.returncode != 0:  # a loaded machine may still finish it within the second
        assert_one_line_error(bounded, "is still", "after 1 s; its result stays readable by id", code=3)


@pytest.mark.parametrize("served", ["hostile"], indirect=True)
def test_predict_shows_a_failed_requests_error_escaped(served, tmp_path, k8s):
    """The error of a failed request is the predictor's, which may quote what a client sent: an ESC sequence
    in it is shown as its escape on the operator's terminal, not obeyed."""
    proj, url = served
    spec = yaml.safe_load((proj / "mlkit.yaml").read_text())
    spec["cluster"] = {"existing": {"name": "prod-eks", "context": "emulator"}}
    (proj / "mlkit.yaml").write_text(yaml.safe_dump(spec))
    env = {"KUBECONFIG": str(emulator_kubeconfig(tmp_path / "kubeconfig", k8s.url))}
    k8s.proxy("async-demo", "documents:http", url)
    failed = mlkit("predict", "documents", json.dumps({"fail": "owned \x1b]0;pwned\x07 title"}), cwd=proj, env=env)
    assert_one_line_error(failed, "failed after 3 attempts", "ValueError: owned \\x1b]0;pwned\\x07 title", code=3)
    assert "\x1b" not in failed.stderr


def test_no_wait_and_wait_s_go_with_async_apis_only(tmp_path):
    """A script passing --no-wait expects an id on stdout: for a realtime API that is a usage error (exit 2), not ignored."""
    assert mlkit("init", "rt", "--example", "sentiment", cwd=tmp_path).returncode == 0
    for flags in (["--no-wait"], ["--wait-s", "5"]):
        out = mlkit("predict", "sentiment", '{"text": "fine"}', *flags, cwd=tmp_path / "rt")
        assert out.returncode == 2, (flags, out.stderr)
        assert "--no-wait and --wait-s go with async APIs; sentiment is a realtime API" in " ".join(out.stderr.split())
