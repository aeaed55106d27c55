"""GCP spec rules for combinations `terraform validate` accepts and GKE refuses at apply."""

from __future__ import annotations

import hcl2
import pytest

from mlkit.clouds import gcp_rules
from mlkit.spec.loader import loads
from tests.conftest import REPO
from tests.spec.refusals import problems
from tests.terraform.test_gcp_static import plain

GCP = "project: acme\ncloud: gcp\nregion: us-central1\ngcp_project: acme-ml\n"


def pools(*lines: str, cluster: str = "") -> str:
    return GCP + f"cluster:\n{cluster}  node_pools:\n" + "".join(f"    - {line}\n" for line in lines)


@pytest.mark.parametrize(
    "pool, expected",
    [
        # Issue 17 item 4: a slice lives in one zone; node counts are per zone.
        (
            "{name: tpu, tpu: {version: v5e, topology: 2x4}, max_nodes: 1, zones: [us-central1-a, us-central1-b]}",
            "cluster.node_pools[0].zones: a TPU slice lives in one zone; name exactly one (e.g. [us-central1-a])",
        ),
        # Issue 17 item 5: a multi-host slice holds none or all of its VMs.
        (
            "{name: tpu, tpu: {version: v5e, topology: 4x4}, min_nodes: 2, max_nodes: 4, zones: [us-central1-a]}",
            "cluster.node_pools[0].min_nodes: a 4x4 slice is 4 VMs added and removed as a whole: set min_nodes to 0 (idle slice removed) or 4",
        ),
        # Issue 17 item 3: TPU v6e, C4, A3 Ultra boot from Hyperdisk only.
        (
            "{name: tpu, tpu: {version: v6e, topology: 2x4}, max_nodes: 1, zones: [us-central1-a], disk_type: pd-ssd}",
            "cluster.node_pools[0].disk_type: ct6e-standard-8t boots from Hyperdisk only (ct6e-* machine types)",
        ),
        ("{name: c4, instance_type: c4-standard-8, disk_type: pd-balanced}", "c4-standard-8 boots from Hyperdisk only"),
        ("{name: a3u, instance_type: a3-ultragpu-8g, disk_type: pd-standard}", "a3-ultragpu-8g boots from Hyperdisk only"),
        # and N1 / E2 take Persistent Disk only.
        ("{name: e2, instance_type: e2-standard-4, disk_type: hyperdisk-balanced}", "e2-standard-4 takes Persistent Disk only (e2-* machine types)"),
        # N1 vCPU limits per attached GPU count.
        (
            "{name: v, instance_type: n1-standard-16, gpu: {type: nvidia-tesla-v100, count: 1}}",
            "n1-standard-16 has 16 vCPUs; with 1 nvidia-tesla-v100 an N1 VM may have at most 12",
        ),
    ],
)
def test_gcp_pool_apply_rules(pool, expected):
    assert any(expected in p for p in problems(pools(pool))), problems(pools(pool))


@pytest.mark.parametrize(
    "pool",
    [
        "{name: tpu, tpu: {version: v5e, topology: 2x4}, max_nodes: 1, zones: [us-central1-a]}",
        "{name: tpu, tpu: {version: v5e, topology: 4x4}, min_nodes: 4, max_nodes: 4, zones: [us-central1-a]}",
        "{name: tpu, tpu: {version: v6e, topology: 2x4}, max_nodes: 1, zones: [us-central1-a], disk_type: hyperdisk-balanced}",
        "{name: v6e, tpu: {version: v6e, topology: 2x4}, max_nodes: 1, zones: [us-central1-a]}",
        "{name: n2, instance_type: n2-standard-4, disk_type: pd-ssd}",
        "{name: v, instance_type: n1-standard-8, gpu: {type: nvidia-tesla-v100, count: 1}}",
        "{name: t, instance_type: n1-standard-96, gpu: {type: nvidia-tesla-t4, count: 4}}",
    ],
)
def test_what_gke_accepts_passes(pool):
    loads(pools(pool))


def test_boot_disk_follows_the_machine_type_unless_given():
    spec = loads(
        pools(
            "{name: v6e, tpu: {version: v6e, topology: 4x4}, max_nodes: 4, zones: [us-central1-a]}",
            "{name: n4, instance_type: n4-standard-8}",
            "{name: n2, instance_type: n2-standard-8}",
            "{name: n2d, instance_type: n2d-standard-8, disk_type: hyperdisk-balanced}",
        )
    )
    assert [gcp_rules.gcp_boot_disk(p) for p in spec.cluster.node_pools] == ["hyperdisk-balanced", "hyperdisk-balanced", "pd-balanced", "hyperdisk-balanced"]


def test_private_endpoint_takes_internal_ranges_only():
    text = pools("{name: cpu, instance_type: n2-standard-4}", cluster="  endpoint_public_access: false\n")
    assert any(
        "cluster.public_access_cidrs[0]: '0.0.0.0/0' is a public range; with endpoint_public_access: false GKE accepts only internal ranges" in p
        for p in problems(text)
    )
    loads(text.replace("endpoint_public_access: false\n", "endpoint_public_access: false\n  public_access_cidrs: [10.0.0.0/8]\n"))


@pytest.mark.parametrize(
    "cidr, what",
    [("172.16.0.0/16", "the control plane range 172.16.0.0/28"), ("10.66.0.0/16", "the pod range 10.64.0.0/14"), ("10.68.0.0/20", "the Service range")],
)
def test_vpc_range_must_not_overlap_what_gke_uses(cidr, what):
    text = GCP + f"network: {{vpc_cidr: {cidr}}}\ncluster:\n  node_pools:\n    - {{name: cpu, instance_type: n2-standard-4}}\n"
    assert any(f"network.vpc_cidr: {cidr} overlaps {what}" in p for p in problems(text))


def test_the_ranges_the_rules_know_are_the_modules_defaults():
    def defaults(module: str) -> dict:
        with open(REPO / "terraform/gcp" / module / "variables.tf") as f:
            return {name: body.get("default") for block in plain(hcl2.load(f))["variable"] for name, body in block.items()}

    gke, network = defaults("gke"), defaults("network")
    assert gke["master_cidr"] == gcp_rules.GKE_MASTER_CIDR
    assert network["pods_cidr"] == gcp_rules.GKE_POD_CIDR
    assert network["services_cidr"] == gcp_rules.GKE_SERVICE_CIDR


def test_tpu_v6e_needs_a_recent_gke():
    pool = "{name: v6e, tpu: {version: v6e, topology: 2x4}, max_nodes: 1, zones: [us-central1-a]}"
    old = pools(pool, cluster='  kubernetes_version: "1.30"\n')
    assert any('cluster.kubernetes_version: TPU v6e pools (pool \'v6e\') need GKE 1.31 or later' in p for p in problems(old))
    loads(pools(pool, cluster='  kubernetes_version: "1.31"\n'))
