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


TASK = SPEC.replace("kind: batch", "kind: task").replace(
    "    batch: {batch_size: 64, workers: 3, on_error: skip, retries: 1, fatal_errors: [MemoryError, mymodule.BadModel], queue: team-a}\n",
    "    task: {schedule: '0 3 * * *'}\n",
)


@pytest.mark.parametrize("schedule", ["0 3 * * *", "@daily", "@HOURLY", "*/15 0-6 ? JAN-mar mon-FRI", "5/10 1,13 1-31/2 * 0", "* * * * *"])
def test_a_task_takes_a_cron_schedule(schedule: str):
    spec = loads(TASK.replace("'0 3 * * *'", repr(schedule)))
    assert spec.apis[0].task.schedule == schedule


@pytest.mark.parametrize(
    ("schedule", "said"),
    [
        ("0 3 * *", "has 4 field(s)"),
        ("0 3 * * * *", "has 6 field(s)"),
        ("0  3 * * *", "extra spaces"),
        ("0 3 * * *; rm -rf /", "has 8 field(s)"),
        ("$(reboot) 3 * * *", "minute '$(reboot)'"),
        ("0 3 * * *\\n0 4 * * *", "invisible character U+000A (a newline)"),  # YAML reads \\n in a double-quoted scalar as a newline
        ("0 3 * * *\\t", "invisible character U+0009 (a tab)"),
        ("0 3 * * \u00b7", "control or non-ASCII"),
        ("60 * * * *", "minute '60': '60' is out of range"),
        ("0 24 * * *", "hour '24'"),
        ("0 3 0 * *", "day of month '0'"),
        ("0 3 * 13 *", "month '13'"),
        ("0 3 * * 7", "day of week '7': '7' is out of range or not a number (valid: 0-6 or SUN-SAT)"),
        ("0 3 * JANUARY *", "month 'JANUARY'"),
        ("0 3 * * MON-SUNDAY", "day of week"),
        ("5-1 * * * *", "range 5-1 runs backwards"),
        ("*/0 * * * *", "step '0' is not a whole number from 1 to 60"),
        ("*/x * * * *", "step 'x'"),
        ("1,,2 * * * *", "minute '1,,2'"),
        ("? * * * *", "minute '?'"),
        ("@every 1h", "@every 1h is not a cron macro"),
        ("@reboot", "is not a cron macro"),
        ("TZ=UTC 0 3 * * *", "use task.time_zone instead"),
    ],
)
def test_a_hostile_schedule_is_one_line_naming_the_field(schedule: str, said: str):
    found = only(TASK.replace("'0 3 * * *'", '"' + schedule + '"'))
    assert "apis[0].task.schedule" in found and said in found, found


def test_a_schedules_zone_and_overlap_are_checked():
    assert loads(TASK.replace("{schedule: '0 3 * * *'}", "{schedule: '0 3 * * *', time_zone: Europe/Berlin, overlap: allow}")).apis[0].task.overlap == "allow"
    assert "apis[0].task.time_zone: 'Mars/Olympus' is not an IANA time zone" in only(TASK.replace("'0 3 * * *'}", "'0 3 * * *', time_zone: Mars/Olympus}"))
    assert "apis[0].task.time_zone" in only(TASK.replace("'0 3 * * *'}", "'0 3 * * *', time_zone: Local}"))
    assert "apis[0].task.time_zone: the zone of a schedule; set task.schedule" in only(TASK.replace("schedule: '0 3 * * *'", "time_zone: UTC"))
    assert "apis[0].task.overlap: what overlapping scheduled runs do" in only(TASK.replace("schedule: '0 3 * * *'", "overlap: allow"))
    assert "apis[0].task.overlap" in only(TASK.replace("'0 3 * * *'}", "'0 3 * * *', overlap: Forbid}"))
    assert "only for `kind: task`" in only(TASK.replace("kind: task", "kind: batch"))


def test_a_batch_api_renders_no_service_only_its_identity_and_settings():
    spec = loads(SPEC)
    files = render(spec, Facts())
    assert sorted(f for f in files if f.startswith("infra/k8s/scorer/")) == ["infra/k8s/scorer/configmap.yaml", "infra/k8s/scorer/serviceaccount.yaml"]
    assert "infra/k8s/web/deployment.yaml" in files
    rows = [p["title"] for p in dashboard(spec)["panels"] if p["type"] == "row"]
    assert rows == ["API web"]
