"""`cluster.node_provisioning`: AWS only, for clusters mlkit creates, and `node-groups` when left out, so
that a project rendered before the field existed keeps its node groups when the kit is upgraded."""

from __future__ import annotations

import pytest

from mlkit.errors import SpecError
from mlkit.spec.loader import loads

AWS = """\
project: acme
cloud: aws
region: us-west-2
cluster:
{extra}  node_pools:
    - {{name: cpu, instance_type: m6i.large}}
apis:
  - {{name: a, predictor: p.py:P}}
"""
GCP = """\
project: acme
cloud: gcp
region: us-central1
gcp_project: acme-ml
cluster:
{extra}  node_pools:
    - {{name: cpu, instance_type: n2-standard-4}}
apis:
  - {{name: a, predictor: p.py:P}}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        loads(text)
    return info.value.problems


def test_left_out_it_keeps_node_groups():
    assert loads(AWS.format(extra="")).cluster.node_provisioning == "node-groups"


@pytest.mark.parametrize("mode", ["karpenter", "auto-mode", "node-groups"])
def test_each_mode_is_accepted_on_aws(mode):
    assert loads(AWS.format(extra=f"  node_provisioning: {mode}\n")).cluster.node_provisioning == mode


@pytest.mark.parametrize("mode", ["fargate", "automode"])
def test_an_unknown_mode_lists_the_valid_ones(mode):
    (found,) = problems(AWS.format(extra=f"  node_provisioning: {mode}\n"))
    assert f"cluster.node_provisioning: '{mode}' is not allowed (valid: node-groups, karpenter, auto-mode)" in found


def test_gcp_refuses_it_even_when_it_names_the_default():
    for mode in ("karpenter", "auto-mode", "node-groups"):
        (found,) = problems(GCP.format(extra=f"  node_provisioning: {mode}\n"))
        assert "cluster.node_provisioning: AWS only; remove it" in found
    assert loads(GCP.format(extra="")).cluster.node_provisioning == "node-groups"


def test_an_existing_cluster_keeps_its_own_nodes():
    text = (
        "project: acme\ncloud: aws\nregion: us-west-2\ncluster:\n  existing: {name: prod}\n  node_provisioning: karpenter\n"
        "apis: [{name: a, predictor: p.py:P}]\n"
    )
    (found,) = problems(text)
    assert "cluster.node_provisioning: provisions the nodes of a cluster mlkit creates" in found
