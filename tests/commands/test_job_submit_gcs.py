"""`mlkit job submit` on GCP: the shards go to Cloud Storage (the GCS emulator) under the API's grant, and the
rendered pod's worker command runs a shard from there (the test plays the Job controller, as test_job_submit does)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.commands.test_job_submit import pod
from tests.conftest import assert_one_line_error, emulator_kubeconfig, mlkit
from tests.deploy.conftest import gcs  # noqa: F401  (fixture: the GCS emulator with a bucket `models`)
from tests.runtime.conftest import PREDICTORS

SPEC = """\
project: jobs-demo
cloud: gcp
region: us-central1
gcp_project: acme-ml
cluster: {existing: {name: prod-gke, context: emulator}}
apis:
  - name: scorer
    kind: batch
    predictor: predictor.py:Predictor
    model: gs://team-models/scorer/v1/
    config: {poison: [7]}
    batch: {shard_size: 25, batch_size: 8, on_error: skip, output: "gs://models/runs/"}
"""
ITEMS = 60


@pytest.fixture
def proj(tmp_path, k8s, gcs):  # noqa: F811
    root = tmp_path / "proj"
    root.mkdir()
    (root / "mlkit.yaml").write_text(SPEC)
    shutil.copy(PREDICTORS / "scorer.py", root / "predictor.py")
    (root / "items.jsonl").write_text("".join(json.dumps({"x": i}) + "\n" for i in range(ITEMS)))
    (root / ".mlkit").mkdir()
    (root / ".mlkit/deploy.json").write_text(json.dumps({"images": {"scorer": "0123abcd"}, "models": {}, "revisions": {}, "pins": {}}))
    env = {k: os.environ[k] for k in ("STORAGE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT")}
    return root, env | {"KUBECONFIG": str(emulator_kubeconfig(tmp_path / "kubeconfig", k8s.url))}


def gcs_objects(prefix: str) -> dict[str, bytes]:
    from google.cloud import storage

    client = storage.Client()
    return {b.name: b.download_as_bytes() for b in client.list_blobs("models", prefix=prefix)}


def test_submit_writes_the_shards_to_cloud_storage_and_a_pod_runs_one_from_there(proj, k8s):
    root, env = proj
    submitted = mlkit("job", "submit", "--input", "items.jsonl", "--json", cwd=root, env=env)
    assert submitted.returncode == 0, submitted.stderr
    out = json.loads(submitted.stdout)
    assert out["output"] == f"gs://models/runs/{out['id']}/" and out["shards"] == 3
    prefix = f"runs/{out['id']}/"
    assert sorted(k for k in gcs_objects(prefix + "shards/")) == [f"{prefix}shards/{i:05d}.jsonl" for i in range(3)]
    [job] = k8s.objects("jobs")
    sa = job["spec"]["template"]["spec"]["serviceAccountName"]
    assert sa == "scorer"

    worker = pod(root, env, job, 0)
    _, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    results = [json.loads(line) for line in gcs_objects(prefix + "results/00000.jsonl")[prefix + "results/00000.jsonl"].splitlines()]
    errors = [json.loads(line) for line in gcs_objects(prefix + "errors/").get(prefix + "errors/00000.jsonl", b"").splitlines()]
    assert sorted(r["index"] for r in results) == [i for i in range(25) if i != 7] and [e["index"] for e in errors] == [7]

    assert_one_line_error(mlkit("job", "submit", "--input", "items.jsonl", "--output", "gs://models/other/x", cwd=root, env=env),
                          "scorer's pods may write only under gs://models/runs/")
