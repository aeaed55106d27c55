"""The add-ons' IAM policies grant exactly what upstream publishes for the pinned version, with upstream's conditions.

`data/aws-iam/*.json` holds each upstream policy as facts (statements: actions, resources, conditions),
with the repository, path and tag it was read from. Both sides are flattened to grants, one per
(action, resource, conditions), so statement grouping and order do not matter but a missing action, an
extra one, a wider resource or a dropped condition all do. A chart pin that moves without its policy
data fails here too.
"""

from __future__ import annotations

import json
from pathlib import Path

import hcl2
import pytest

from mlkit.render.infra import render
from mlkit.spec.loader import load
from tests.conftest import EXAMPLES
from tests.terraform.test_chart_values import releases
from tests.terraform.test_gcp_static import plain

DATA = Path(__file__).parent / "data" / "aws-iam"
POLICIES = {"load_balancer_controller": "load-balancer-controller.json", "cluster_autoscaler": "cluster-autoscaler.json"}

Condition = tuple[str, str, frozenset]
Grant = tuple[str, str, frozenset]


def upstream(name: str) -> dict:
    return json.loads((DATA / POLICIES[name]).read_text())


def condition(c: dict) -> Condition:
    return (c["test"], c["variable"].replace("${var.cluster_name}", "${cluster_name}"), frozenset(c["values"]))


def grants(statements: list[dict]) -> set[Grant]:
    out = set()
    for s in statements:
        conditions = frozenset(condition(c) for c in s.get("conditions", []))
        for action in s["actions"]:
            for resource in s["resources"]:
                out.add((action, resource, conditions))
    return out


def expected(name: str) -> set[Grant]:
    doc = upstream(name)
    statements = [dict(s, conditions=list(s["conditions"])) for s in doc["statements"]]
    # A tightening the upstream document itself recommends: its condition joins the statement granting those actions.
    for tight in doc.get("tightened", []):
        for s in statements:
            if set(tight["actions"]) <= set(s["actions"]):
                s["conditions"].append(tight["condition"])
    return grants(statements)


def rendered_policies() -> dict[str, list[dict]]:
    files = render(load(EXAMPLES / "aws-accelerators" / "mlkit.yaml"))
    parsed = plain(hcl2.loads(files["infra/terraform/addons/policies.tf"]))
    out = {}
    for block in parsed["data"]:
        for name, body in block.get("aws_iam_policy_document", {}).items():
            statements = []
            for s in body["statement"]:
                assert s.get("effect", "Allow") == "Allow" and "not_actions" not in s and "principals" not in s, name
                conds = [{"test": c["test"], "variable": c["variable"], "values": c["values"]} for c in s.get("condition", [])]
                statements.append({"actions": s["actions"], "resources": s["resources"], "conditions": conds})
            out[name] = statements
    return out


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_grants_exactly_upstream(name):
    ours = grants(rendered_policies()[name])
    theirs = expected(name)
    missing = sorted({(a, r) for a, r, _ in theirs - ours})
    extra = sorted({(a, r) for a, r, _ in ours - theirs})
    assert not missing and not extra, f"{name}: missing {missing}, extra or differently conditioned {extra}"
    assert {a for a, _, _ in ours} == {a for s in upstream(name)["statements"] for a in s["actions"]}


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_data_matches_the_pinned_chart(name):
    doc = upstream(name)
    pinned = {body["chart"]: body["version"] for body in releases("aws-accelerators").values()}
    assert pinned[doc["chart"]] == doc["chart_version"], f"{doc['chart']} moved; re-read {doc['source']['path']} at its new tag"
    assert {"repository", "path", "ref", "commit"} <= set(doc["source"])


def test_a_looser_policy_is_caught():
    """Dropping one upstream condition, or adding one action, makes the grants differ."""
    policy = rendered_policies()["load_balancer_controller"]
    loose = [dict(s, conditions=[c for c in s["conditions"] if c["variable"] != "aws:RequestTag/elbv2.k8s.aws/cluster"]) for s in policy]
    assert grants(loose) != expected("load_balancer_controller")
    wider = policy + [{"actions": ["ec2:DeleteVpc"], "resources": ["*"], "conditions": []}]
    assert grants(wider) - expected("load_balancer_controller") == {("ec2:DeleteVpc", "*", frozenset())}
