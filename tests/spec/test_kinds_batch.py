"""Workload kinds in the spec: `kind: batch | task`, their blocks, and the service settings they refuse."""

from __future__ import annotations

import pytest

from mlkit.render.dashboard import dashboard
from mlkit.render.facts import Facts
from mlkit.render.k8s import render
from mlkit.spec.loader import loads
from tests.spec.refusals import only, problems

SPEC = """\
project: batch-demo
cloud: aws
region: us-east-1
cluster:
  node_pools:
    - {name: cpu, instance_type: m6i.large}
apis:
  - name: scorer
    kind: batch
    predictor: predictor.py:Predictor
    batch: {batch_size: 64, workers: 3, on_error: skip, retries: 1, fatal_errors: [MemoryError, mymodule.BadModel], queue: team-a}
  - {name: web, predictor: predictor.py:Predictor}
"""


def test_a_batch_api_loads_with_its_settings_and_a_realtime_one_keeps_the_default_kind():
    spec = loads(SPEC)
    batch, web = spec.apis
    assert (batch.kind, web.kind) == ("batch", "realtime")
    assert batch.batch is not None
    assert (batch.batch.batch_size, batch.batch.workers, batch.batch.on_error, batch.batch.retries) == (64, 3, "skip", 1)
    assert batch.batch.fatal_errors == ["MemoryError", "mymodule.BadModel"] and batch.batch.queue == "team-a"


def test_a_batch_block_takes_the_defaults_when_left_out():
    api = loads("".join(line for line in SPEC.splitlines(keepends=True) if not line.startswith("    batch:"))).apis[0]
    assert api.batch is None and api.kind == "batch"


@pytest.mark.parametrize(
    ("change", "where", "words"),
    [
        (("kind: batch", "kind: stream"), "apis[0].kind", "realtime"),
        (("on_error: skip", "on_error: ignore"), "apis[0].batch.on_error", "fail"),
        (("fatal_errors: [MemoryError", "fatal_errors: [Memory Error"), "apis[0].batch.fatal_errors[0]", "not an exception class name"),
        (("queue: team-a", "queue: Team_A"), "apis[0].batch.queue", "DNS label"),
        (("retries: 1", "retries: -1"), "apis[0].batch.retries", "0"),
        (("workers: 3", "workers: 0"), "apis[0].batch.workers", "1"),
        (("kind: batch", "kind: realtime"), "apis[0].batch", "only for `kind: batch`"),
    ],
)
def test_bad_batch_settings_are_one_line_at_their_field(change: tuple[str, str], where: str, words: str):
    found = only(SPEC.replace(*change))
    assert where in found and words in found, found


@pytest.mark.parametrize(
    "setting",
    ["autoscaling: {min_replicas: 0}", "batching: {max_batch_size: 4}", "expose: public", "api_keys: true", "canary: {weight: 10}",
     "monitoring: {key: label, type: classification}", "concurrency: {max_in_flight: 4}", "rollout: {max_surge: '1'}", "engine: vllm"],
)
def test_service_settings_are_refused_on_a_batch_api(setting: str):
    found = problems(SPEC.replace("    kind: batch\n", f"    kind: batch\n    {setting}\n"))
    name = setting.split(":")[0]
    assert any(f"apis[0].{name}" in line and "kind: batch" in line for line in found), found


def test_a_task_runs_when_submitted_its_schedule_is_refused_for_now_and_must_be_cron():
    text = SPEC.replace("kind: batch", "kind: task").replace(
        "    batch: {batch_size: 64, workers: 3, on_error: skip, retries: 1, fatal_errors: [MemoryError, mymodule.BadModel], queue: team-a}\n",
        "    task: {schedule: '0 3 * * *'}\n",
    )
    assert loads(text.replace("task: {schedule: '0 3 * * *'}", "task: {retries: 1}")).apis[0].task.retries == 1
    not_yet = "apis[0].task.schedule: running a task on a schedule is not supported by this version of mlkit yet"
    assert not_yet in only(text)
    assert not_yet in only(text.replace("'0 3 * * *'", "'@daily'"))
    found = problems(text.replace("'0 3 * * *'", "'0 3 * *'"))
    assert any("apis[0].task.schedule" in line and "not a cron schedule" in line for line in found), found
    found = problems(text.replace("'0 3 * * *'", "'0 3 * * *; rm -rf /'"))
    assert any("apis[0].task.schedule" in line for line in found), found
    assert "only for `kind: task`" in only(text.replace("kind: task", "kind: batch"))


def test_a_batch_api_renders_no_service_only_its_identity_and_settings():
    spec = loads(SPEC)
    files = render(spec, Facts())
    assert sorted(f for f in files if f.startswith("infra/k8s/scorer/")) == ["infra/k8s/scorer/configmap.yaml", "infra/k8s/scorer/serviceaccount.yaml"]
    assert "infra/k8s/web/deployment.yaml" in files
    rows = [p["title"] for p in dashboard(spec)["panels"] if p["type"] == "row"]
    assert rows == ["API web"]
