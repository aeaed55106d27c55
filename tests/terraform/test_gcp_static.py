"""The GKE stack without the google provider (it cannot be installed here): fmt, an HCL parse of
every rendered file, and structural checks of what the pools become. `test_validate.py` runs
`terraform validate` on these stacks too, wherever the mirror holds hashicorp/google."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest

from tests.conftest import EXAMPLE_NAMES, EXAMPLES, mlkit

GCP_EXAMPLES = [n for n in EXAMPLE_NAMES if "cloud: gcp" in (EXAMPLES / n / "mlkit.yaml").read_text()]


def rendered(project, name: str) -> Path:
    proj = project(name)
    result = mlkit("render", cwd=proj)
    assert result.returncode == 0, result.stderr
    return proj / "infra/terraform/cluster"


def plain(value):
    """python-hcl2 8 keeps the quotes of names and strings and marks blocks; older versions do not."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parse_all(stack: Path) -> dict[str, dict]:
    parsed = {}
    for path in sorted(stack.rglob("*.tf")):
        with open(path) as f:
            parsed[str(path.relative_to(stack))] = plain(hcl2.load(f))
    return parsed


def resource(parsed: dict, file: str, kind: str, name: str = "this") -> dict:
    for block in parsed[file].get("resource", []):
        if kind in block and name in block[kind]:
            return block[kind][name]
    raise AssertionError(f"{file} has no {kind}.{name}")


@pytest.mark.parametrize("name", GCP_EXAMPLES)
def test_fmt_clean_and_parses(project, name):
    stack = rendered(project, name)
    if shutil.which("terraform"):
        fmt = subprocess.run(["terraform", "fmt", "-check", "-recursive", "-diff"], cwd=stack, capture_output=True, text=True)
        assert fmt.returncode == 0, fmt.stdout
    parsed = parse_all(stack)
    main = parsed["main.tf"]
    modules = {list(m)[0] for m in main["module"]}
    assert modules == {"network", "gke", "node_pool", "artifact_registry", "model_bucket", "async_queue"}
    provider = main["provider"][0]["google"]
    assert provider["project"] == "${var.project_id}"


def test_tpu_pools(project):
    stack = rendered(project, "gcp-tpu-v5e")
    pools = json.loads((stack / "mlkit.auto.tfvars.json").read_text())["node_pools"]
    multi, single = pools["tpu-slice"], pools["tpu"]
    assert (multi["machine_type"], multi["tpu_topology"], multi["slice_nodes"]) == ("ct5lp-hightpu-4t", "4x4", 4)
    assert (single["machine_type"], single["tpu_topology"], single["slice_nodes"]) == ("ct5lp-hightpu-8t", None, 1)
    pool = resource(parse_all(stack), "modules/node-pool/main.tf", "google_container_node_pool")
    placement = pool["dynamic"][0]["placement_policy"]
    assert placement["for_each"] == "${local.multi_host ? [1] : []}"  # only multi-host slices
    assert placement["content"][0] == {"type": "COMPACT", "tpu_topology": "${var.tpu_topology}"}
    # Every pool autoscales; a multi-host slice between 0 and all of its VMs, as one unit.
    assert "node_count" not in pool
    assert pool["autoscaling"][0] == {
        "min_node_count": "${var.min_nodes}",
        "max_node_count": "${local.multi_host ? var.slice_nodes : var.max_nodes}",
        "location_policy": '${local.multi_host ? "ANY" : null}',
    }


def test_gpu_pools_get_the_accelerator_and_driver(project):
    stack = rendered(project, "gcp-l4")
    pools = json.loads((stack / "mlkit.auto.tfvars.json").read_text())["node_pools"]
    assert pools["l4"]["gpu"] == {"type": "nvidia-l4", "count": 1} and pools["l4"]["spot"] is True
    assert pools["cpu"]["gpu"] is None
    pool = resource(parse_all(stack), "modules/node-pool/main.tf", "google_container_node_pool")
    accel = pool["node_config"][0]["dynamic"][0]["guest_accelerator"]
    assert accel["for_each"] == "${var.gpu == null ? [] : [var.gpu]}"
    assert accel["content"][0]["gpu_driver_installation_config"][0] == {"gpu_driver_version": "LATEST"}


def test_cluster_security_settings(project):
    parsed = parse_all(rendered(project, "gcp-l4"))
    cluster = resource(parsed, "modules/gke/main.tf", "google_container_cluster")
    assert cluster["workload_identity_config"][0]["workload_pool"] == "${var.project_id}.svc.id.goog"
    assert cluster["private_cluster_config"][0]["enable_private_nodes"] is True
    assert cluster["datapath_provider"] == "ADVANCED_DATAPATH"
    assert cluster["enable_shielded_nodes"] is True
    bucket = resource(parsed, "modules/model-bucket/main.tf", "google_storage_bucket")
    assert bucket["uniform_bucket_level_access"] is True and bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"][0]["enabled"] is True
    reader = resource(parsed, "modules/model-bucket/main.tf", "google_storage_bucket_iam_member", "reader")
    assert reader["role"] == "roles/storage.objectViewer"


def test_existing_network_and_gcs_state(tmp_path):
    (tmp_path / "mlkit.yaml").write_text(
        "project: acme\ncloud: gcp\nregion: europe-west4\ngcp_project: acme-prod\nstate: {backend: gcs, bucket: acme-tf}\n"
        "network: {existing_network: shared-vpc, existing_subnetwork: gke-subnet}\n"
        "cluster:\n  node_pools:\n    - {name: cpu, instance_type: e2-standard-4}\n"
    )
    assert mlkit("render", cwd=tmp_path).returncode == 0
    stack = tmp_path / "infra/terraform/cluster"
    assert not (stack / "modules/network").exists()
    parsed = parse_all(stack)
    assert parsed["backend.tf"]["terraform"][0]["backend"][0]["gcs"] == {"bucket": "acme-tf", "prefix": "mlkit/cluster"}
    tfvars = json.loads((stack / "mlkit.auto.tfvars.json").read_text())
    assert (tfvars["existing_network"], tfvars["existing_subnetwork"]) == ("shared-vpc", "gke-subnet")
