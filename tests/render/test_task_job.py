"""A `kind: task` API's run as a Job (cli/render/jobs.py render_task): one pod running the class's run() once."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from mlkit.render.facts import Facts
from mlkit.render.jobs import render_task
from mlkit.spec.loader import loads
from tests.kube_expand import expand
from tests.render.test_k8s import KUBERNETES_VERSION

SPEC = """\
project: etl-demo
cloud: aws
region: us-east-1
cluster:
  node_pools:
    - {name: cpu, instance_type: m6i.large}
apis:
  - name: nightly
    kind: task
    predictor: tasks.py:Refresh
    model: s3://acme-models/refresh/v1/
    config: {table: reviews}
    compute: {cpu: 1, memory: 2Gi}
    task: {retries: 2}
"""


def task_job(config: str | None = None) -> dict:
    spec = loads(SPEC)
    return yaml.safe_load(render_task(spec, spec.apis[0], Facts(), "nightly-20261206-110000-abcdef", config))


@pytest.mark.parametrize("version", ["1.31", KUBERNETES_VERSION])
def test_the_task_job_passes_strict_schema_validation(version):
    kubernetes_validate.validate(task_job('{"day": "mon"}'), version, strict=True)


def test_one_pod_runs_the_class_once_with_the_submitted_config_as_the_apis_pod():
    job = task_job('{"day": "$(HOME)"}')
    spec = job["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 2)
    assert "completionMode" not in spec and "suspend" not in spec
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "nightly"
    (container,) = pod["containers"]
    # What the kubelet hands the process: the config exactly as submitted, no $(VAR) expanded in it.
    assert [expand(a, {"HOME": "/root"}) for a in container["command"]] == ["python", "-m", "mlkit_runtime.jobs.task", "--config", '{"day": "$(HOME)"}']
    assert {e["name"] for e in container["env"]} == {"MLKIT_PREDICTOR", "MLKIT_MODEL_DIR", "MLKIT_CONFIG", "HOME"}
    assert container["resources"]["requests"] == {"cpu": "1", "memory": "2Gi"}
    assert [i["name"] for i in pod["initContainers"]] == ["fetch-model"]
    assert task_job()["spec"]["template"]["spec"]["containers"][0]["command"] == ["python", "-m", "mlkit_runtime.jobs.task"]
