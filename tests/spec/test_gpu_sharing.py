"""`gpu_sharing` on a pool: what is accepted, and the one-line refusals."""

from __future__ import annotations

import pytest

from mlkit.spec.loader import loads
from tests.spec.refusals import only, problems

AWS = """\
project: acme
cloud: aws
region: us-west-2
cluster:
  node_pools:
    - {{name: cpu, instance_type: m6i.large}}
    - {{name: gpu, instance_type: {itype}, gpu_sharing: {sharing}}}
apis:
  - {{name: a, predictor: p.py:P, node_pool: gpu, compute: {compute}}}
"""
GCP = """\
project: acme
cloud: gcp
region: us-central1
gcp_project: acme-prod
cluster:
  kubernetes_version: "{version}"
  node_pools:
    - {{name: cpu, instance_type: n2-standard-4}}
    - {{name: gpu, {pool}, gpu_sharing: {sharing}}}
apis:
  - {{name: a, predictor: p.py:P, node_pool: gpu, compute: {compute}}}
"""
MPS4 = "{strategy: mps, replicas_per_gpu: 4}"
SLICE4 = "{strategy: time-slicing, replicas_per_gpu: 4}"


def aws(itype="g5.xlarge", sharing=SLICE4, compute="{gpu: 1}") -> str:
    return AWS.format(itype=itype, sharing=sharing, compute=compute)


def gcp(pool="instance_type: g2-standard-8", sharing=SLICE4, compute="{gpu: 1}", version="1.35") -> str:
    return GCP.format(pool=pool, sharing=sharing, compute=compute, version=version)


@pytest.mark.parametrize("text", [aws(), aws(sharing=MPS4), gcp(), gcp(version="1.27"),
                                  gcp(pool="instance_type: n1-standard-8, gpu: {type: nvidia-tesla-t4, count: 2}"),
                                  aws(itype="g6e.12xlarge", sharing="{strategy: mps, replicas_per_gpu: 48}")])
def test_a_shared_nvidia_pool_with_one_share_per_replica_is_accepted(text):
    spec = loads(text)
    assert spec.cluster.node_pools[1].gpu_sharing is not None


@pytest.mark.parametrize(("text", "expected"), [
    (aws(itype="m6i.large", compute="{cpu: 1}"), "'gpu' is a pool without GPUs"),
    (aws(itype="inf2.xlarge", compute="{neuron_cores: 2}"), "'gpu' is a Neuron pool"),
    (gcp(pool="tpu: {version: v5e, topology: 2x2}, zones: [us-central1-a]", compute="{tpu_chips: 4}"), "'gpu' is a TPU pool"),
    (aws(itype="g6e.12xlarge", compute="{gpu: 2}"), "compute.gpu counts shares and a replica gets one: set gpu: 1"),
    (gcp(sharing=MPS4), "GKE's MPS needs pods with hostIPC: true"),
])
def test_refusals_name_the_field_and_the_fix(text, expected):
    problem = only(text)
    assert expected in problem, problem
    assert "\n" not in problem


def test_the_refusal_points_at_the_pool_field():
    assert "cluster.node_pools[1].gpu_sharing:" in only(aws(itype="m6i.large", compute="{cpu: 1}"))
    assert "cluster.node_pools[1].gpu_sharing.strategy:" in only(gcp(sharing=MPS4))
    assert "apis[0].compute.gpu:" in only(aws(itype="g6e.12xlarge", compute="{gpu: 2}"))


def test_an_engine_api_is_refused_on_a_shared_pool():
    engine = "engine: vllm, model: s3://acme-models/llm/, node_pool: gpu, compute: {cpu: 3, memory: 12Gi, gpu: 1}"
    text = aws().replace("predictor: p.py:P, node_pool: gpu, compute: {gpu: 1}", engine)
    assert "an engine takes most of a GPU's memory" in only(text)


@pytest.mark.parametrize(("sharing", "expected"), [
    ("{strategy: mps, replicas_per_gpu: 1}", "1 is too small (valid: at least 2)"),
    ("{strategy: mps, replicas_per_gpu: 49}", "49 is too large (valid: at most 48)"),
    ("{strategy: mig, replicas_per_gpu: 4}", "time-slicing"),
    ("{strategy: mps}", "replicas_per_gpu"),
    ('{strategy: mps, replicas_per_gpu: "4"}', "is not a whole number"),
])
def test_out_of_range_or_unknown_settings_are_refused(sharing, expected):
    problem = only(aws(sharing=sharing))
    assert expected in problem and "gpu_sharing" in problem, problem


def test_eks_auto_mode_is_refused_in_one_line():
    """Auto Mode (another branch adds it to node_provisioning) runs its own device plugin: mlkit cannot share its GPUs."""
    from mlkit.spec import rules

    spec = loads(aws())
    spec.cluster.node_provisioning = "auto"  # type: ignore[assignment]  # the value Auto Mode's branch adds
    found = [p for p in rules.check(spec) if p.loc == ("cluster", "node_pools", 1, "gpu_sharing")]
    assert len(found) == 1 and "EKS Auto Mode runs its own NVIDIA device plugin" in found[0].message, found


@pytest.mark.parametrize("sharing", ["true", "mps", "[mps, 4]"])
def test_a_sharing_value_of_the_wrong_shape_is_one_line(sharing):
    problem = only(aws(sharing=sharing))
    assert "cluster.node_pools[1].gpu_sharing" in problem and "\n" not in problem, problem


def test_an_empty_sharing_block_names_both_missing_fields():
    assert [p.split(": ", 1)[1] for p in problems(aws(sharing="{}"))] == [
        "cluster.node_pools[1].gpu_sharing.strategy: required field is missing",
        "cluster.node_pools[1].gpu_sharing.replicas_per_gpu: required field is missing",
    ]
