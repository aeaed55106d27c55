"""EKS Auto Mode (`cluster.node_provisioning: auto-mode`): every rendered NodeClass validates against Auto
Mode's CRD schema and every NodePool against Karpenter's (tests/render/schemas/, see its README), the
NodePools ask only for labels Auto Mode takes, the add-ons Auto Mode runs itself are left out, and the
cluster stack turns Auto Mode on with the IAM AWS documents (tests/terraform/data/automode/facts.json)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from mlkit import kit
from mlkit.render.infra import render
from mlkit.spec.loader import load, loads
from tests.conftest import EXAMPLE_NAMES, EXAMPLES, cloud_of
from tests.render.test_nodepools import crd_check

FACTS = json.loads((Path(__file__).resolve().parents[1] / "terraform" / "data" / "automode" / "facts.json").read_text())
AUTO_KINDS = {("karpenter.sh/v1", "NodePool"), ("eks.amazonaws.com/v1", "NodeClass")}
AWS_EXAMPLES = [name for name in EXAMPLE_NAMES if cloud_of(name) == "aws"]

MATRIX = """\
project: acme
cloud: aws
region: eu-west-1
{network}cluster:
  node_provisioning: auto-mode
  node_pools:
    - {{name: cpu, instance_type: m6i.large, max_nodes: 4}}
    - {{name: arm, instance_type: m7g.large, max_nodes: 2, labels: {{team: ml}}, taints: [{{key: dedicated, value: batch, effect: NoExecute}}]}}
    - {{name: gpu, instance_type: g5.xlarge, max_nodes: 2, spot: true, disk_size_gb: 200}}
    - {{name: inf, instance_type: inf2.xlarge, max_nodes: 3}}
apis:
  - {{name: a, predictor: p.py:P, expose: public}}
"""
EXISTING_NETWORK = "network: {existing_vpc_id: vpc-0abc, existing_private_subnet_ids: [subnet-0aa, subnet-0bb]}\n"


def auto_spec(example: str):
    spec = load(EXAMPLES / example / "mlkit.yaml")
    spec.cluster.node_provisioning = "auto-mode"
    return spec


def auto_objects(files: dict[str, str]) -> list[tuple[str, dict]]:
    out = []
    for rel, text in sorted(files.items()):
        if rel.startswith("infra/k8s/"):
            out += [(rel, d) for d in yaml.safe_load_all(text) if d and (d["apiVersion"], d["kind"]) in AUTO_KINDS]
    return out


RENDERED = {name: render(auto_spec(name)) for name in AWS_EXAMPLES} | {
    "matrix": render(loads(MATRIX.format(network=""))),
    "existing-network": render(loads(MATRIX.format(network=EXISTING_NETWORK))),
}
OBJECTS = [(name, rel, doc) for name, files in RENDERED.items() for rel, doc in auto_objects(files)]


@pytest.mark.parametrize(("example", "rel", "doc"), OBJECTS, ids=lambda v: v if isinstance(v, str) else "")
def test_every_nodepool_and_nodeclass_matches_its_crd(example, rel, doc):
    crd_check(doc)


def test_each_pool_is_a_nodeclass_and_a_nodepool_that_names_it():
    for name, files in RENDERED.items():
        docs = auto_objects(files)
        classes = {d["metadata"]["name"] for _, d in docs if d["kind"] == "NodeClass"}
        pools = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "NodePool"}
        assert classes == set(pools) and classes, name
        for pool_name, pool in pools.items():
            # `-auto`: a Karpenter NodePool of the pool's own name can stay beside it while a cluster moves.
            assert pool_name.endswith("-auto") and pool["spec"]["template"]["metadata"]["labels"]["mlkit.dev/pool"] == pool_name[:-5]
            assert pool["spec"]["template"]["spec"]["nodeClassRef"] == {"group": "eks.amazonaws.com", "kind": "NodeClass", "name": pool_name}
        assert not [d for _, d in docs if d["kind"] == "EC2NodeClass"]


def test_crd_check_catches_a_karpenter_field_in_a_nodeclass():
    node_class = copy.deepcopy(next(d for _, _, d in OBJECTS if d["kind"] == "NodeClass"))
    node_class["spec"]["amiSelectorTerms"] = [{"alias": "al2023@latest"}]  # EC2NodeClass only: AWS picks Auto Mode's AMIs
    with pytest.raises(jsonschema.ValidationError):
        crd_check(node_class)
    node_class = copy.deepcopy(next(d for _, _, d in OBJECTS if d["kind"] == "NodeClass"))
    node_class["spec"]["ephemeralStorage"]["iops"] = 100  # below gp3's 3000
    with pytest.raises(jsonschema.ValidationError):
        crd_check(node_class)


def test_nodepools_ask_only_for_labels_auto_mode_takes():
    supported, unsupported = set(FACTS["nodepool_supported_labels"]), set(FACTS["nodepool_unsupported_labels"])
    for _, _, doc in OBJECTS:
        if doc["kind"] == "NodePool":
            keys = {r["key"] for r in doc["spec"]["template"]["spec"]["requirements"]}
            assert keys <= supported and not keys & unsupported, keys
            assert "kubernetes.io/os" not in keys  # Auto Mode refuses it (Linux only)


def test_the_pool_says_what_the_nodepool_and_nodeclass_carry():
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in auto_objects(RENDERED["matrix"])}
    gpu, gpu_class = docs[("NodePool", "gpu-auto")], docs[("NodeClass", "gpu-auto")]
    req = {r["key"]: r["values"] for r in gpu["spec"]["template"]["spec"]["requirements"]}
    assert req["node.kubernetes.io/instance-type"] == ["g5.xlarge"] and req["karpenter.sh/capacity-type"] == ["spot", "on-demand"]
    assert gpu["spec"]["template"]["spec"]["expireAfter"] == FACTS["nodepool_default_expire_after"]  # under Auto Mode's 21 days
    assert gpu["spec"]["limits"] == {"nodes": 2} and gpu["spec"]["disruption"]["budgets"] == [{"nodes": "1"}]
    assert {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"} in gpu["spec"]["template"]["spec"]["taints"]
    assert gpu_class["spec"]["ephemeralStorage"]["size"] == "200Gi" and gpu_class["spec"]["role"] == "acme-auto-node"
    assert gpu_class["spec"]["subnetSelectorTerms"] == [{"tags": {"karpenter.sh/discovery": "acme"}}]
    # The cluster security group EKS creates carries the cluster's name; no tag of ours is needed.
    assert gpu_class["spec"]["securityGroupSelectorTerms"] == [{"tags": {"aws:eks:cluster-name": "acme"}}]
    arm = docs[("NodePool", "arm-auto")]
    assert {r["key"]: r["values"] for r in arm["spec"]["template"]["spec"]["requirements"]}["kubernetes.io/arch"] == ["arm64"]
    assert arm["spec"]["template"]["metadata"]["labels"]["team"] == "ml"
    # An existing network's subnets are in the spec, so they are named by id.
    existing = {(d["kind"], d["metadata"]["name"]): d for _, d in auto_objects(RENDERED["existing-network"])}
    assert existing[("NodeClass", "cpu-auto")]["spec"]["subnetSelectorTerms"] == [{"id": "subnet-0aa"}, {"id": "subnet-0bb"}]


def test_the_role_the_nodeclasses_name_is_the_one_the_module_creates():
    module = (kit.terraform_modules("aws") / "auto-mode" / "main.tf").read_text()
    assert 'name               = "${var.cluster_name}-auto-node"' in module
    for _, _, doc in OBJECTS:
        if doc["kind"] == "NodeClass":
            assert re.fullmatch(r"[a-z0-9-]+-auto-node", doc["spec"]["role"])


def test_the_modules_grant_what_aws_documents_for_auto_mode():
    modules = kit.terraform_modules("aws")
    node = (modules / "auto-mode" / "main.tf").read_text()
    block = node[node.index('resource "aws_iam_role_policy_attachment" "node"'):]
    assert set(re.findall(r'^    "(\w+)",$', block[: block.index("])")], re.M)) == set(FACTS["node_role_policies"])
    assert f'cluster-access-policy/{FACTS["node_access_policy"]}"' in node and 'type          = "EC2"' in node
    eks = (modules / "eks" / "main.tf").read_text()
    block = eks[eks.index('resource "aws_iam_role_policy_attachment" "auto_mode"'):]
    granted = set(re.findall(r'^    "(\w+)",$', block[: block.index("])")], re.M)) | {"AmazonEKSClusterPolicy"}
    assert granted == set(FACTS["cluster_role_policies"])


def test_the_cluster_stack_turns_auto_mode_on_and_has_no_node_groups():
    files = RENDERED["aws-accelerators"]
    main = files["infra/terraform/cluster/main.tf"]
    assert "  auto_mode = true\n" in main and 'module "auto_mode" {' in main
    assert 'private_subnet_tags = { "karpenter.sh/discovery" = var.project }' in main
    assert json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])["node_groups"] == {}
    assert any(k.startswith("infra/terraform/cluster/modules/auto-mode/") for k in files)
    assert not any(k.startswith("infra/terraform/cluster/modules/karpenter/") for k in files)
    # The other modes do not turn it on.
    for mode in ("karpenter", "node-groups"):
        spec = load(EXAMPLES / "aws-accelerators" / "mlkit.yaml")
        spec.cluster.node_provisioning = mode
        other = render(spec)
        assert "auto_mode" not in other["infra/terraform/cluster/main.tf"]
        assert not any("modules/auto-mode/" in k for k in other)


def test_the_addons_auto_mode_runs_itself_are_left_out():
    addons = json.loads(RENDERED["aws-accelerators"]["infra/terraform/addons/mlkit.auto.tfvars.json"])
    for name in ("enable_load_balancer_controller", "enable_cluster_autoscaler", "enable_nvidia_device_plugin", "enable_neuron_device_plugin"):
        assert addons[name] is False, name
    assert "enable_karpenter" not in addons
    assert addons["enable_dcgm_exporter"] is True  # Auto Mode brings the device plugin, not the GPU metrics
    public = json.loads(RENDERED["matrix"]["infra/terraform/addons/mlkit.auto.tfvars.json"])
    assert public["enable_load_balancer_controller"] is False


def test_a_public_service_is_auto_modes_load_balancer():
    services = [d for rel, text in RENDERED["matrix"].items() if rel.startswith("infra/k8s/")
                for d in yaml.safe_load_all(text) if d and d["kind"] == "Service" and d["spec"].get("type") == "LoadBalancer"]
    assert services and all(s["spec"]["loadBalancerClass"] == FACTS["load_balancer_class"] for s in services)
    karpenter = render(loads(MATRIX.format(network="").replace("node_provisioning: auto-mode", "node_provisioning: karpenter")))
    others = [d for rel, text in karpenter.items() if rel.startswith("infra/k8s/")
              for d in yaml.safe_load_all(text) if d and d["kind"] == "Service" and d["spec"].get("type") == "LoadBalancer"]
    assert others and all(s["spec"]["loadBalancerClass"] == "service.k8s.aws/nlb" for s in others)


def test_facts_name_their_source():
    assert {"repository", "files"} <= set(FACTS["source"]) and all(len(c) == 40 for c in FACTS["source"]["files"].values())
