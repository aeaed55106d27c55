"""A cluster stack applied by the previous release upgrades in place, on a local moto server.

Session 8's release (commit 77443ff) gave an async API's front the serving role module.api_role[api]; today's
cluster template gives it module.async_front_role[api], under the same IAM name. Without `moved` blocks
terraform plans a delete and a create of that role (and of its queue policy, same role, same name), so the
front's pods lose their IRSA credentials in between, and the policy's delete may land after its create. The
old rendering is kept as test data (tests/terraform/data/upgrade/async-example-77443ff.json, with how it was
made); the test applies it, renders today's stack over it, and checks that the plan moves the role, deletes
no role and no role policy, and that the apply keeps the same role (same RoleId) and converges.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import aws_env, mlkit
from tests.terraform.test_e2e_moto import OVERRIDES
from tests.terraform.test_e2e_moto_async import ASYNC_OVERRIDES

pytestmark = [pytest.mark.terraform, pytest.mark.e2e]
PROJECT, API = "async-demo", "documents"
OLD = json.loads((Path(__file__).parent / "data/upgrade/async-example-77443ff.json").read_text())
FRONT = f'module.async_front_role["{API}"]'
# What the upgrade is meant to remove: the front no longer reads the models (its role keeps everything else).
INTENDED_DELETES = {f'{FRONT}.aws_iam_role_policy_attachment.this["model_read"]'}


def stack_files(stack: Path) -> dict[str, str]:
    return {str(p.relative_to(stack)): p.read_text() for p in stack.rglob("*") if p.is_file() and ".terraform" not in p.parts
            and not p.name.startswith("terraform.tfstate") and p.name != ".terraform.lock.hcl"}


def write_stack(stack: Path, files: dict[str, str]) -> None:
    """The stack's files as a release wrote them, with the state, providers and lock file kept."""
    for rel in stack_files(stack):
        (stack / rel).unlink()
    for rel, text in (files | OVERRIDES | ASYNC_OVERRIDES).items():
        (stack / rel).parent.mkdir(parents=True, exist_ok=True)
        (stack / rel).write_text(text)


def planned(proj: Path, env: dict) -> tuple[dict, list[dict]]:
    plan = mlkit("plan", "--json", cwd=proj, env=env)
    assert plan.returncode == 0, plan.stderr[-4000:]
    summary = json.loads([line for line in plan.stdout.splitlines() if '"mlkit_plan"' in line][-1])
    return summary, summary["changes"]


def test_the_previous_releases_async_stack_upgrades_moving_the_fronts_role_without_replacing_it(project, tf_env, moto, tmp_path):
    import boto3

    proj = project("async")
    assert mlkit("render", cwd=proj).returncode == 0
    stack = proj / "infra/terraform/cluster"
    today = stack_files(stack)
    assert set(OLD["files"]) <= set(today), "the stored rendering has files today's stack does not"
    env = tf_env | aws_env(moto) | {"KUBECONFIG": str(tmp_path / "kubeconfig")}
    iam = boto3.Session(region_name="us-west-2").client(
        "iam", endpoint_url=moto, aws_access_key_id="testing", aws_secret_access_key="testing")

    write_stack(stack, OLD["files"])
    assert 'module "api_role"' in (stack / "main.tf").read_text() and "async_front_role" not in (stack / "main.tf").read_text()
    # The previous release's mlkit checked its own tfvars; today's would call them stale, so terraform applies them itself.
    for args in (["init", "-input=false"], ["apply", "-auto-approve", "-input=false"]):
        old = subprocess.run(["terraform", *args], cwd=stack, env=os.environ | env, capture_output=True, text=True, timeout=900)
        assert old.returncode == 0, old.stderr[-4000:]
    role = iam.get_role(RoleName=f"{PROJECT}-{API}")["Role"]
    assert iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"] == [f"{PROJECT}-{API}-queue"]

    # Today's rendering over it, as `mlkit render` writes it over files nobody edited.
    write_stack(stack, today)
    summary, changes = planned(proj, env)
    by_address = {c["address"]: c["action"] for c in changes}
    assert by_address.get(f"{FRONT}.aws_iam_role.this") in ("move", "update", None), by_address
    gone = {address for address, action in by_address.items() if action in ("delete", "replace", "remove")}
    assert gone == INTENDED_DELETES, gone
    assert not [a for a in by_address if a.startswith('module.api_role[')], by_address

    new = mlkit("apply", "--only", "cluster", "--auto-approve", cwd=proj, env=env)
    assert new.returncode == 0, new.stderr[-4000:]
    after = iam.get_role(RoleName=f"{PROJECT}-{API}")["Role"]
    assert after["RoleId"] == role["RoleId"], "the front's role was made again: its pods' credentials broke in between"
    assert iam.list_role_policies(RoleName=after["RoleName"])["PolicyNames"] == [f"{PROJECT}-{API}-queue"]
    assert iam.list_attached_role_policies(RoleName=after["RoleName"])["AttachedPolicies"] == []  # the front reads no model
    worker = f"{PROJECT}-{API}-worker"
    assert iam.list_role_policies(RoleName=worker)["PolicyNames"] == [f"{worker}-queue"]
    assert iam.list_attached_role_policies(RoleName=worker)["AttachedPolicies"] == []  # its model read is in its own policy

    summary, changes = planned(proj, env)
    assert (summary["add"], summary["change"], summary["remove"]) == (0, 0, 0), changes
