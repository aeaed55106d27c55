"""What a user can get wrong around deploying, each answered with one line naming the fix and no
cluster or cloud touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import assert_one_line_error, mlkit

SPEC = """\
project: err-demo
cloud: aws
region: us-west-2
cluster: {existing: {name: prod, context: nowhere}}
apis: [{name: a, predictor: predictor.py:Predictor, model: s3://models-m/a/}]
"""


def project(tmp_path):
    (tmp_path / "mlkit.yaml").write_text(SPEC)
    (tmp_path / "predictor.py").write_text("class Predictor:\n    def __init__(self, c, m): pass\n    def predict(self, p): return p\n")
    return tmp_path


def test_predict_input_mistakes(tmp_path):
    root = project(tmp_path)
    missing = mlkit("predict", "a", "@nope.json", cwd=root)
    assert missing.returncode == 1 and "PAYLOAD @nope.json: cannot read nope.json" in missing.stderr
    no_canary = mlkit("predict", "a", "{}", "--canary", cwd=root)
    assert no_canary.returncode == 1 and "API a has no canary in mlkit.yaml" in no_canary.stderr
    stdin = mlkit("predict", "a", "-", cwd=root, input="[1, 2")
    assert stdin.returncode == 1 and "standard input: not valid JSON" in stdin.stderr


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


def test_apply_cluster_on_an_existing_cluster_is_refused(tmp_path):
    root = project(tmp_path)
    out = mlkit("apply", "--only", "cluster", cwd=root)
    assert out.returncode == 1 and "cluster.existing is set, so there is no cluster stack to apply; use --only addons or --only apis" in out.stderr
    bad = mlkit("apply", "--only", "everything", cwd=root)
    assert bad.returncode == 2 and "everything" in bad.stderr


def test_a_damaged_deploy_record_names_itself(tmp_path):
    root = project(tmp_path)
    (root / ".mlkit").mkdir()
    (root / ".mlkit" / "deploy.json").write_text(json.dumps({"images": {}, "color": "blue"}))
    out = mlkit("render", "--allow-dirty", cwd=root)
    assert out.returncode == 1 and "deploy.json: unknown field 'color'" in out.stderr and "delete it" in out.stderr


def test_token_needs_a_region_on_aws(tmp_path):
    out = mlkit("token", "--cloud", "aws", "--cluster", "prod", cwd=tmp_path)
    assert out.returncode == 1 and "--region is required with --cloud aws" in out.stderr
