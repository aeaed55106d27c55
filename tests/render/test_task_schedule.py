"""A `kind: task` API with `task.schedule`: a CronJob (cli/render/schedule.py) whose runs are the task's Job as
`mlkit job submit` creates it."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from mlkit.render.facts import Facts
from mlkit.render.jobs import render_task
from mlkit.render.k8s import render
from mlkit.spec.loader import loads
from tests.render.test_k8s import KUBERNETES_VERSION
from tests.render.test_task_job import SPEC

SCHEDULED = SPEC.replace("task: {retries: 2}", "task: {retries: 2, schedule: '30 2 * * MON-FRI'}")


def cronjob(text: str = SCHEDULED) -> dict:
    files = render(loads(text), Facts())
    return yaml.safe_load(files["infra/k8s/nightly/cronjob.yaml"])


@pytest.mark.parametrize("version", ["1.31", KUBERNETES_VERSION])
@pytest.mark.parametrize("task", ["{schedule: '@daily'}", "{schedule: '*/5 * * * *', time_zone: America/New_York, overlap: replace, retries: 1}"])
def test_the_cronjob_passes_strict_schema_validation(version, task):
    kubernetes_validate.validate(cronjob(SPEC.replace("{retries: 2}", task)), version, strict=True)


def test_each_run_is_the_submitted_tasks_pod_with_the_apis_config():
    spec = loads(SCHEDULED)
    submitted = yaml.safe_load(render_task(spec, spec.apis[0], Facts(), "nightly-20261206-110000-abcdef", None))["spec"]
    job = cronjob()
    run = job["spec"]["jobTemplate"]["spec"]
    # The same pod and retry rules; only the labels differ (the controller names each run, so no job id).
    assert run["template"]["spec"] == submitted["template"]["spec"]
    assert {k: v for k, v in run.items() if k != "template"} == {k: v for k, v in submitted.items() if k not in ("template", "ttlSecondsAfterFinished")}
    assert run["template"]["metadata"]["labels"] == job["spec"]["jobTemplate"]["metadata"]["labels"] == {
        "app.kubernetes.io/name": "nightly", "mlkit.dev/api": "nightly", "app.kubernetes.io/part-of": "etl-demo"}
    assert "ttlSecondsAfterFinished" not in run, "a run's Job goes by the history limits, not a TTL"


def test_the_schedules_rules():
    job = cronjob()["spec"]
    assert (job["schedule"], job["concurrencyPolicy"], job["startingDeadlineSeconds"]) == ("30 2 * * MON-FRI", "Forbid", 600)
    assert (job["successfulJobsHistoryLimit"], job["failedJobsHistoryLimit"]) == (3, 3) and "timeZone" not in job
    other = cronjob(SPEC.replace("{retries: 2}", "{schedule: '@hourly', time_zone: Europe/Berlin, overlap: allow}"))["spec"]
    assert (other["schedule"], other["timeZone"], other["concurrencyPolicy"]) == ("@hourly", "Europe/Berlin", "Allow")


def test_no_schedule_no_cronjob_and_rendering_is_byte_identical():
    assert not any(f.endswith("cronjob.yaml") for f in render(loads(SPEC), Facts()))
    assert render(loads(SCHEDULED), Facts()) == render(loads(SCHEDULED), Facts())
