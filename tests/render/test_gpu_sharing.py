"""Shared GPUs (`gpu_sharing` on a pool), as rendered: GKE's node pool sharing config and the labels its
pods select; on EKS the device plugin's per-pool configs, the node labels that pick them, and node
templates at zero that count shares, so that a pool of 1-GPU nodes shared 4 ways holds 4 replicas per node.
"""

from __future__ import annotations

import json
from pathlib import Path

import hcl2
import yaml

from mlkit.render import gpu_sharing
from mlkit.render.infra import render
from mlkit.spec import accelerators as acc
from mlkit.spec.loader import loads
from tests import template_nodes
from tests.render.test_scale_from_zero import pods
from tests.render.test_scale_from_zero_karpenter import assert_every_api_fits
from tests.terraform.test_gcp_static import plain

# The device plugin's facts at the pinned release, with their sources.
PLUGIN = json.loads((Path(__file__).parent / "data" / "nvidia-device-plugin-sharing.json").read_text())

GKE = """\
project: acme
cloud: gcp
region: us-central1
gcp_project: acme-prod
cluster:
  node_pools:
    - {{name: cpu, instance_type: n2-standard-4, max_nodes: 4}}
    - {{name: l4, instance_type: g2-standard-8, max_nodes: 2, gpu_sharing: {{strategy: {strategy}, replicas_per_gpu: 4}}}}
apis:
  - {{name: small, predictor: p.py:P, compute: {{cpu: 500m, memory: 2Gi, gpu: 1}}}}
"""

EKS = """\
project: acme
cloud: aws
region: us-west-2
cluster:
  node_provisioning: {provisioning}
  node_pools:
    - {{name: cpu, instance_type: m6i.large, max_nodes: 4}}
    - {{name: whole, instance_type: g5.xlarge, max_nodes: 2}}
    - {{name: shared, instance_type: g5.xlarge, max_nodes: 2, gpu_sharing: {{strategy: {strategy}, replicas_per_gpu: 4}}}}
apis:
  - {{name: small, predictor: p.py:P, node_pool: shared, compute: {{cpu: 500m, memory: 2Gi, gpu: 1}}}}
  - {{name: big, predictor: p.py:P, node_pool: whole, compute: {{cpu: 1, memory: 4Gi, gpu: 1}}}}
"""


def only_pod(files: dict[str, str], api: str) -> dict:
    return next(pod for where, pod in pods(files).items() if where.startswith(f"infra/k8s/{api}/"))


def test_gke_pool_shares_its_gpus_and_the_pods_select_the_shared_nodes():
    files = render(loads(GKE.format(strategy="time-slicing")))  # MPS is refused on GKE (tests/spec/test_gpu_sharing.py)
    pool = json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])["node_pools"]["l4"]
    assert pool["gpu"] == {"type": "nvidia-l4", "count": 1, "sharing": {"strategy": "TIME_SHARING", "max_shared_clients_per_gpu": 4}}
    pod = only_pod(files, "small")
    assert pod["nodeSelector"]["cloud.google.com/gke-gpu-sharing-strategy"] == "time-sharing"
    assert pod["nodeSelector"]["cloud.google.com/gke-max-shared-clients-per-gpu"] == "4"
    # GKE's template node at zero: one L4 offered as 4 devices, labelled as GKE labels shared nodes.
    node = template_nodes.gke_node_pool("l4", pool, acc.table()["gcp"])
    assert template_nodes.fits(pod, node) == []
    assert template_nodes.replicas_per_node(pod, node) == 4


def test_an_unshared_gke_pool_has_no_sharing_block_and_no_sharing_selector():
    files = render(loads(GKE.replace(", gpu_sharing: {{strategy: {strategy}, replicas_per_gpu: 4}}", "").format()))
    assert "sharing" not in json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])["node_pools"]["l4"]["gpu"]
    assert not [k for k in only_pod(files, "small")["nodeSelector"] if "sharing" in k or "shared" in k]


def test_the_gke_module_hands_the_sharing_config_to_the_provider():
    files = render(loads(GKE.format(strategy="time-slicing")))
    module = plain(hcl2.loads(files["infra/terraform/cluster/modules/node-pool/main.tf"]))
    accel = module["resource"][0]["google_container_node_pool"]["this"]["node_config"][0]["dynamic"]
    guest = next(d["guest_accelerator"] for d in accel if "guest_accelerator" in d)
    sharing = next(d["gpu_sharing_config"] for d in guest["content"][0]["dynamic"] if "gpu_sharing_config" in d)
    assert sharing["content"][0] == {
        "gpu_sharing_strategy": "${gpu_sharing_config.value.strategy}",
        "max_shared_clients_per_gpu": "${gpu_sharing_config.value.max_shared_clients_per_gpu}",
    }


def test_an_eks_node_group_at_zero_offers_shares_so_four_replicas_fit_one_node():
    spec = loads(EKS.format(provisioning="node-groups", strategy="time-slicing"))
    files = render(spec)
    groups = json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])["node_groups"]
    assert groups["shared"]["labels"][gpu_sharing.CONFIG_LABEL] == "shared"
    assert gpu_sharing.CONFIG_LABEL not in groups["whole"]["labels"]
    shared = template_nodes.eks_node_group("shared", groups["shared"], spec.project, spec.cluster.kubernetes_version)
    whole = template_nodes.eks_node_group("whole", groups["whole"], spec.project, spec.cluster.kubernetes_version)
    assert template_nodes.fits(only_pod(files, "small"), shared) == []
    # g5.xlarge: 4 vCPUs and one A10G; 500m each, so the GPU's 4 shares are what bounds the node.
    assert template_nodes.replicas_per_node(only_pod(files, "small"), shared) == 4
    assert template_nodes.replicas_per_node(only_pod(files, "big"), whole) == 1


def device_plugin_config_for(configs: dict[str, str], default: str, node_label: str | None) -> str:
    """The config the plugin's config-manager loads on a node: its label, else the default, else the
    fallbacks the chart sets (`named`, `single`), as PLUGIN's `config_selection` says."""
    if node_label:
        assert node_label in configs, f"a node asks for config {node_label!r}, which the map lacks"
        return node_label
    if default:
        return default
    for strategy in PLUGIN["config_selection"]["chart_fallback_strategies"]:
        if strategy == "named" and PLUGIN["config_selection"]["named_fallback"] in configs:
            return str(PLUGIN["config_selection"]["named_fallback"])
        if strategy == "single" and len(configs) == 1:
            return next(iter(configs))
    return ""


def test_the_labels_and_keys_are_the_plugins_own():
    assert gpu_sharing.CONFIG_LABEL == PLUGIN["config_label"]["value"]
    assert {gpu_sharing.MPS_CAPABLE_LABEL: "true"} == PLUGIN["mps"]["daemon_node_selector"]
    assert gpu_sharing._STRATEGY_KEY == {k: PLUGIN["sharing_keys"][k] for k in ("time-slicing", "mps")}
    # The default config can never be a pool's: pool names are DNS labels, and the plugin's own
    # `named` fallback name is not used either.
    assert "_" in gpu_sharing.DEFAULT_CONFIG and gpu_sharing.DEFAULT_CONFIG != PLUGIN["config_selection"]["named_fallback"]
    configs = json.loads(render(loads(EKS.format(provisioning="node-groups", strategy="mps")))["infra/terraform/addons/mlkit.auto.tfvars.json"])
    for text in configs["nvidia_device_plugin_configs"].values():
        for strategy, block in yaml.safe_load(text).get("sharing", {}).items():
            assert strategy in (PLUGIN["sharing_keys"]["time-slicing"], PLUGIN["sharing_keys"]["mps"])
            assert sorted(block) == sorted(PLUGIN["sharing_keys"]["resource_fields"])
            assert all(sorted(r) == sorted(PLUGIN["sharing_keys"]["replica_fields"]) for r in block["resources"])
            assert all(r["replicas"] >= PLUGIN["sharing_keys"]["min_replicas"] for r in block["resources"])


def rendered_default(files: dict[str, str]) -> str:
    """`config.default` of the device plugin's values in the add-ons stack, for a non-empty config map."""
    main = plain(hcl2.loads(files["infra/terraform/addons/main.tf"]))
    release = next(r["helm_release"]["nvidia_device_plugin"] for r in main["resource"] if "nvidia_device_plugin" in r.get("helm_release", {}))
    values = release["values"][0]
    default = values[values.index("default = ") :].split("\n", 1)[0]
    assert "length(var.nvidia_device_plugin_configs) > 0" in default, default
    return default.split('? "', 1)[1].split('"', 1)[0]


def test_eks_device_plugin_shares_only_the_shared_pools_nodes():
    for strategy, key in (("time-slicing", "timeSlicing"), ("mps", "mps")):
        spec = loads(EKS.format(provisioning="node-groups", strategy=strategy))
        files = render(spec)
        configs = json.loads(files["infra/terraform/addons/mlkit.auto.tfvars.json"])["nvidia_device_plugin_configs"]
        default = rendered_default(files)
        groups = json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])["node_groups"]
        on_shared = yaml.safe_load(configs[device_plugin_config_for(configs, default, groups["shared"]["labels"].get(gpu_sharing.CONFIG_LABEL))])
        on_whole = yaml.safe_load(configs[device_plugin_config_for(configs, default, groups["whole"]["labels"].get(gpu_sharing.CONFIG_LABEL))])
        assert on_shared["sharing"] == {key: {"renameByDefault": False, "failRequestsGreaterThanOne": True,
                                              "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}
        assert "sharing" not in on_whole
        # MPS needs the chart's control daemon, which runs only on nodes labelled mps.capable.
        assert (groups["shared"]["labels"].get(gpu_sharing.MPS_CAPABLE_LABEL) == "true") == (strategy == "mps")


def test_without_the_default_config_the_one_shared_config_would_reach_every_gpu_node():
    """Why mlkit names `no_sharing` the default: the chart's fallbacks give a lone config to every node."""
    files = render(loads(EKS.format(provisioning="node-groups", strategy="mps")))
    configs = json.loads(files["infra/terraform/addons/mlkit.auto.tfvars.json"])["nvidia_device_plugin_configs"]
    lone = {name: text for name, text in configs.items() if name != gpu_sharing.DEFAULT_CONFIG}
    assert "sharing" in yaml.safe_load(lone[device_plugin_config_for(lone, "", None)])
    assert "sharing" not in yaml.safe_load(configs[device_plugin_config_for(configs, rendered_default(files), None)])


def test_no_shared_pool_leaves_the_device_plugin_as_it_was():
    files = render(loads(EKS.replace(", gpu_sharing: {{strategy: {strategy}, replicas_per_gpu: 4}}", "").format(provisioning="node-groups")))
    assert "nvidia_device_plugin_configs" not in json.loads(files["infra/terraform/addons/mlkit.auto.tfvars.json"])
    groups = json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])["node_groups"]
    assert "autoscaler_tags" in groups["shared"] and groups["shared"]["autoscaler_tags"] == {}


def test_karpenter_nodepools_of_a_shared_pool_carry_the_config_label_and_still_resolve():
    spec = loads(EKS.format(provisioning="karpenter", strategy="mps"))
    files = render(spec)
    docs = list(yaml.safe_load_all(files["infra/k8s/_shared/nodepools/shared.yaml"]))
    labels = next(d for d in docs if d["kind"] == "NodePool")["spec"]["template"]["metadata"]["labels"]
    assert labels[gpu_sharing.CONFIG_LABEL] == "shared" and labels[gpu_sharing.MPS_CAPABLE_LABEL] == "true"
    whole = next(d for d in yaml.safe_load_all(files["infra/k8s/_shared/nodepools/whole.yaml"]) if d["kind"] == "NodePool")
    assert gpu_sharing.CONFIG_LABEL not in whole["spec"]["template"]["metadata"]["labels"]
    assert_every_api_fits(files, spec)


def test_the_gpu_panel_says_a_shared_gpus_utilisation_is_its_sharers_together():
    from mlkit.render import dashboard

    spec = loads(EKS.format(provisioning="node-groups", strategy="mps"))
    about = {api.name: next(p.description for p in dashboard.panels(spec, api) if p.title == "GPU utilisation") for api in spec.apis}
    assert "shares each GPU between 4 replicas (mps)" in about["small"]
    assert "shares" not in about["big"]
