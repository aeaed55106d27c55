"""The cluster stack of `node_provisioning: karpenter` applied, re-planned and destroyed on a local moto
server: the karpenter module's IAM, interruption queue, EventBridge rules and discovery tags for real.

Moto's gaps are covered by override files the test writes (as a platform team would add its own
files), never in what users get: those of test_e2e_moto.py (whose own test plans without them), and
the ones listed in KARPENTER_OVERRIDES, which this test also plans without: the diff must be exactly
the access entry and the security group tag that moto cannot make (KARPENTER_GAPS).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.conftest import aws_env, mlkit
from tests.terraform.test_e2e_moto import OVERRIDES

pytestmark = [pytest.mark.terraform, pytest.mark.e2e]

KARPENTER_OVERRIDES = {
    # Moto has no EKS access entries (CreateAccessEntry answers 404), and its clusters have no cluster
    # security group (vpcConfig.clusterSecurityGroupId is empty), so there is nothing to tag.
    "modules/karpenter/moto_override.tf": (
        'resource "aws_eks_access_entry" "node" {\n  count = 0\n}\n\nresource "aws_ec2_tag" "security_group" {\n  count = 0\n}\n'
    ),
}


# What a plan without KARPENTER_OVERRIDES shows after an apply with them: the two objects they leave out, and
# nothing else (an override that hid a real difference would show here as another change).
KARPENTER_GAPS = {
    "module.karpenter.aws_eks_access_entry.node[0]": ["create"],
    "module.karpenter.aws_ec2_tag.security_group[0]": ["create"],
}


def write_overrides(stack) -> None:
    for rel, text in (OVERRIDES | KARPENTER_OVERRIDES).items():
        if (stack / rel).parent.is_dir():  # a node-groups stack has no modules/karpenter
            (stack / rel).write_text(text)


def test_karpenter_stack_applies_replans_clean_and_destroys(project, tf_env, moto, tmp_path):
    import boto3

    proj = project("sentiment")
    assert "node_provisioning: karpenter" in (proj / "mlkit.yaml").read_text()
    assert mlkit("render", cwd=proj).returncode == 0
    stack = proj / "infra/terraform/cluster"
    write_overrides(stack)
    env = tf_env | aws_env(moto) | {"KUBECONFIG": str(tmp_path / "kubeconfig")}
    session = boto3.Session(region_name="us-west-2")
    kw = {"endpoint_url": moto, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

    apply = mlkit("apply", "--only", "cluster", "--auto-approve", cwd=proj, env=env)
    assert apply.returncode == 0, apply.stderr[-4000:]

    eks = session.client("eks", **kw)
    groups = eks.list_nodegroups(clusterName="sentiment-demo")["nodegroups"]
    assert [g.rsplit("-", 1)[0] for g in groups] == ["system"]  # the pools are NodePools, not groups
    system = eks.describe_nodegroup(clusterName="sentiment-demo", nodegroupName=groups[0])["nodegroup"]
    assert system["labels"] == {"mlkit.dev/system": "true"} and system["capacityType"] == "ON_DEMAND"

    iam = session.client("iam", **kw)
    controller = iam.get_role(RoleName="sentiment-demo-karpenter-controller")["Role"]
    trust = controller["AssumeRolePolicyDocument"]
    trust = json.loads(trust) if isinstance(trust, str) else trust
    assert trust["Statement"][0]["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert any(v == ["system:serviceaccount:kube-system:karpenter"] or v == "system:serviceaccount:kube-system:karpenter"
               for c in trust["Statement"][0]["Condition"].values() for k, v in c.items() if k.endswith(":sub"))
    attached = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName="sentiment-demo-karpenter-controller")["AttachedPolicies"]}
    assert attached == {f"sentiment-demo-KarpenterController{n}" for n in
                        ("NodeLifecycle", "IAMIntegration", "EKSIntegration", "Interruption", "ZonalShift", "ResourceDiscovery")}
    node_policies = {p["PolicyName"] for p in iam.list_attached_role_policies(RoleName="sentiment-demo-karpenter-node")["AttachedPolicies"]}
    assert node_policies == {"AmazonEKS_CNI_Policy", "AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly", "AmazonSSMManagedInstanceCore"}

    sqs = session.client("sqs", **kw)
    url = sqs.get_queue_url(QueueName="sentiment-demo")["QueueUrl"]
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attrs["MessageRetentionPeriod"] == "300" and attrs["SqsManagedSseEnabled"] == "true"
    events = session.client("events", **kw)
    rules = [r for r in events.list_rules(NamePrefix="sentiment-demo-karpenter-")["Rules"]]
    assert len(rules) == 5
    for rule in rules:
        targets = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        assert [t["Arn"] for t in targets] == [attrs["QueueArn"]]

    ec2 = session.client("ec2", **kw)
    tagged = ec2.describe_subnets(Filters=[{"Name": "tag:karpenter.sh/discovery", "Values": ["sentiment-demo"]}])["Subnets"]
    assert len(tagged) == 2  # the private subnets, one per zone

    plan = mlkit("plan", "--json", cwd=proj, env=env)
    assert plan.returncode == 0, plan.stderr[-4000:]
    summary = [line for line in plan.stdout.splitlines() if '"mlkit_plan"' in line]
    assert summary and '"add": 0, "change": 0, "remove": 0' in summary[0], plan.stderr[-3000:]

    # The Karpenter overrides hide what moto cannot make, and nothing else: planned without them (those of
    # test_e2e_moto.py stay; its own test plans without them), the diff is exactly KARPENTER_GAPS, and the tag
    # would go on the empty security group id moto gives (EKS gives the cluster security group's).
    from tests.terraform.test_e2e_moto import drifted, planned_changes

    for rel in KARPENTER_OVERRIDES:
        (stack / rel).unlink()
    bare = planned_changes(stack, os.environ | env, tmp_path / "bare.tfplan")
    drift = {address: drifted(change) for address, change in bare.items() if change["actions"] not in (["no-op"], ["read"])}
    assert drift == KARPENTER_GAPS, json.dumps(drift, indent=1)
    assert bare["module.karpenter.aws_ec2_tag.security_group[0]"]["after"]["resource_id"] == ""
    write_overrides(stack)

    destroy = mlkit("destroy", "--only", "cluster", cwd=proj, env=env, input="sentiment-demo\n")
    assert destroy.returncode == 0, destroy.stderr[-4000:]
    assert eks.list_clusters()["clusters"] == []
    assert not any(r["RoleName"].startswith("sentiment-demo-karpenter") for r in iam.list_roles()["Roles"])


def test_moving_from_node_groups_to_karpenter_keeps_the_old_groups_until_the_pods_moved(project, tf_env, moto, tmp_path):
    """Step 1 of the migration in docs/guides/aws-node-provisioning.md, planned against a node-groups cluster on moto: with the old groups
    kept by `zz-migration.auto.tfvars.json`, the plan adds Karpenter and the system group and deletes nothing;
    without it, the same plan would delete the pool's group before Karpenter could take its pods."""
    from tests.terraform.test_e2e_moto import planned_changes

    proj = project("sentiment")
    spec = proj / "mlkit.yaml"
    karpenter_text = spec.read_text()
    spec.write_text(karpenter_text.replace("  node_provisioning: karpenter\n", ""))
    assert mlkit("render", cwd=proj).returncode == 0
    stack = proj / "infra/terraform/cluster"
    write_overrides(stack)
    env = tf_env | aws_env(moto) | {"KUBECONFIG": str(tmp_path / "kubeconfig")}
    apply = mlkit("apply", "--only", "cluster", "--auto-approve", cwd=proj, env=env)
    assert apply.returncode == 0, apply.stderr[-4000:]
    old_groups = json.loads((stack / "mlkit.auto.tfvars.json").read_text())["node_groups"]
    assert list(old_groups) == ["cpu"]

    spec.write_text(karpenter_text)
    assert mlkit("render", cwd=proj).returncode == 0
    write_overrides(stack)
    new_groups = json.loads((stack / "mlkit.auto.tfvars.json").read_text())["node_groups"]
    assert list(new_groups) == ["system"]

    import os
    import subprocess

    # The new module needs an init before a bare `terraform plan` (mlkit apply runs init itself).
    init = subprocess.run(["terraform", "init", "-input=false", "-no-color"], cwd=stack, env=os.environ | env, capture_output=True, text=True)
    assert init.returncode == 0, init.stderr[-3000:]
    unsafe = planned_changes(stack, os.environ | env, tmp_path / "unsafe.tfplan")
    assert unsafe['module.node_group["cpu"].aws_eks_node_group.this']["actions"] == ["delete"]

    (stack / "zz-migration.auto.tfvars.json").write_text(json.dumps({"node_groups": old_groups | new_groups}))
    changes = planned_changes(stack, os.environ | env, tmp_path / "migrate.tfplan")
    acting = {address: c["actions"] for address, c in changes.items() if c["actions"] not in (["no-op"], ["read"])}
    assert not [a for a, actions in acting.items() if "delete" in actions], acting
    assert acting['module.node_group["system"].aws_eks_node_group.this'] == ["create"]
    assert acting["module.karpenter.aws_sqs_queue.this[0]"] == ["create"] and acting["module.karpenter.aws_iam_role.controller[0]"] == ["create"]
