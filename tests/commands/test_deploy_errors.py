"""What a user can get wrong around deploying, each answered with one line naming the fix and no
cluster or cloud touched."""

from __future__ import annotations

import json

from tests.conftest import mlkit

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
