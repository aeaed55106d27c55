"""API keys on a real server: 401 without a valid key on every route but the probes and /metrics, keys re-read."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.runtime.conftest import FRONTS_ENV, PREDICTORS, start, stop


def test_predict_needs_a_valid_key_and_health_does_not(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# rotated 2026-11\nk-one\n\nk-two\n")
    server = start(tmp_path, "echo.py:Echo", "--api-keys-file", str(keys))
    try:
        url = server.url + "/predict"
        missing = httpx.post(url, json={"x": 1})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in missing.json()["error"]
        wrong = httpx.post(url, json={"x": 1}, headers={"Authorization": "Bearer k-three"})
        assert wrong.status_code == 401 and "not valid" in wrong.json()["error"]
        assert httpx.post(url, json={"x": 1}, headers={"Authorization": "Bearer k-two"}).status_code == 200
        assert httpx.post(url, json={"x": 1}, headers={"X-API-Key": "k-one"}).status_code == 200
        assert httpx.post(server.url + "/v1/models/echo:predict", json={"instances": [1]}).status_code == 401
        assert httpx.get(server.url + "/readyz").status_code == 200
        assert 'mlkit_requests_total{route="/predict",status="401"}' in httpx.get(server.url + "/metrics").text

        keys.write_text("k-three\n")  # what the kubelet does when the Secret changes
        time.sleep(5.5)
        assert httpx.post(url, json={"x": 1}, headers={"X-API-Key": "k-three"}).status_code == 200
        assert httpx.post(url, json={"x": 1}, headers={"X-API-Key": "k-one"}).status_code == 401
    finally:
        server.proc.terminate()
        server.proc.wait(10)


def test_missing_or_empty_key_file_stops_start_up_with_the_fix(tmp_path):
    empty = tmp_path / "keys"
    empty.write_text("\n# none yet\n")
    for path, words in ((tmp_path / "absent", "cannot read"), (empty, "holds no keys")):
        result = subprocess.run(
            [sys.executable, "-m", "mlkit_runtime", "--predictor", f"{PREDICTORS}/echo.py:Echo", "--api-keys-file", str(path)],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 2
        assert "MLKIT_API_KEYS_FILE" in result.stderr and words in result.stderr


# Issue 22: with keys on, these answered without a key while the README (now docs/concepts/manifests.md) said keys apply on every route.
NEEDS_KEY = [
    ("GET", "/v2"), ("GET", "/v2/models/echo"), ("GET", "/v2/models/other"), ("GET", "/v2/models/echo/ready"),
    ("GET", "/v1/models/echo"), ("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/redoc"), ("GET", "/no-such-route"),
    ("POST", "/predict"), ("POST", "/v1/models/echo:predict"), ("POST", "/v2/models/echo/infer"),
    ("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("GET", "/v1/models"),
]
OPEN = [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/v2/health/live"), ("GET", "/v2/health/ready"), ("GET", "/metrics")]


def test_which_routes_need_a_key(tmp_path):
    from mlkit_runtime.auth import OPEN_PATHS

    assert {path for _, path in OPEN} == OPEN_PATHS  # the docs' list (docs/concepts/manifests.md), the code's and this test's are one
    keys = tmp_path / "keys"
    keys.write_text("k-one\n")
    server = start(tmp_path, "tokens.py:Predictor", "--api-keys-file", str(keys))
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            for method, path in NEEDS_KEY:
                r = c.request(method, path, json={})
                assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (path, r.status_code, r.text[:200])
                assert "echo" not in r.text, (path, r.text)  # nothing about the API before the key
                if path.startswith(("/v1/chat", "/v1/completions")) or path == "/v1/models":
                    assert r.json()["error"]["type"] == "authentication_error", (path, r.text)
                else:
                    assert set(r.json()) == {"error", "request_id"}, (path, r.text)
                keyed = c.request(method, path, json={}, headers={"X-API-Key": "k-one"})
                assert keyed.status_code != 401, (path, keyed.status_code)
            for method, path in OPEN:
                assert c.request(method, path).status_code == 200, path
        manifests = (Path(__file__).resolve().parents[2] / "docs/concepts/manifests.md").read_text()
        for _, path in OPEN:
            assert f"`{path}`" in manifests.split("open without a key:", 1)[1].split("\n\n", 1)[0], path
    finally:
        stop(server)


def test_a_keys_file_rewritten_as_non_utf8_keeps_the_old_keys(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("k-one\n")
    server = start(tmp_path, "echo.py:Echo", "--api-keys-file", str(keys))
    try:
        keys.write_bytes(b"k-\xff\xfe-two\n")
        time.sleep(5.5)  # past the recheck
        for _ in range(2):
            assert httpx.post(server.url + "/predict", json={}, headers={"X-API-Key": "k-one"}).status_code == 200
        log = server.output()
        assert "not UTF-8 text" in log and "keeping the 1 keys read before" in log and "Traceback" not in log, log[-2000:]
        # Once per change of the file, not per request; with fronts (runtime/fronts.py) each front reads the file itself.
        assert 1 <= log.count("not UTF-8 text") <= (int(FRONTS_ENV["MLKIT_FRONTS"]) if FRONTS_ENV else 1)
        keys.write_text("k-three\n")
        time.sleep(5.5)
        assert httpx.post(server.url + "/predict", json={}, headers={"X-API-Key": "k-three"}).status_code == 200
    finally:
        stop(server)


def test_a_keys_file_emptied_after_the_check_is_one_line(tmp_path, monkeypatch, capsys):
    from mlkit_runtime.__main__ import main
    from mlkit_runtime.settings import Settings

    keys = tmp_path / "keys"
    keys.write_text("k-one\n")
    checked = Settings.load

    def load_then_empty(*args, **kwargs):
        settings = checked(*args, **kwargs)
        keys.write_text("")  # between the check and start-up
        return settings

    monkeypatch.setattr(Settings, "load", load_then_empty)
    assert main(["--predictor", f"{PREDICTORS}/echo.py:Echo", "--api-keys-file", str(keys), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no keys" in err and "Traceback" not in err, err
