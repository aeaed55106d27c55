"""`model_access`: copy (the default) or mount, and the combinations a bucket mount cannot serve."""

from __future__ import annotations

import shutil

import pytest

from mlkit.errors import SpecError
from mlkit.spec.loader import loads
from tests.conftest import EXAMPLES, assert_one_line_error, mlkit

AWS = """\
project: mnt-demo
cloud: aws
region: us-east-1
cluster:
  node_pools: [{name: cpu, instance_type: m6i.large}, {name: gpu, instance_type: g5.12xlarge}]
apis:
  - {name: a, predictor: p.py:P, model: s3://acme-models/a/v1/, model_access: mount}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        loads(text)
    return info.value.problems


def test_copy_is_the_default_and_mount_loads_with_a_bucket_prefix_a_local_folder_or_a_whole_bucket():
    assert loads(AWS.replace(", model_access: mount", "")).apis[0].model_access == "copy"
    for model in ("s3://acme-models/a/v1/", "s3://acme-models/a/v1", "s3://acme-models", "s3://acme-models/", "model/"):
        assert loads(AWS.replace("s3://acme-models/a/v1/", model)).apis[0].model_access == "mount"


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("model_access: mount", "model_access: lazy", "apis[0].model_access"),
    # Weights Hugging Face hands the engine at start are in no bucket.
    ("predictor: p.py:P, model: s3://acme-models/a/v1/,", "engine: vllm, hf_model: org/name, compute: {gpu: 4, memory: 64Gi},",
     "apis[0].model_access: `mount` mounts a bucket prefix, and `hf_model` weights come from Hugging Face"),
    ("model: s3://acme-models/a/v1/, ", "", "apis[0].model_access: this API has no `model:` to mount"),
    # The prefix becomes a mount option: a space or a comma would make options of its own.
    ("s3://acme-models/a/v1/", "'s3://acme-models/a v1/'", "apis[0].model: with model_access: mount the prefix 'a v1/'"),
    ("s3://acme-models/a/v1/", "'s3://acme-models/a,implicit-dirs=false/'", "apis[0].model: with model_access: mount the prefix"),
    ("s3://acme-models/a/v1/", "s3://acme-models/a//v1/", "apis[0].model: with model_access: mount the prefix 'a//v1/'"),
    ("s3://acme-models/a/v1/", "s3://acme-models/a/../b/", "(no '.' or '..' folder"),
    ("model_access: mount}", "model_access: mount, canary: {weight: 10, model: 's3://acme-models/b c/'}, expose: public}",
     "apis[0].canary.model: with model_access: mount the prefix 'b c/'"),
])
def test_what_a_mount_cannot_serve_is_refused_naming_the_fix(old, new, expected):
    found = problems(AWS.replace(old, new))
    assert len(found) == 1 and expected in found[0], found


def test_the_cli_refuses_a_mount_of_hugging_face_weights_in_one_line(tmp_path, sentinel):
    root = tmp_path / "proj"
    shutil.copytree(EXAMPLES / "aws-accelerators", root)
    spec = root / "mlkit.yaml"
    text = spec.read_text()
    assert "    model_access: mount" in text
    spec.write_text(text.replace("    model: model/\n    model_access: mount", "    model_access: mount", 1))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    for command in ("validate", "render"):
        result = mlkit(command, cwd=root)
        assert_one_line_error(result, "mlkit.yaml", "apis[1].model_access", "this API has no `model:` to mount")
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # nothing written
    sentinel.assert_untouched()
