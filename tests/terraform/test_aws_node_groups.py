"""EKS node groups: the combinations that validate but would fail when EKS creates the group are refused
by `mlkit validate`, the AMI follows the architecture, and a replacement is created before destroy.

The rules and their sources are listed beside `_eks_node_groups` in cli/spec/rules.py.
"""

from __future__ import annotations

import json

import hcl2
import pytest

from mlkit.errors import SpecError
from mlkit.render.infra import render
from mlkit.spec.loader import loads
from tests.conftest import REPO, assert_one_line_error, mlkit
from tests.terraform.test_gcp_static import plain

SPEC = ("project: acme\ncloud: aws\nregion: us-west-2\n"
        "cluster: {{node_pools: [{{name: base, instance_type: m6i.large}}, {{name: {name}, instance_type: {itype}}}]}}\n"
        "apis: [{{name: a, predictor: p.py:P}}]\n")


def problems(name: str = "cpu", itype: str = "m6i.large") -> list[str]:
    try:
        loads(SPEC.format(name=name, itype=itype))
    except SpecError as exc:
        return exc.problems
    return []


@pytest.mark.parametrize(
    ("itype", "fragment"),
    [
        ("a1.large", "does not run on A1 (Graviton1); use Graviton2 or later, e.g. m6g.large"),
        ("mac2.metal", "EKS has no node AMI for Mac instances"),
        ("p3.2xlarge", "no accelerator facts for the p3 family"),
        ("p2.xlarge", "no accelerator facts for the p2 family"),
        ("g4ad.xlarge", "no accelerator facts for the g4ad family"),
        ("g5g.xlarge", "no accelerator facts for the g5g family"),
        ("inf1.xlarge", "no accelerator facts for the inf1 family"),
    ],
)
def test_instance_types_eks_cannot_run_are_refused(itype, fragment):
    found = problems(itype=itype)
    assert len(found) == 1 and "cluster.node_pools[1].instance_type" in found[0] and fragment in found[0], found


@pytest.mark.parametrize("itype", ["m6i.large", "m7g.large", "im4gn.large", "g5.xlarge", "inf2.xlarge", "trn1.2xlarge", "p5.48xlarge", "c7i-flex.large"])
def test_supported_instance_types_pass(itype):
    assert problems(itype=itype) == []


def test_pool_name_leaves_room_for_the_node_group_suffix():
    assert problems(name="a" * 36) == []
    found = problems(name="a" * 37)
    assert len(found) == 1 and "cluster.node_pools[1].name" in found[0] and "at most 36" in found[0], found


def test_gcp_and_existing_clusters_are_not_judged_by_eks_rules():
    existing = "project: acme\ncloud: aws\nregion: us-west-2\ncluster: {existing: {name: prod}}\napis: [{name: a, predictor: p.py:P}]\n"
    assert loads(existing).cluster.existing.name == "prod"


def test_validate_says_it_in_one_line(tmp_path):
    (tmp_path / "mlkit.yaml").write_text(SPEC.format(name="cpu", itype="a1.large"))
    (tmp_path / "p.py").write_text("class P:\n    def predict(self, x):\n        return x\n")
    result = mlkit("validate", cwd=tmp_path)
    assert_one_line_error(result, "mlkit.yaml:4:", "cluster.node_pools[1].instance_type", "A1 (Graviton1)")
    assert not (tmp_path / "infra").exists()


@pytest.mark.parametrize(
    ("itype", "ami"),
    [
        ("im4gn.large", "AL2023_ARM_64_STANDARD"),
        ("i4g.large", "AL2023_ARM_64_STANDARD"),
        ("hpc7g.4xlarge", "AL2023_ARM_64_STANDARD"),
        ("m7i.large", "AL2023_x86_64_STANDARD"),
    ],
)
def test_graviton_families_get_the_arm_ami(itype, ami):
    files = render(loads(SPEC.format(name="cpu", itype=itype)))
    groups = json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])["node_groups"]
    assert groups["cpu"]["ami_type"] == ami


def test_node_group_is_replaced_create_before_destroy():
    """Static half of the moto e2e (test_e2e_moto.py plans the replacement for real)."""
    module = plain(hcl2.loads((REPO / "terraform/aws/node-group/main.tf").read_text()))
    group = next(b["aws_eks_node_group"]["this"] for b in module["resource"] if "aws_eks_node_group" in b)
    assert group["node_group_name_prefix"] == "${var.name}-" and "node_group_name" not in group
    assert group["lifecycle"][0]["create_before_destroy"] is True
