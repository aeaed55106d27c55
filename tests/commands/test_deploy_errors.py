"""What a user can get wrong around deploying, each answered with one line naming the fix and no
cluster or cloud touched: AWS, the proxies and the kubeconfig's cluster all point at one listener on
127.0.0.1, which must see no connection."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading

import pytest
import yaml

from tests.conftest import assert_one_line_error, mlkit

SPEC = """\
project: err-demo
cloud: aws
region: us-west-2
cluster: {existing: {name: prod, context: nowhere}}
apis: [{name: a, predictor: predictor.py:Predictor, model: s3://models-m/a/}]
"""


@pytest.fixture
def untouched(tmp_path):
    """The environment every command here runs in, and after the test, a check that nothing connected."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    seen: list[tuple] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = listener.accept()
            except OSError:
                continue
            seen.append(peer)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "nowhere",
        "clusters": [{"name": "nowhere", "cluster": {"server": url}}],
        "users": [{"name": "nowhere", "user": {"token": "t"}}],
        "contexts": [{"name": "nowhere", "context": {"cluster": "nowhere", "user": "nowhere"}}],
    }))
    env = {"KUBECONFIG": str(kubeconfig), "AWS_ENDPOINT_URL": url, "HTTP_PROXY": url, "HTTPS_PROXY": url, "NO_PROXY": "",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}
    yield env
    stop.set()
    thread.join()
    listener.close()
    assert seen == [], f"a command connected to the cluster or cloud stand-in: {seen}"


def test_the_listener_sees_a_command_that_touches_the_cluster(tmp_path):
    # A test of the test: `mlkit status` of this project goes to the kubeconfig's cluster.
    gen = untouched.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    env = next(gen)
    mlkit("status", cwd=project(tmp_path / "p"), env=env, timeout=120)
    with pytest.raises(AssertionError, match="connected"):
        next(gen)


def project(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "mlkit.yaml").write_text(SPEC)
    (tmp_path / "predictor.py").write_text("class Predictor:\n    def __init__(self, c, m): pass\n    def predict(self, p): return p\n")
    return tmp_path


def test_predict_input_mistakes(tmp_path, untouched):
    root = project(tmp_path)
    assert_one_line_error(mlkit("predict", "a", "@nope.json", cwd=root, env=untouched), "PAYLOAD @nope.json: cannot read nope.json")
    assert_one_line_error(mlkit("predict", "a", "{}", "--canary", cwd=root, env=untouched), "API a has no canary in mlkit.yaml")
    assert_one_line_error(mlkit("predict", "a", "-", cwd=root, input="[1, 2", env=untouched), "standard input: not valid JSON")


def test_predict_reads_a_bounded_body_from_a_regular_file_or_a_pipe(tmp_path):
    """`@/dev/zero`, a FIFO with no writer and `-` fed from /dev/zero once read until the kernel killed mlkit
    (or for ever): each is one line now, within seconds."""
    root = project(tmp_path)
    assert_one_line_error(mlkit("predict", "a", "@/dev/zero", cwd=root, timeout=60), "PAYLOAD @/dev/zero: not a regular file (a device, pipe or socket)")
    os.mkfifo(root / "fifo.json")
    assert_one_line_error(mlkit("predict", "a", "@fifo.json", cwd=root, timeout=60), "PAYLOAD @fifo.json: not a regular file")
    assert_one_line_error(mlkit("predict", "a", f"@{root}", cwd=root, timeout=60), f"PAYLOAD @{root}: a folder, not a file")
    with open(root / "big.json", "wb") as f:  # sparse: 11 MiB on paper
        f.truncate(11 * 2**20)
    assert_one_line_error(mlkit("predict", "a", "@big.json", cwd=root), "PAYLOAD @big.json: larger than 10 MiB (11,534,336 bytes)")
    with open("/dev/zero", "rb") as zero:
        fed = subprocess.run([sys.executable, "-m", "mlkit", "predict", "a", "-"], cwd=root, stdin=zero, capture_output=True, text=True, timeout=60)
    assert_one_line_error(fed, "PAYLOAD: standard input holds more than 10 MiB")
    (root / "latin1.json").write_bytes(b'{"text": "caf\xe9"}')
    assert_one_line_error(mlkit("predict", "a", "@latin1.json", cwd=root), "latin1.json: not UTF-8 text (byte 14")


@pytest.mark.parametrize(("payload", "fragment"), [
    ('{"text": NaN}', "PAYLOAD: NaN is not JSON"),
    ('{"text": -Infinity}', "PAYLOAD: -Infinity is not JSON"),
    ('{"x": 1e400}', "PAYLOAD: the number 1e400 is too large to be finite"),
    ("[" + "7" * 5000 + "]", "PAYLOAD: an integer of 5000 digits (at most 309"),
    ("[" * 65 + "]" * 65, "PAYLOAD: nested more than 64 levels deep"),
    ("[" * 30_000 + "]" * 30_000, "PAYLOAD: nested more than 64 levels deep"),
])
def test_predict_checks_a_body_as_the_runtime_would_before_sending_it(tmp_path, payload, fragment):
    """Python's json takes NaN and 1e400 (which the runtime refuses only after the call), and raises on a
    5000-digit integer or deep nesting: each is one line naming the body, before any cluster is asked."""
    root = project(tmp_path)
    assert_one_line_error(mlkit("predict", "a", payload, cwd=root), fragment)
    (root / "body.json").write_text(payload)
    assert_one_line_error(mlkit("predict", "a", "@body.json", cwd=root), fragment.replace("PAYLOAD", "body.json"))


def test_apply_cluster_on_an_existing_cluster_is_refused(tmp_path, untouched):
    root = project(tmp_path)
    out = mlkit("apply", "--only", "cluster", cwd=root, env=untouched)
    assert_one_line_error(out, "cluster.existing is set, so there is no cluster stack to apply; use --only addons or --only apis")
    bad = mlkit("apply", "--only", "everything", cwd=root, env=untouched)
    assert bad.returncode == 2 and "everything" in bad.stderr and "Traceback" not in bad.stderr


def test_a_damaged_deploy_record_names_itself(tmp_path, untouched):
    root = project(tmp_path)
    (root / ".mlkit").mkdir()
    (root / ".mlkit" / "deploy.json").write_text(json.dumps({"images": {}, "color": "blue"}))
    assert_one_line_error(mlkit("render", "--allow-dirty", cwd=root, env=untouched), "deploy.json: unknown field 'color'", "delete it")


def test_token_needs_a_region_on_aws(tmp_path, untouched):
    assert_one_line_error(mlkit("token", "--cloud", "aws", "--cluster", "prod", cwd=tmp_path, env=untouched), "--region is required with --cloud aws")
