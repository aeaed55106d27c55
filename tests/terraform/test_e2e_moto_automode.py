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
