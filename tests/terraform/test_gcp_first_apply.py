"""What a team's first `mlkit apply` on GCP needs beyond `terraform validate` (issue 17, items 1-5,
and issue 11 item 5): checked on the rendered stacks by parsing them, as no google provider or cloud
account can be had here."""

from __future__ import annotations

import json

from tests.conftest import mlkit
from tests.terraform.test_gcp_static import parse_all, rendered, resource


def test_workload_identity_binding_waits_for_the_cluster(project):
    """The pool PROJECT.svc.id.goog exists only once a Workload Identity cluster does: the binding's
    member must come from the cluster resource, not be rebuilt from the project ID."""
    parsed = parse_all(rendered(project, "gcp-l4"))
    binding = resource(parsed, "main.tf", "google_service_account_iam_member", "api_workload_identity")
    assert binding["member"] == "serviceAccount:${module.gke.workload_pool}[${var.namespace}/${each.key}]"
    outputs = {name: body for block in parsed["modules/gke/outputs.tf"]["output"] for name, body in block.items()}
    assert outputs["workload_pool"]["value"] == "${google_container_cluster.this.workload_identity_config[0].workload_pool}"


def test_control_plane_reaches_keda_metrics_and_webhooks_on_the_nodes_only(project):
    parsed = parse_all(rendered(project, "gcp-l4"))
    rule = resource(parsed, "modules/gke/main.tf", "google_compute_firewall", "control_plane_to_webhooks")
    cluster = resource(parsed, "modules/gke/main.tf", "google_container_cluster")
    # From the control plane's range, exactly as the cluster is given it ...
    assert rule["source_ranges"] == [cluster["private_cluster_config"][0]["master_ipv4_cidr_block"]] == ["${var.master_cidr}"]
    assert rule["direction"] == "INGRESS" and rule["allow"] == [{"protocol": "tcp", "ports": ["6443", "9443"]}]
    # ... to the nodes that run as this cluster's node service account, which every pool is given.
    assert rule["target_service_accounts"] == ["${google_service_account.nodes.email}"]
    assert "target_tags" not in rule and "source_tags" not in rule
    assert rule["network"] == cluster["network"]
    # Below the network's logged deny-all (priority 65534), so it takes effect.
    deny = resource(parsed, "modules/network/main.tf", "google_compute_firewall", "deny_ingress")
    assert rule["priority"] < deny["priority"]
    node_pool = next(m for m in parsed["main.tf"]["module"] if "node_pool" in m)["node_pool"]
    assert node_pool["service_account"] == "${module.gke.node_service_account}"


def _pools(tmp_path, pools: str, zone: str = "us-east5-b") -> dict:
    (tmp_path / "mlkit.yaml").write_text(
        f"project: acme\ncloud: gcp\nregion: us-east5\ngcp_project: acme-prod\ncluster:\n  zone: {zone}\n  node_pools:\n{pools}"
    )
    result = mlkit("render", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return json.loads((tmp_path / "infra/terraform/cluster/mlkit.auto.tfvars.json").read_text())["node_pools"]


def test_hyperdisk_only_machine_types_get_hyperdisk_balanced(tmp_path):
    pools = _pools(
        tmp_path,
        "    - {name: v6e, tpu: {version: v6e, topology: 2x4}, max_nodes: 1}\n"
        "    - {name: v6e-slice, tpu: {version: v6e, topology: 4x4}, max_nodes: 4}\n"
        "    - {name: c4, instance_type: c4-standard-8}\n"
        "    - {name: n2, instance_type: n2-standard-8}\n"
        "    - {name: n2-ssd, instance_type: n2-standard-8, disk_type: pd-ssd}\n",
    )
    assert {name: p["disk_type"] for name, p in pools.items()} == {
        "v6e": "hyperdisk-balanced",
        "v6e-slice": "hyperdisk-balanced",
        "c4": "hyperdisk-balanced",
        "n2": "pd-balanced",
        "n2-ssd": "pd-ssd",
    }


def test_an_explicit_persistent_disk_on_v6e_is_a_spec_error(tmp_path):
    (tmp_path / "mlkit.yaml").write_text(
        "project: acme\ncloud: gcp\nregion: us-east5\ngcp_project: p\ncluster:\n  zone: us-east5-b\n  node_pools:\n"
        "    - {name: v6e, tpu: {version: v6e, topology: 2x4}, max_nodes: 1, disk_type: pd-balanced}\n"
    )
    result = mlkit("render", cwd=tmp_path)
    assert result.returncode == 1
    assert "cluster.node_pools[0].disk_type: ct6e-standard-8t boots from Hyperdisk only" in result.stderr
    assert not (tmp_path / "infra").exists()


def test_pools_are_replaced_create_before_destroy(project):
    """Issue 11 item 5: a change that forces a new pool creates it beside the old one first, which
    needs a name the old pool does not hold."""
    parsed = parse_all(rendered(project, "gcp-tpu-v5e"))
    pool = resource(parsed, "modules/node-pool/main.tf", "google_container_node_pool")
    assert "name" not in pool
    assert pool["name_prefix"] == "${substr(var.name, 0, 13)}-"  # 13 + "-" + the provider's 26 = GKE's 40
    assert pool["lifecycle"][0]["create_before_destroy"] is True
    assert pool["lifecycle"][0]["ignore_changes"] == ["initial_node_count"]
    # Nothing selects pools by their GKE name: the manifests select by the mlkit.dev/pool label.
    outputs = parsed["outputs.tf"]["output"]
    node_pools = next(o["node_pools"] for o in outputs if "node_pools" in o)
    assert "pool.labels" in node_pools["value"]
