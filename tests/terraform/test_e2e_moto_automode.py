"""The cluster stack of `node_provisioning: auto-mode` applied, re-planned and destroyed on a local moto
server: the eks module's Auto Mode settings and IAM, the auto-mode module's node role, for real.

Moto's gaps are covered by override files the test writes (as a platform team would add its own
files), never in what users get: those of test_e2e_moto.py, and AUTO_OVERRIDES. A plan without
AUTO_OVERRIDES shows that they hide exactly AUTO_GAPS and nothing else.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import aws_env, mlkit
from tests.terraform.test_e2e_moto import OVERRIDES, drifted, planned_changes

pytestmark = [pytest.mark.terraform, pytest.mark.e2e]

AUTO_OVERRIDES = {
    # Moto's DescribeCluster answers without the computeConfig and storageConfig its CreateCluster was given (it
    # keeps kubernetesNetworkConfig), and moto has no EKS access entries (CreateAccessEntry answers 404).
    "modules/eks/moto_override.tf": (
        'resource "aws_eks_cluster" "this" {\n  lifecycle {\n'
        "    ignore_changes = [access_config, compute_config, storage_config]\n  }\n}\n"
    ),
    "modules/auto-mode/moto_override.tf": (
        'resource "aws_eks_access_entry" "node" {\n  count = 0\n}\n\nresource "aws_eks_access_policy_association" "node" {\n  count = 0\n}\n'
    ),
}
# What a plan shows with only test_e2e_moto.py's overrides (the cluster's access_config ignored): the two Auto
# Mode settings moto did not keep, as an in-place update of the cluster.
AUTO_GAPS = {"module.eks.aws_eks_cluster.this": ["update: compute_config", "update: storage_config"]}


def write_overrides(stack) -> None:
    for rel, text in (OVERRIDES | AUTO_OVERRIDES).items():
        if (stack / rel).parent.is_dir():
            (stack / rel).write_text(text)


def auto_project(project, mode: str = "auto-mode"):
    proj = project("sentiment")
    spec = proj / "mlkit.yaml"
    text = spec.read_text()
    assert "  node_provisioning: karpenter\n" in text
    spec.write_text(text.replace("  node_provisioning: karpenter\n", f"  node_provisioning: {mode}\n"))
    assert mlkit("render", cwd=proj).returncode == 0
    return proj


def test_auto_mode_stack_applies_replans_clean_and_destroys(project, tf_env, moto, tmp_path):
    import boto3

    proj = auto_project(project)
    stack = proj / "infra/terraform/cluster"
    write_overrides(stack)
    env = tf_env | aws_env(moto) | {"KUBECONFIG": str(tmp_path / "kubeconfig")}
    session = boto3.Session(region_name="us-west-2")
    kw = {"endpoint_url": moto, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

    apply = mlkit("apply", "--only", "cluster", "--auto-approve", cwd=proj, env=env)
    assert apply.returncode == 0, apply.stderr[-4000:]

    eks = session.client("eks", **kw)
    assert eks.list_clusters()["clusters"] == ["sentiment-demo"]
    assert eks.list_nodegroups(clusterName="sentiment-demo")["nodegroups"] == []  # Auto Mode launches every node
    iam = session.client("iam", **kw)
    cluster_policies = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName="sentiment-demo-cluster")["AttachedPolicies"]}
    assert cluster_policies == {"AmazonEKSClusterPolicy", "AmazonEKSComputePolicy", "AmazonEKSBlockStoragePolicy",
                                "AmazonEKSLoadBalancingPolicy", "AmazonEKSNetworkingPolicy"}
    node_policies = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName="sentiment-demo-auto-node")["AttachedPolicies"]}
    assert node_policies == {"AmazonEKSWorkerNodeMinimalPolicy", "AmazonEC2ContainerRegistryPullOnly"}
    ec2 = session.client("ec2", **kw)
    tagged = ec2.describe_subnets(Filters=[{"Name": "tag:karpenter.sh/discovery", "Values": ["sentiment-demo"]}])["Subnets"]
    assert len(tagged) == 2  # the private subnets the NodeClasses select

    plan = mlkit("plan", "--json", cwd=proj, env=env)
    assert plan.returncode == 0, plan.stderr[-4000:]
    summary = [line for line in plan.stdout.splitlines() if '"mlkit_plan"' in line]
    assert summary and '"add": 0, "change": 0, "remove": 0' in summary[0], plan.stderr[-3000:]

    # The overrides hide moto's gaps and nothing else.
    (stack / "modules/eks/moto_override.tf").write_text(OVERRIDES["modules/eks/moto_override.tf"])
    drift = {address: drifted(change) for address, change in planned_changes(stack, os.environ | env, tmp_path / "bare.tfplan").items()
             if change["actions"] not in (["no-op"], ["read"])}
    assert drift == AUTO_GAPS, json.dumps(drift, indent=1)
    write_overrides(stack)

    destroy = mlkit("destroy", "--only", "cluster", cwd=proj, env=env, input="sentiment-demo\n")
    assert destroy.returncode == 0, destroy.stderr[-4000:]
    assert eks.list_clusters()["clusters"] == []
    assert not any(r["RoleName"].startswith("sentiment-demo-") for r in iam.list_roles()["Roles"])


def acting(changes: dict[str, dict]) -> dict[str, list[str]]:
    return {address: c["actions"] for address, c in changes.items() if c["actions"] not in (["no-op"], ["read"])}


def test_moving_from_node_groups_to_auto_mode_turns_it_on_in_place_and_keeps_the_old_groups(project, tf_env, moto, tmp_path):
    """Step 1 of docs/guides/aws-node-provisioning.md, planned against a node-groups cluster on moto: Auto Mode is
    turned on in place (the cluster, its OIDC provider and so every IRSA role stay), and with the old groups kept by
    `zz-migration.auto.tfvars.json` nothing is deleted; without it the same plan deletes the pool's group first."""
    import subprocess

    proj = auto_project(project, "node-groups")
    stack = proj / "infra/terraform/cluster"
    write_overrides(stack)
    env = tf_env | aws_env(moto) | {"KUBECONFIG": str(tmp_path / "kubeconfig")}
    apply = mlkit("apply", "--only", "cluster", "--auto-approve", cwd=proj, env=env)
    assert apply.returncode == 0, apply.stderr[-4000:]
    old_groups = json.loads((stack / "mlkit.auto.tfvars.json").read_text())["node_groups"]
    assert list(old_groups) == ["cpu"]

    spec = proj / "mlkit.yaml"
    spec.write_text(spec.read_text().replace("  node_provisioning: node-groups\n", "  node_provisioning: auto-mode\n"))
    assert mlkit("render", cwd=proj).returncode == 0
    write_overrides(stack)
    assert json.loads((stack / "mlkit.auto.tfvars.json").read_text())["node_groups"] == {}
    init = subprocess.run(["terraform", "init", "-input=false", "-no-color"], cwd=stack, env=os.environ | env, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr[-3000:]

    # The eks override ignores the Auto Mode settings moto drops; for this plan only access_config, so that the
    # change of the cluster shows.
    (stack / "modules/eks/moto_override.tf").write_text(OVERRIDES["modules/eks/moto_override.tf"])
    unsafe = acting(planned_changes(stack, os.environ | env, tmp_path / "unsafe.tfplan"))
    assert unsafe['module.node_group["cpu"].aws_eks_node_group.this'] == ["delete"]

    (stack / "zz-migration.auto.tfvars.json").write_text(json.dumps({"node_groups": old_groups}))
    changes = planned_changes(stack, os.environ | env, tmp_path / "migrate.tfplan")
    plan = acting(changes)
    assert not [a for a, actions in plan.items() if "delete" in actions], plan
    cluster = changes["module.eks.aws_eks_cluster.this"]
    assert plan["module.eks.aws_eks_cluster.this"] == ["update"]  # in place: no new cluster, no new OIDC provider
    # No built-in pool and no node role (the provider plans the empty set as null).
    assert cluster["after"]["compute_config"] == [{"enabled": True, "node_pools": None, "node_role_arn": None}]
    assert cluster["after"]["storage_config"] == [{"block_storage": [{"enabled": True}]}]
    assert cluster["after"]["kubernetes_network_config"][0]["elastic_load_balancing"] == [{"enabled": True}]
    assert {a for a in plan if a.startswith("module.eks.aws_iam_role_policy_attachment.auto_mode")} == {
        f'module.eks.aws_iam_role_policy_attachment.auto_mode["{p}"]' for p in
        ("AmazonEKSComputePolicy", "AmazonEKSBlockStoragePolicy", "AmazonEKSLoadBalancingPolicy", "AmazonEKSNetworkingPolicy")}
    assert plan["module.auto_mode.aws_iam_role.node"] == ["create"]


def test_moving_from_karpenter_to_auto_mode_keeps_karpenter_until_its_nodes_are_gone(project, tf_env, moto, tmp_path):
    """Step 1 of the guide's Karpenter sequence, planned on moto. Switched straight to auto-mode, the plan turns
    Auto Mode on in place but deletes the karpenter module (controller and node roles) and the system group
    while Karpenter's nodes still run. With the guide's migration files (the module kept as
    `modules/karpenter-migration` and called from `zz-migration-karpenter.tf`, the system group kept by
    `zz-migration.auto.tfvars.json`), it deletes nothing."""
    import re
    import shutil
    import subprocess

    proj = auto_project(project, "karpenter")
    stack = proj / "infra/terraform/cluster"
    from tests.terraform.test_e2e_moto_karpenter import write_overrides as karpenter_overrides

    karpenter_overrides(stack)
    env = tf_env | aws_env(moto) | {"KUBECONFIG": str(tmp_path / "kubeconfig")}
    apply = mlkit("apply", "--only", "cluster", "--auto-approve", cwd=proj, env=env)
    assert apply.returncode == 0, apply.stderr[-4000:]
    # What the guide has the team keep from the Karpenter render (from git in real life).
    old_groups = json.loads((stack / "mlkit.auto.tfvars.json").read_text())["node_groups"]
    assert list(old_groups) == ["system"]
    old_module = re.search(r'^module "karpenter" \{\n.*?^\}\n', (stack / "main.tf").read_text(), re.M | re.S).group(0)
    shutil.copytree(stack / "modules/karpenter", tmp_path / "karpenter-module")

    spec = proj / "mlkit.yaml"
    spec.write_text(spec.read_text().replace("  node_provisioning: karpenter\n", "  node_provisioning: auto-mode\n"))
    assert mlkit("render", cwd=proj).returncode == 0
    assert not (stack / "modules/karpenter/main.tf").exists()  # render removes what it no longer renders
    write_overrides(stack)
    (stack / "modules/eks/moto_override.tf").write_text(OVERRIDES["modules/eks/moto_override.tf"])
    init = subprocess.run(["terraform", "init", "-input=false", "-no-color"], cwd=stack, env=os.environ | env, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr[-3000:]
    direct = acting(planned_changes(stack, os.environ | env, tmp_path / "direct.tfplan"))
    assert direct["module.eks.aws_eks_cluster.this"] == ["update"]
    deleted = {a for a, actions in direct.items() if "delete" in actions}
    assert {"module.karpenter.aws_iam_role.node[0]", "module.karpenter.aws_iam_role.controller[0]",
            'module.node_group["system"].aws_eks_node_group.this'} <= deleted

    shutil.copytree(tmp_path / "karpenter-module", stack / "modules/karpenter-migration")
    (stack / "modules/karpenter-migration/moto_override.tf").write_text(
        'resource "aws_eks_access_entry" "node" {\n  count = 0\n}\n\nresource "aws_ec2_tag" "security_group" {\n  count = 0\n}\n')
    (stack / "zz-migration-karpenter.tf").write_text(old_module.replace('"./modules/karpenter"', '"./modules/karpenter-migration"'))
    (stack / "zz-migration.auto.tfvars.json").write_text(json.dumps({"node_groups": old_groups}))
    init = subprocess.run(["terraform", "init", "-input=false", "-no-color"], cwd=stack, env=os.environ | env, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr[-3000:]
    kept = acting(planned_changes(stack, os.environ | env, tmp_path / "kept.tfplan"))
    assert not [a for a, actions in kept.items() if "delete" in actions], kept
    assert kept["module.eks.aws_eks_cluster.this"] == ["update"] and kept["module.auto_mode.aws_iam_role.node"] == ["create"]
    # The next render keeps the team's own migration files.
    assert mlkit("render", cwd=proj).returncode == 0
    assert (stack / "zz-migration-karpenter.tf").exists() and (stack / "modules/karpenter-migration/main.tf").exists()
