"""`concurrency.fronts` decides MLKIT_FRONTS in a realtime API's pods (cli/render/fronts.py)."""

from __future__ import annotations

import pytest
import yaml

from mlkit.render.facts import Facts
from mlkit.render.k8s import render
from mlkit.spec.loader import loads
from tests.spec.refusals import only

SPEC = """\
project: fronts-demo
cloud: aws
region: us-east-1
cluster:
  node_pools:
    - {name: cpu, instance_type: m6i.4xlarge}
apis:
  - name: cnn
    predictor: predictor.py:Predictor
"""


def runtime_env(extra: str, spec: str = SPEC) -> dict[str, str]:
    files = render(loads(spec + extra), Facts())
    deployment = yaml.safe_load(files["infra/k8s/cnn/deployment.yaml"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


@pytest.mark.parametrize(
    ("extra", "fronts"),
    [
        ("", None),  # compute.cpu defaults to 1: one process, no variable
        ("    compute: {cpu: 500m}\n", None),
        ("    compute: {cpu: 1500m}\n", "2"),  # unset, from the CPU request (the runtime's --fronts auto rule)
        ("    compute: {cpu: 2}\n", "2"),
        ("    compute: {cpu: 4}\n", "3"),
        ("    compute: {cpu: \"9.5\"}\n", "8"),
        ("    compute: {cpu: 100}\n", "64"),  # at most what the runtime accepts (a count over it would stop the pod)
        ("    compute: {cpu: 8}\n    concurrency: {fronts: 1}\n", None),  # the spec keeps a big pod in one process
        ("    compute: {cpu: 4}\n    concurrency: {fronts: 3}\n", "3"),
        ("    compute: {cpu: 1}\n    concurrency: {fronts: 5}\n", "5"),
    ],
)
def test_fronts_are_what_the_spec_says_else_follow_the_cpu_request(extra: str, fronts: str | None) -> None:
    assert runtime_env(extra).get("MLKIT_FRONTS") == fronts


@pytest.mark.parametrize("cpu", ["100m", "1", "1001m", "1500m", "2", "2500m", "3", "4", "7999m", "8", "16", "64", "1024"])
def test_the_rendered_rule_is_the_runtimes(cpu: str) -> None:
    # Written twice (render imports no part of the runtime): the pod's count must be what --fronts auto
    # would choose in a container of that quota.
    from mlkit.render.fronts import fronts_for
    from mlkit.spec.schema import quantity_value
    from mlkit_runtime.cpus import fronts_for as runtime_fronts_for

    cpus = quantity_value(cpu)
    assert cpus is not None
    assert fronts_for(cpus) == runtime_fronts_for(float(cpus))


def test_fronts_are_for_realtime_apis_only() -> None:
    found = only(SPEC + "    kind: async\n    concurrency: {fronts: 2}\n")
    assert "apis[0].concurrency.fronts" in found and "realtime predictor API only" in found


@pytest.mark.parametrize("value", ["0", "65", "two", "1.5"])
def test_a_bad_front_count_is_refused(value: str) -> None:
    assert "fronts" in only(SPEC + f"    concurrency: {{fronts: {value}}}\n")


GPU_SPEC = SPEC.replace("{name: cpu, instance_type: m6i.4xlarge}", "{name: gpu, instance_type: g5.12xlarge}")  # 4 A10G


@pytest.mark.parametrize(
    ("extra", "processes"),
    [
        ("    compute: {gpu: 4}\n", None),  # one model process sees every GPU unless the spec asks
        ("    compute: {gpu: 4}\n    concurrency: {model_per_gpu: false}\n", None),
        ("    compute: {gpu: 4}\n    concurrency: {model_per_gpu: true}\n", "4"),
        ("    compute: {gpu: 2}\n    concurrency: {model_per_gpu: true, fronts: 3}\n", "2"),
    ],
)
def test_model_processes_follow_the_gpu_count_where_the_spec_asks(extra: str, processes: str | None) -> None:
    assert runtime_env(extra, GPU_SPEC).get("MLKIT_MODEL_PROCESSES") == processes


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ("    compute: {gpu: 1}\n    concurrency: {model_per_gpu: true}\n", "needs `compute.gpu` of 2 or more (it is 1)"),
        ("    kind: async\n    compute: {gpu: 2}\n    concurrency: {model_per_gpu: true}\n", "realtime predictor API only"),
    ],
)
def test_model_per_gpu_is_refused_where_it_cannot_apply(extra: str, says: str) -> None:
    found = only(GPU_SPEC + extra)
    assert "apis[0].concurrency.model_per_gpu" in found and says in found
