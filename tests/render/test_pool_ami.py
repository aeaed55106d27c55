"""A Karpenter pool's `ami`: the EC2NodeClass's AMI alias, pinned or Bottlerocket. Refused in one line where it
means nothing (node groups, EKS Auto Mode, GCP) and for Neuron pools on Bottlerocket; every rendered
EC2NodeClass validates against Karpenter's CRD schema."""

from __future__ import annotations

import pytest
import yaml

from mlkit.errors import SpecError
from mlkit.render.infra import render
from mlkit.spec.loader import loads
from tests.render.test_nodepools import crd_check

SPEC = """\
project: acme
cloud: aws
region: eu-west-1
cluster:
  node_provisioning: {mode}
  node_pools:
    - {{name: cpu, instance_type: m6i.large, max_nodes: 4, ami: "al2023@v20261201"}}
    - {{name: gpu, instance_type: g5.xlarge, max_nodes: 2, disk_size_gb: 200, ami: "{gpu_ami}"}}
    - {{name: inf, instance_type: inf2.xlarge, max_nodes: 2}}
apis:
  - {{name: a, predictor: p.py:P}}
"""


def node_classes(text: str) -> dict[str, dict]:
    files = render(loads(text))
    return {d["metadata"]["name"]: d for rel, t in files.items() if "/nodepools/" in rel
            for d in yaml.safe_load_all(t) if d and d["kind"] == "EC2NodeClass"}


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        loads(text)
    return info.value.problems


def test_a_pinned_alias_and_bottlerocket_render_and_validate():
    classes = node_classes(SPEC.format(mode="karpenter", gpu_ami="bottlerocket@v1.50.0"))
    assert classes["cpu"]["spec"]["amiSelectorTerms"] == [{"alias": "al2023@v20261201"}]
    assert classes["inf"]["spec"]["amiSelectorTerms"] == [{"alias": "al2023@latest"}]  # left out: AL2023, latest
    gpu = classes["gpu"]["spec"]
    assert gpu["amiSelectorTerms"] == [{"alias": "bottlerocket@v1.50.0"}]
    # Bottlerocket: a small OS volume, the pool's disk for containers.
    assert [(b["deviceName"], b["ebs"]["volumeSize"]) for b in gpu["blockDeviceMappings"]] == [("/dev/xvda", "4Gi"), ("/dev/xvdb", "200Gi")]
    assert all(b["ebs"]["encrypted"] for b in gpu["blockDeviceMappings"])
    assert [(b["deviceName"], b["ebs"]["volumeSize"]) for b in classes["cpu"]["spec"]["blockDeviceMappings"]] == [("/dev/xvda", "100Gi")]
    for doc in classes.values():
        crd_check(doc)


@pytest.mark.parametrize(("mode", "says"), [
    ("node-groups", "node groups take EKS's AMI for the instance type"),
    ("auto-mode", "EKS Auto Mode picks its own AMIs"),
])
def test_refused_where_karpenter_does_not_pick_the_ami(mode, says):
    found = problems(SPEC.format(mode=mode, gpu_ami="al2023@latest"))
    assert len(found) == 2 and all(says in p for p in found), found
    assert "cluster.node_pools[0].ami: Karpenter pools only" in found[0] and "cluster.node_pools[1].ami: " in found[1]


def test_refused_on_gcp():
    text = ("project: acme\ncloud: gcp\nregion: us-central1\ngcp_project: acme-ml\ncluster:\n  node_pools:\n"
            "    - {name: cpu, instance_type: n2-standard-4, ami: al2023@latest}\napis:\n  - {name: a, predictor: p.py:P}\n")
    (found,) = problems(text)
    assert "ami: AWS only; remove it" in found


def test_bottlerocket_is_refused_for_a_neuron_pool():
    text = SPEC.format(mode="karpenter", gpu_ami="al2023@latest").replace(
        "{name: inf, instance_type: inf2.xlarge, max_nodes: 2}", '{name: inf, instance_type: inf2.xlarge, max_nodes: 2, ami: "bottlerocket@latest"}')
    (found,) = problems(text)
    assert "inf2.xlarge is a Neuron instance: use an al2023 alias" in found


@pytest.mark.parametrize("alias", ["al2023", "al2023@v2026", "bottlerocket@v1.50", "al2@latest", "windows2022@latest", "al2023@latest\n"])
def test_a_malformed_alias_is_one_line(alias):
    (found,) = problems(SPEC.format(mode="karpenter", gpu_ami=alias.replace("\n", "\\n")))
    assert "cluster.node_pools[1].ami: " in found, found
    if "\n" not in alias:
        assert f"'{alias}' is not an AMI alias: al2023@latest, al2023@vYYYYMMDD, bottlerocket@latest or bottlerocket@vX.Y.Z" in found
