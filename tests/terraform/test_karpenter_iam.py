"""The karpenter module grants exactly what Karpenter's getting-started CloudFormation does for the pinned
chart: the six controller policies, the node role's managed policies, the interruption queue and its rules.

`data/aws-iam/karpenter-controller.json` holds upstream's statements as facts, with the repository, path
and commit they were read from. Both sides are flattened to grants, one per (effect, action, resource,
conditions), with upstream's placeholders and the module's expressions mapped to the same names, so
grouping and order do not matter but a missing or extra action, a wider resource or a dropped condition do.
"""

from __future__ import annotations

import json
from pathlib import Path

import hcl2
import pytest

from tests.conftest import REPO
from tests.terraform.test_chart_values import releases
from tests.terraform.test_gcp_static import plain

DATA = Path(__file__).parent / "data" / "aws-iam" / "karpenter-controller.json"
MODULE = REPO / "terraform" / "aws" / "karpenter"
# The module's expressions and upstream's CloudFormation placeholders, to one spelling.
OURS = {
    "${local.partition}": "${partition}",
    "${local.region}": "${region}",
    "${local.account_id}": "${account_id}",
    "${var.cluster_name}": "${cluster_name}",
    "${local.owned}": "kubernetes.io/cluster/${cluster_name}",
    "${local.cluster}": "arn:${partition}:eks:${region}:${account_id}:cluster/${cluster_name}",
    "${aws_iam_role.node[0].arn}": "${node_role_arn}",
    "${aws_sqs_queue.this[0].arn}": "${queue_arn}",
}
# Upstream's policy names and the module's policy documents.
DOCUMENTS = {
    "NodeLifecyclePolicy": "node_lifecycle",
    "IAMIntegrationPolicy": "iam_integration",
    "EKSIntegrationPolicy": "eks_integration",
    "InterruptionPolicy": "interruption",
    "ZonalShiftPolicy": "zonal_shift",
    "ResourceDiscoveryPolicy": "resource_discovery",
}

Grant = tuple[str, str, str, frozenset]


def ours(text: str) -> str:
    for expression, name in OURS.items():
        text = text.replace(expression, name)
    return text


def grants(statements: list[dict]) -> set[Grant]:
    out = set()
    for s in statements:
        conditions = frozenset((c["test"], c["variable"], frozenset(c["values"])) for c in s["conditions"])
        for action in s["actions"]:
            for resource in s["resources"]:
                out.add((s.get("effect", "Allow"), action, resource, conditions))
    return out


def module_policies() -> dict[str, list[dict]]:
    parsed = plain(hcl2.loads((MODULE / "controller.tf").read_text()))
    out = {}
    for block in parsed["data"]:
        for name, body in block.get("aws_iam_policy_document", {}).items():
            if name not in DOCUMENTS.values():
                continue  # trust policies and the queue's resource policy
            statements = list(body.get("statement", []))
            for dynamic in body.get("dynamic", []):  # the node role's PassRole, present whenever the module creates the role
                statements += dynamic["statement"]["content"]
            rows = []
            for s in statements:
                conds = [{"test": c["test"], "variable": ours(c["variable"]), "values": [ours(v) for v in c["values"]]} for c in s.get("condition", [])]
                rows.append({"effect": s.get("effect", "Allow"), "actions": s["actions"], "resources": [ours(r) for r in s["resources"]], "conditions": conds})
            out[name] = rows
    return out


def upstream() -> dict:
    return json.loads(DATA.read_text())


@pytest.mark.parametrize("policy", sorted(DOCUMENTS))
def test_controller_policy_grants_exactly_upstream(policy):
    theirs = grants(upstream()["policies"][policy])
    mine = grants(module_policies()[DOCUMENTS[policy]])
    missing = sorted((a, r) for _, a, r, _ in theirs - mine)
    extra = sorted((a, r) for _, a, r, _ in mine - theirs)
    assert not missing and not extra, f"{policy}: missing {missing}, extra or differently conditioned {extra}"


def test_a_looser_policy_is_caught():
    policy = module_policies()["node_lifecycle"]
    loose = [dict(s, conditions=[c for c in s["conditions"] if c["variable"] != "aws:RequestTag/eks:eks-cluster-name"]) for s in policy]
    assert grants(loose) != grants(upstream()["policies"]["NodeLifecyclePolicy"])
    wider = [dict(s, resources=["*"]) if s["actions"] == ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"] else s for s in policy]
    assert grants(wider) != grants(upstream()["policies"]["NodeLifecyclePolicy"])


def test_node_role_queue_and_rules_follow_upstream():
    doc = upstream()
    main = (MODULE / "main.tf").read_text()
    parsed = plain(hcl2.loads(main))
    attach = next(b["aws_iam_role_policy_attachment"]["node"] for b in parsed["resource"] if "node" in b.get("aws_iam_role_policy_attachment", {}))
    for name in doc["node_role_managed_policies"]:
        assert f'"{name}"' in attach["for_each"], name
    assert main.count('"Amazon') == len(doc["node_role_managed_policies"])
    queue = next(b["aws_sqs_queue"]["this"] for b in parsed["resource"] if "aws_sqs_queue" in b)
    assert queue["sqs_managed_sse_enabled"] is True
    variables = plain(hcl2.loads((MODULE / "variables.tf").read_text()))
    retention = next(v["queue_message_retention_seconds"] for v in variables["variable"] if "queue_message_retention_seconds" in v)
    assert retention["default"] == doc["queue"]["message_retention_seconds"]
    events = next(b["interruption_events"] for b in parsed["locals"] if "interruption_events" in b)
    mine = sorted(({"source": [e["source"]], "detail-type": [e["detail_type"]]} for e in events.values()), key=json.dumps)
    assert mine == doc["event_rules"]


def test_data_names_its_source_and_the_pinned_chart():
    doc = upstream()
    assert {"repository", "path", "ref", "commit"} <= set(doc["source"])
    pinned = {body["chart"]: body["version"] for body in releases("sentiment").values()}
    assert pinned["karpenter"] == doc["chart_version"], f"karpenter moved; re-read {doc['source']['path']} for its new version"
