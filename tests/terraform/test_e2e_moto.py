"""`mlkit apply`, `plan` and `destroy` end to end against a local moto server on 127.0.0.1.

Moto stands in for AWS; the stack, the terraform binary and the mlkit CLI are the real ones. Moto
answers node groups with `remote_access` and no `update_config`, drops the cluster's `access_config` and
has no EKS add-ons; the test writes override files ignoring those, as a platform team would add its own
files, so the re-plan can be clean, and also plans without them to show that they hide exactly those gaps
(MOTO_GAPS, GROUP_GAPS) and no other drift. Nothing test-only reaches what users get.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import aws_env, mlkit

pytestmark = [pytest.mark.terraform, pytest.mark.e2e]

OVERRIDES = {
    "modules/eks/moto_override.tf": 'resource "aws_eks_cluster" "this" {\n  lifecycle {\n    ignore_changes = [access_config]\n  }\n}\n',
    "modules/node-group/moto_override.tf": (
        'resource "aws_eks_node_group" "this" {\n  lifecycle {\n'
        "    ignore_changes = [scaling_config[0].desired_size, remote_access, update_config]\n  }\n}\n"
    ),
    "moto_override.tf": 'provider "aws" {\n  s3_use_path_style = true\n}\n',
    # Moto has no EKS add-ons (CreateAddon); the example's `model_access: mount` API asks for one.
    "moto_addon_override.tf": 'resource "aws_eks_addon" "mountpoint_s3_csi_driver" {\n  count = 0\n}\n',
}


# What moto answers differently from EKS, as a plan without the override files shows it: the cluster comes back
# without access_config and each node group with a remote_access block, both of which force a replacement
# (and the cluster's, a new OIDC provider, whose ARN the API roles trust); the add-on was never created.
POOLS = ("cpu", "gpu", "inf")
MOTO_GAPS = {
    "module.eks.aws_eks_cluster.this": ["replace: access_config"],
    "module.eks.aws_iam_openid_connect_provider.this": ["replace: url"],
    **{f'module.api_role["{api}"].aws_iam_role.this': ["update: assume_role_policy", "update: managed_policy_arns"]
       for api in ("sentiment", "sentiment-gpu", "sentiment-neuron")},
    **{f'module.node_group["{pool}"].aws_eks_node_group.this': ["replace: remote_access"] for pool in POOLS},
    "aws_eks_addon.mountpoint_s3_csi_driver[0]": ["create"],
}
# With remote_access ignored, what else moto answers differently for a node group.
GROUP_GAPS = {f'module.node_group["{pool}"].aws_eks_node_group.this': ["update: update_config"] for pool in POOLS}


def test_apply_replan_destroy(project, tf_env, moto, tmp_path):
    import boto3

    proj = project("aws-accelerators")
    assert mlkit("render", cwd=proj).returncode == 0
    stack = proj / "infra/terraform/cluster"
    for rel, text in OVERRIDES.items():
        (stack / rel).write_text(text)
    kubeconfig = tmp_path / "kubeconfig"
    env = tf_env | aws_env(moto) | {"KUBECONFIG": str(kubeconfig)}

    session = boto3.Session(region_name="us-west-2")
    kw = {"endpoint_url": moto, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    eks = session.client("eks", **kw)

    declined = mlkit("apply", "--only", "cluster", cwd=proj, env=env, input="n\n")
    assert declined.returncode == 1 and "apply cancelled; nothing was changed" in declined.stderr
    assert "Plan: " in declined.stderr and "to add" in declined.stderr
    assert eks.list_clusters()["clusters"] == []

    apply = mlkit("apply", "--only", "cluster", "--auto-approve", cwd=proj, env=env)
    assert apply.returncode == 0, apply.stderr[-4000:]
    assert "Applied:" in apply.stderr and "cluster_name: accel-demo" in apply.stderr
    assert "create module.eks.aws_eks_cluster.this" in apply.stderr  # per-resource progress lines

    # kubectl gets a context whose token comes from `mlkit token`, not from the aws CLI.
    config = yaml.safe_load(kubeconfig.read_text())
    assert config["current-context"] == "mlkit-accel-demo"
    user = config["users"][0]["user"]["exec"]
    assert user["command"] == "mlkit" and user["args"] == ["token", "--cloud", "aws", "--cluster", "accel-demo", "--region", "us-west-2"]
    assert config["clusters"][0]["cluster"]["server"].startswith("https://")

    cluster = eks.describe_cluster(name="accel-demo")["cluster"]
    assert cluster["version"] == "1.35"
    assert cluster["encryptionConfig"][0]["resources"] == ["secrets"]
    groups = {
        g: eks.describe_nodegroup(clusterName="accel-demo", nodegroupName=g)["nodegroup"] for g in eks.list_nodegroups(clusterName="accel-demo")["nodegroups"]
    }
    # Named <pool>-<suffix>, so that a replacement can exist beside the group it replaces.
    pools = {name.rsplit("-", 1)[0]: g for name, g in groups.items()}
    assert set(pools) == {"cpu", "gpu", "inf"} and all(len(name) == len(pool) + 27 for name, pool in zip(groups, pools, strict=True))
    groups = pools
    assert groups["gpu"]["amiType"] == "AL2023_x86_64_NVIDIA" and groups["gpu"]["capacityType"] == "SPOT"
    assert groups["inf"]["amiType"] == "AL2023_x86_64_NEURON"
    assert groups["gpu"]["taints"][0]["key"] == "nvidia.com/gpu"
    repo = session.client("ecr", **kw).describe_repositories(repositoryNames=["accel-demo"])["repositories"][0]
    assert repo["imageScanningConfiguration"]["scanOnPush"] is True
    s3 = session.client("s3", **kw)
    bucket = "accel-demo-models-123456789012"
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]["BlockPublicAcls"] is True

    # No credential reaches the files a team commits.
    committed = [p for p in (proj / "infra").rglob("*") if p.is_file() and ".terraform" not in p.parts and not p.name.endswith(".tfstate")]
    assert committed and not any("testing" in p.read_text(errors="ignore") for p in committed)

    plan = mlkit("plan", "--json", cwd=proj, env=env)
    assert plan.returncode == 0, plan.stderr[-4000:]
    assert "No changes" in plan.stderr
    summary = [line for line in plan.stdout.splitlines() if '"mlkit_plan"' in line]
    assert summary and '"add": 0, "change": 0, "remove": 0' in summary[0]

    # The overrides hide moto's gaps, and must hide nothing else: planned without them (the provider's path-style
    # S3, which moto needs to be reached at all, stays), the diff is exactly the gaps the docstring lists.
    hiding = [rel for rel in OVERRIDES if rel != "moto_override.tf"]
    for rel in hiding:
        (stack / rel).unlink()
    drift = {address: drifted(change) for address, change in planned_changes(stack, os.environ | env, tmp_path / "bare.tfplan").items()
             if change["actions"] not in (["no-op"], ["read"])}
    assert drift == MOTO_GAPS, json.dumps(drift, indent=1)
    # A replaced node group shows only what forces the replacement; with remote_access alone ignored (besides the
    # module's own desired_size, which an override's ignore_changes replaces whole, and with the cluster's override
    # back), what else moto answers differently is planned as an in-place update.
    for rel in hiding:
        (stack / rel).write_text(OVERRIDES[rel])
    (stack / "modules/node-group/moto_override.tf").write_text(
        'resource "aws_eks_node_group" "this" {\n  lifecycle {\n    ignore_changes = [scaling_config[0].desired_size, remote_access]\n  }\n}\n'
    )
    drift = {address: drifted(change) for address, change in planned_changes(stack, os.environ | env, tmp_path / "groups.tfplan").items()
             if change["actions"] not in (["no-op"], ["read"])}
    assert drift == GROUP_GAPS, json.dumps(drift, indent=1)
    (stack / "modules/node-group/moto_override.tf").write_text(OVERRIDES["modules/node-group/moto_override.tf"])

    # A pool change that forces a new node group creates the new one before the old one goes.
    spec = proj / "mlkit.yaml"
    spec.write_text(spec.read_text().replace("instance_type: m6i.large", "instance_type: m7i.large"))
    assert mlkit("render", cwd=proj).returncode == 0
    for rel, text in OVERRIDES.items():
        (stack / rel).write_text(text)
    changes = planned_changes(stack, os.environ | env, tmp_path / "replace.tfplan")
    cpu = changes['module.node_group["cpu"].aws_eks_node_group.this']
    assert cpu["actions"] == ["create", "delete"], cpu
    assert cpu["before"]["instance_types"] == ["m6i.large"] and cpu["after"]["instance_types"] == ["m7i.large"]
    replaced = {address for address, change in changes.items() if change["actions"] != ["no-op"] and change["actions"] != ["read"]}
    assert replaced == {'module.node_group["cpu"].aws_eks_node_group.this'}, replaced

    refused = mlkit("destroy", "--only", "cluster", cwd=proj, env=env, input="wrong-name\n")
    assert refused.returncode == 1 and "name did not match" in refused.stderr
    assert eks.list_clusters()["clusters"] == ["accel-demo"]

    destroy = mlkit("destroy", "--only", "cluster", cwd=proj, env=env, input="accel-demo\n")
    assert destroy.returncode == 0, destroy.stderr[-4000:]
    assert eks.list_clusters()["clusters"] == []
    assert all(b["Name"] != bucket for b in s3.list_buckets()["Buckets"])
    assert session.client("ec2", **kw).describe_vpcs(Filters=[{"Name": "tag:mlkit.dev/project", "Values": ["accel-demo"]}])["Vpcs"] == []
    assert not any(Path(proj).rglob("*.tfplan"))


def drifted(change: dict) -> list[str]:
    """What a planned change does: "create", "replace: <attribute that forces it>", or "update: <attribute>"."""
    actions = change["actions"]
    if actions == ["create"]:
        return ["create"]
    if "create" in actions and "delete" in actions:
        return sorted({"replace: " + str(path[0]) for path in change.get("replace_paths", [])})
    before, after, unknown = change.get("before") or {}, change.get("after") or {}, change.get("after_unknown") or {}
    return sorted("update: " + k for k in set(before) | set(after) if before.get(k) != after.get(k) or unknown.get(k))


def planned_changes(stack: Path, env: dict, plan_file: Path) -> dict[str, dict]:
    """`terraform plan` into a file outside the project, read back with `terraform show -json`."""
    plan = subprocess.run(["terraform", "plan", "-input=false", "-no-color", f"-out={plan_file}"], cwd=stack, env=env, capture_output=True, text=True)
    assert plan.returncode == 0, plan.stderr[-4000:]
    shown = subprocess.run(["terraform", "show", "-json", str(plan_file)], cwd=stack, env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr[-4000:]
    return {rc["address"]: rc["change"] for rc in json.loads(shown.stdout)["resource_changes"]}
