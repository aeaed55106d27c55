"""API keys on a real server: 401 without a valid key on predict routes, health open, keys re-read."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from tests.runtime.conftest import PREDICTORS, start


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
