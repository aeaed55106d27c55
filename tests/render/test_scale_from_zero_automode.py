"""Scale from zero under EKS Auto Mode: for every API of every AWS example (rendered with
`node_provisioning: auto-mode`) and the GPU/Neuron matrix, a node that the API's NodePool may launch can
hold one replica.

Auto Mode is Karpenter run by AWS, so the check is the Karpenter one (test_scale_from_zero_karpenter.py)
with Auto Mode's facts where they differ: a node's instance labels are `eks.amazonaws.com/instance-*`
instead of `karpenter.k8s.aws/instance-*`, and it carries `eks.amazonaws.com/compute-type: auto`
(tests/terraform/data/automode/facts.json, from the EKS User Guide's "Create a Node Pool"). Resources
per instance type are Karpenter's facts; Auto Mode's Bottlerocket nodes reserve their own overhead,
which AWS does not publish per type, so the memory margins are Karpenter's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlkit.render.infra import render
from mlkit.spec.loader import load, loads
from tests.render import test_scale_from_zero_karpenter as karpenter

FACTS = json.loads((Path(__file__).resolve().parents[1] / "terraform" / "data" / "automode" / "facts.json").read_text())
RENAMED = FACTS["karpenter_label_equivalents"]
KARPENTER_NODES = karpenter.template_nodes


def template_nodes(node_pool: dict) -> list[dict]:
    """The nodes Auto Mode would simulate for a NodePool: Karpenter's, with Auto Mode's label names."""
    assert node_pool["spec"]["template"]["spec"]["nodeClassRef"]["group"] == "eks.amazonaws.com"
    nodes = KARPENTER_NODES(node_pool)
    for node in nodes:
        # Karpenter's Neuron labels (instance-accelerator-*) have no Auto Mode name in AWS's list: no such label.
        kept = {k: v for k, v in node["labels"].items() if k not in FACTS["karpenter_labels_without_equivalent"]}
        node["labels"] = {RENAMED.get(k, k): v for k, v in kept.items()} | {"eks.amazonaws.com/compute-type": "auto"}
        assert not [k for k in node["labels"] if k.startswith("karpenter.k8s.aws/")]
    return nodes


@pytest.fixture(autouse=True)
def auto_mode_nodes(monkeypatch):
    monkeypatch.setattr(karpenter, "template_nodes", template_nodes)


def auto_spec(example: str):
    spec = load(karpenter.EXAMPLES / example / "mlkit.yaml")
    spec.cluster.node_provisioning = "auto-mode"
    return spec


@pytest.mark.parametrize("example", karpenter.AWS_EXAMPLES)
def test_every_api_of_every_aws_example_gets_a_node_from_zero(example):
    spec = auto_spec(example)
    karpenter.assert_every_api_fits(render(spec), spec)


@pytest.mark.parametrize("case", sorted(karpenter.MATRIX_CASES))
def test_a_matrix_of_pools(case):
    text = karpenter.MATRIX.format(**karpenter.MATRIX_CASES[case]).replace("node_provisioning: karpenter", "node_provisioning: auto-mode")
    karpenter.assert_every_api_fits(render(loads(text)))


def test_gpu_and_neuron_apis_land_on_their_own_pool():
    fits = karpenter.placements(render(auto_spec("aws-accelerators")))
    assert [k for k, why in fits["sentiment-gpu"].items() if why is None] == ["gpu-auto/g5.xlarge"]
    assert [k for k, why in fits["sentiment-neuron"].items() if why is None] == ["inf-auto/inf2.xlarge"]


def test_a_pod_that_selects_a_karpenter_label_gets_no_auto_mode_node():
    """Where the facts differ: a selector on Karpenter's label name matches no Auto Mode node, so the check
    would catch a render that selected GPUs the Karpenter way."""
    pools, pods = karpenter.objects(render(auto_spec("aws-accelerators")))
    pod = pods["sentiment-gpu"]
    (node,) = template_nodes(pools["gpu-auto"])
    assert karpenter.misfit(pod, node) is None
    assert node["labels"]["eks.amazonaws.com/instance-gpu-count"] == "1"
    pod["nodeSelector"] = {**pod.get("nodeSelector", {}), "karpenter.k8s.aws/instance-gpu-count": "1"}
    assert "selector" in karpenter.misfit(pod, node)
    pod["nodeSelector"] = {k: v for k, v in pod["nodeSelector"].items() if not k.startswith("karpenter.k8s.aws/")}
    pod["nodeSelector"]["eks.amazonaws.com/instance-gpu-count"] = "1"
    assert karpenter.misfit(pod, node) is None
