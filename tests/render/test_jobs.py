"""The Indexed Job of a batch job: strictly valid, and carrying the job's rules in Kubernetes' own fields."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from mlkit.render.facts import Facts
from mlkit.render.jobs import render_job
from mlkit.spec.loader import load, loads
from mlkit_runtime.jobs.worker import FATAL_EXIT
from tests.conftest import EXAMPLES
from tests.kube_expand import expand
from tests.render.test_k8s import KUBERNETES_VERSION

GPU_SPEC = """\
project: batch-demo
cloud: aws
region: us-east-1
cluster:
  node_pools:
    - {name: cpu, instance_type: m6i.large}
    - {name: gpu, instance_type: g5.xlarge, min_nodes: 0, spot: true}
apis:
  - name: embed
    kind: batch
    predictor: predictor.py:Predictor
    model: s3://acme-models/embed/v1/
    compute: {gpu: 1, memory: 8Gi}
    batch: {retries: 3, queue: team-a, fatal_errors: [MemoryError]}
"""


def job_of(spec, name: str, shards: int = 8, workers: int = 3) -> dict:
    api = next(a for a in spec.apis if a.name == name)
    text = render_job(spec, api, Facts(), f"{name}-20261206-110000-abcdef", "s3://acme-out/jobs/x", shards, workers)
    return yaml.safe_load(text)


@pytest.mark.parametrize("version", ["1.31.0", KUBERNETES_VERSION])
def test_the_job_passes_strict_schema_validation(version):
    kubernetes_validate.validate(job_of(load(EXAMPLES / "batch" / "mlkit.yaml"), "reviews"), version, strict=True)
    kubernetes_validate.validate(job_of(loads(GPU_SPEC), "embed"), version, strict=True)


def test_an_indexed_job_one_index_per_shard_with_the_jobs_rules():
    job = job_of(load(EXAMPLES / "batch" / "mlkit.yaml"), "reviews", shards=8, workers=3)
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"], spec["backoffLimitPerIndex"]) == ("Indexed", 8, 3, 2)
    assert spec["podReplacementPolicy"] == "Failed" and "suspend" not in spec
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "FailIndex", "onExitCodes": {"containerName": "worker", "operator": "In", "values": [FATAL_EXIT]}}
    assert rules[1] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "reviews"
    worker = pod["containers"][0]
    assert worker["command"] == ["python", "-m", "mlkit_runtime.jobs", "--job", "s3://acme-out/jobs/x"]
    assert {e["name"]: e["value"] for e in worker["env"]} == {
        "MLKIT_PREDICTOR": "predictor.py:Predictor", "MLKIT_MODEL_DIR": "/models", "MLKIT_CONFIG": "@/etc/mlkit/config/stable.json", "HOME": "/tmp",
    }
    assert job["metadata"]["labels"]["mlkit.dev/job"] == "reviews-20261206-110000-abcdef"
    # apply prunes by the owner labels; a job is not in infra/ and must never be pruned.
    assert "app.kubernetes.io/managed-by" not in job["metadata"]["labels"]


def test_more_workers_than_shards_run_one_pod_per_shard():
    assert job_of(load(EXAMPLES / "batch" / "mlkit.yaml"), "reviews", shards=2, workers=10)["spec"]["parallelism"] == 2


def test_a_gpu_job_lands_on_the_gpu_pool_fetches_its_model_and_waits_in_its_kueue_queue():
    job = job_of(loads(GPU_SPEC), "embed")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a" and job["spec"]["suspend"] is True
    assert job["spec"]["backoffLimitPerIndex"] == 3
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"]["mlkit.dev/pool"] == "gpu"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    assert pod["initContainers"][0]["name"] == "fetch-model" and "s3://acme-models/embed/v1/" in pod["initContainers"][0]["command"]


def test_the_jobs_output_reaches_the_worker_as_written_whatever_it_holds():
    """The output URI comes from `mlkit job submit --output`: Kubernetes would expand a `$(VAR)` in it (found
    when merging the $(VAR) escaping with batch jobs, whose template quoted it with q)."""
    spec = loads(GPU_SPEC)
    api = spec.apis[0]
    output = "s3://acme-out/jobs/$(HOME)/$$x"
    job = yaml.safe_load(render_job(spec, api, Facts(), "embed-20261206-110000-abcdef", output, 8, 3))
    worker = job["spec"]["template"]["spec"]["containers"][0]
    variables = {e["name"]: e["value"] for e in worker["env"]} | {"HOME": "/root", "x": "y"}
    assert [expand(a, variables) for a in worker["command"]][-1] == output


def test_job_pods_spread_by_labels_they_carry():
    """A topology spread constraint counts the pods its selector matches: the Deployment's (api and track)
    matched no job pod, which carry no track, so a job's pods were spread by nothing."""
    from mlkit.render.jobs import render_task
    from tests.render.test_task_job import SPEC
    from tests.render.test_task_schedule import SCHEDULED, cronjob

    task_spec = loads(SPEC)
    templates = {
        "batch": job_of(load(EXAMPLES / "batch" / "mlkit.yaml"), "reviews")["spec"]["template"],
        "task": yaml.safe_load(render_task(task_spec, task_spec.apis[0], Facts(), "nightly-20261206-110000-abcdef", None))["spec"]["template"],
        "scheduled": cronjob(SCHEDULED)["spec"]["jobTemplate"]["spec"]["template"],
    }
    for kind, template in templates.items():
        own = template["metadata"]["labels"]
        constraints = template["spec"]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in constraints} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}, kind
        for c in constraints:
            selector = c["labelSelector"]["matchLabels"]
            assert selector.items() <= own.items(), (kind, selector, own)
    assert templates["batch"]["spec"]["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"]["mlkit.dev/job"] == "reviews-20261206-110000-abcdef"
