"""Karpenter's NodePools and EC2NodeClasses (`cluster.node_provisioning: karpenter`): every rendered one
validates against its CRD's schema at the pinned chart (tests/render/schemas/, see its README), and each
carries what its pool says: instance type, capacity types, limits, labels, taints, node class."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from mlkit.render.infra import render
from mlkit.spec.loader import load, loads
from tests.conftest import EXAMPLE_NAMES, EXAMPLES, cloud_of
from tests.render.test_k8s import strict

SCHEMAS = Path(__file__).resolve().parent / "schemas"
KARPENTER_KINDS = {("karpenter.sh/v1", "NodePool"), ("karpenter.k8s.aws/v1", "EC2NodeClass")}
AWS_EXAMPLES = [name for name in EXAMPLE_NAMES if cloud_of(name) == "aws"]

MATRIX = """\
project: acme
cloud: aws
region: eu-west-1
cluster:
  node_provisioning: karpenter
  node_pools:
    - {name: cpu, instance_type: m6i.large, max_nodes: 4}
    - {name: arm, instance_type: m7g.large, max_nodes: 2, labels: {team: ml}, taints: [{key: dedicated, value: batch, effect: NoExecute}]}
    - {name: gpu, instance_type: g5.xlarge, max_nodes: 2, spot: true, disk_size_gb: 200}
    - {name: inf, instance_type: inf2.xlarge, max_nodes: 3}
apis:
  - {name: a, predictor: p.py:P}
"""


def karpenter_spec(example: str):
    """An AWS example as a new project renders it: with `node_provisioning: karpenter`."""
    spec = load(EXAMPLES / example / "mlkit.yaml")
    spec.cluster.node_provisioning = "karpenter"
    return spec


def karpenter_objects(files: dict[str, str]) -> list[tuple[str, dict]]:
    out = []
    for rel, text in sorted(files.items()):
        if rel.startswith("infra/k8s/"):
            out += [(rel, d) for d in yaml.safe_load_all(text) if d and (d["apiVersion"], d["kind"]) in KARPENTER_KINDS]
    return out


def crd_check(doc: dict) -> None:
    group_version = doc["apiVersion"].replace("/", "_")
    schema = json.loads((SCHEMAS / f"{group_version}_{doc['kind'].lower()}.json").read_text())
    jsonschema.validate(doc, strict(schema))


RENDERED = {name: render(karpenter_spec(name)) for name in AWS_EXAMPLES} | {"matrix": render(loads(MATRIX))}
OBJECTS = [(name, rel, doc) for name, files in RENDERED.items() for rel, doc in karpenter_objects(files)]


@pytest.mark.parametrize(("example", "rel", "doc"), OBJECTS, ids=lambda v: v if isinstance(v, str) else "")
def test_every_nodepool_and_nodeclass_matches_its_crd(example, rel, doc):
    crd_check(doc)


def test_crd_check_catches_an_unknown_field_and_a_bad_value():
    pool = copy.deepcopy(next(d for _, _, d in OBJECTS if d["kind"] == "NodePool"))
    pool["spec"]["disruption"]["consolidateWhen"] = "Underutilized"
    with pytest.raises(jsonschema.ValidationError):
        crd_check(pool)
    pool = copy.deepcopy(next(d for _, _, d in OBJECTS if d["kind"] == "NodePool"))
    pool["spec"]["disruption"]["consolidationPolicy"] = "WhenIdle"
    with pytest.raises(jsonschema.ValidationError):
        crd_check(pool)
    node_class = copy.deepcopy(next(d for _, _, d in OBJECTS if d["kind"] == "EC2NodeClass"))
    node_class["spec"]["metadataOptions"]["httpTokens"] = "always"
    with pytest.raises(jsonschema.ValidationError):
        crd_check(node_class)


def test_every_pool_is_one_nodepool_and_one_nodeclass_of_its_name():
    for name in AWS_EXAMPLES:
        spec = karpenter_spec(name)
        docs = [d for _, d in karpenter_objects(RENDERED[name])]
        pools = sorted(p.name for p in spec.cluster.node_pools)
        assert sorted(d["metadata"]["name"] for d in docs if d["kind"] == "NodePool") == pools
        assert sorted(d["metadata"]["name"] for d in docs if d["kind"] == "EC2NodeClass") == pools
        for d in docs:
            if d["kind"] == "NodePool":
                assert d["spec"]["template"]["spec"]["nodeClassRef"] == {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": d["metadata"]["name"]}


def test_nodepools_carry_what_their_pool_says():
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in karpenter_objects(RENDERED["matrix"])}
    req = {p: {r["key"]: r["values"] for r in docs[("NodePool", p)]["spec"]["template"]["spec"]["requirements"]} for p in ("cpu", "arm", "gpu", "inf")}
    assert req["cpu"]["node.kubernetes.io/instance-type"] == ["m6i.large"] and req["cpu"]["kubernetes.io/arch"] == ["amd64"]
    assert req["arm"]["kubernetes.io/arch"] == ["arm64"]
    # Spot where the pool says so, with on-demand to fall back on; on-demand only otherwise.
    assert req["gpu"]["karpenter.sh/capacity-type"] == ["spot", "on-demand"] and req["cpu"]["karpenter.sh/capacity-type"] == ["on-demand"]
    gpu, inf, arm = (docs[("NodePool", p)]["spec"] for p in ("gpu", "inf", "arm"))
    assert gpu["limits"] == {"nodes": 2} and inf["limits"] == {"nodes": 3}
    assert gpu["template"]["spec"]["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    assert inf["template"]["spec"]["taints"][0]["key"] == "aws.amazon.com/neuron"
    assert arm["template"]["spec"]["taints"] == [{"key": "dedicated", "value": "batch", "effect": "NoExecute"}]
    assert arm["template"]["metadata"]["labels"]["team"] == "ml" and arm["template"]["metadata"]["labels"]["mlkit.dev/pool"] == "arm"
    assert inf["template"]["metadata"]["labels"] == {"mlkit.dev/pool": "inf", "mlkit.dev/accelerator": "inferentia2", "mlkit.dev/accelerator-kind": "neuron"}
    # Consolidation goes one node at a time (a budget of 1) through evictions, which PodDisruptionBudgets govern.
    assert gpu["disruption"] == {"consolidationPolicy": "WhenEmptyOrUnderutilized", "consolidateAfter": "5m", "budgets": [{"nodes": "1"}]}
    node_class = docs[("EC2NodeClass", "gpu")]["spec"]
    assert node_class["role"] == "acme-karpenter-node" and node_class["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
    assert node_class["subnetSelectorTerms"] == node_class["securityGroupSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "acme"}}]
    assert node_class["blockDeviceMappings"][0]["ebs"]["volumeSize"] == "200Gi" and node_class["metadataOptions"]["httpTokens"] == "required"


def test_karpenter_cluster_has_a_system_group_and_no_cluster_autoscaler():
    files = RENDERED["matrix"]
    groups = json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])["node_groups"]
    assert list(groups) == ["system"] and groups["system"]["labels"] == {"mlkit.dev/system": "true"} and not groups["system"]["spot"]
    addons = json.loads(files["infra/terraform/addons/mlkit.auto.tfvars.json"])
    assert addons["enable_karpenter"] is True and addons["enable_cluster_autoscaler"] is False
    assert 'module "karpenter"' in files["infra/terraform/cluster/main.tf"]
    assert "infra/terraform/cluster/modules/karpenter/main.tf" in files


def test_node_groups_mode_renders_no_karpenter():
    files = render(loads(MATRIX.replace("  node_provisioning: karpenter\n", "")))
    assert not karpenter_objects(files)
    assert not any("/modules/karpenter/" in rel for rel in files) and 'module "karpenter"' not in files["infra/terraform/cluster/main.tf"]
    addons = json.loads(files["infra/terraform/addons/mlkit.auto.tfvars.json"])
    assert "enable_karpenter" not in addons and addons["enable_cluster_autoscaler"] is True
    assert sorted(json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])["node_groups"]) == ["arm", "cpu", "gpu", "inf"]
