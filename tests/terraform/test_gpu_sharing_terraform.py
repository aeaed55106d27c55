"""Shared GPU pools through real terraform: the rendered tfvars fit the stacks' variable types, the GKE
module's validation takes what mlkit renders and refuses what GKE would, and the device plugin's values
evaluate to the configs and the default that tests/render/test_gpu_sharing.py reasons about.

No provider is needed: each case is a root of the rendered `variables.tf` (and what is evaluated, as
outputs), applied to a local state, so terraform itself reads the types, defaults and validations.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest
import yaml

from mlkit.render import gpu_sharing
from mlkit.render.infra import render
from mlkit.spec.loader import loads
from tests.render.test_gpu_sharing import EKS, GKE
from tests.terraform.test_gcp_static import plain

pytestmark = pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on PATH")


def apply(root: Path, files: dict[str, str]) -> subprocess.CompletedProcess:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text)
    env = {"PATH": os.environ.get("PATH", ""), "TF_IN_AUTOMATION": "1", "HOME": str(root)}
    init = subprocess.run(["terraform", "init", "-input=false", "-no-color"], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    return subprocess.run(["terraform", "apply", "-auto-approve", "-input=false", "-no-color"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def outputs(root: Path) -> dict:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(root)}
    out = subprocess.run(["terraform", "output", "-json", "-no-color"], cwd=root, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    return {k: v["value"] for k, v in json.loads(out.stdout).items()}


def test_the_gke_root_reads_the_sharing_config_from_the_tfvars(tmp_path):
    files = render(loads(GKE.format(strategy="time-slicing")))
    root = "infra/terraform/cluster/"
    done = apply(tmp_path, {
        "variables.tf": files[root + "variables.tf"],
        "terraform.tfvars.json": files[root + "mlkit.auto.tfvars.json"],
        "outputs.tf": 'output "shared" { value = var.node_pools["l4"].gpu.sharing }\noutput "cpu_unshared" { value = var.node_pools["cpu"].gpu == null }\n',
    })
    assert done.returncode == 0, done.stderr
    assert outputs(tmp_path) == {"shared": {"strategy": "TIME_SHARING", "max_shared_clients_per_gpu": 4}, "cpu_unshared": True}


MODULE_VARS = {"name": "l4", "project_id": "acme-prod", "cluster": "acme", "location": "us-central1", "machine_type": "g2-standard-8",
               "max_nodes": 2, "service_account": "nodes@acme-prod.iam.gserviceaccount.com"}


@pytest.mark.parametrize(("sharing", "error"), [
    (None, None),
    ({"strategy": "TIME_SHARING", "max_shared_clients_per_gpu": 48}, None),
    ({"strategy": "MPS", "max_shared_clients_per_gpu": 2}, None),
    ({"strategy": "SPATIAL", "max_shared_clients_per_gpu": 4}, "gpu.sharing.strategy must be TIME_SHARING or MPS"),
    ({"strategy": "MPS", "max_shared_clients_per_gpu": 49}, "max_shared_clients_per_gpu from 2 to 48"),
])
def test_the_node_pool_module_checks_its_sharing_input(tmp_path, sharing, error):
    module = (Path(__file__).resolve().parents[2] / "terraform/gcp/node-pool/variables.tf").read_text()
    gpu = {"type": "nvidia-l4", "count": 1} | ({"sharing": sharing} if sharing else {})
    done = apply(tmp_path, {"variables.tf": module, "terraform.tfvars.json": json.dumps(MODULE_VARS | {"gpu": gpu}),
                            "outputs.tf": 'output "gpu" { value = var.gpu }\n'})
    if error is None:
        assert done.returncode == 0, done.stderr
        assert outputs(tmp_path)["gpu"] == {"type": "nvidia-l4", "count": 1, "sharing": sharing}  # null stays null
    else:
        assert done.returncode != 0 and error in " ".join(done.stderr.split()), done.stderr


def device_plugin_values(files: dict[str, str], tmp_path: Path) -> dict:
    """The nvidia-device-plugin release's values as terraform evaluates them from the rendered add-ons stack."""
    main = plain(hcl2.loads(files["infra/terraform/addons/main.tf"]))
    release = next(r["helm_release"]["nvidia_device_plugin"] for r in main["resource"] if "nvidia_device_plugin" in r.get("helm_release", {}))
    expression = release["values"][0]
    assert expression.startswith("${") and expression.endswith("}")
    done = apply(tmp_path, {
        "variables.tf": files["infra/terraform/addons/variables.tf"],
        "terraform.tfvars.json": files["infra/terraform/addons/mlkit.auto.tfvars.json"],
        "outputs.tf": f'output "values" {{\n  value = {expression[2:-1]}\n}}\n',
    })
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(outputs(tmp_path)["values"])


def test_the_device_plugin_gets_the_pools_configs_and_the_no_sharing_default(tmp_path):
    files = render(loads(EKS.format(provisioning="node-groups", strategy="time-slicing")))
    values = device_plugin_values(files, tmp_path / "shared")
    configs = json.loads(files["infra/terraform/addons/mlkit.auto.tfvars.json"])["nvidia_device_plugin_configs"]
    assert values["config"] == {"map": configs, "default": gpu_sharing.DEFAULT_CONFIG}
    assert set(configs) == {gpu_sharing.DEFAULT_CONFIG, "shared"}
    # Without shared pools the values are the chart's own defaults: no config map, no default.
    plain_files = render(loads(EKS.replace(", gpu_sharing: {{strategy: {strategy}, replicas_per_gpu: 4}}", "").format(provisioning="node-groups")))
    assert device_plugin_values(plain_files, tmp_path / "plain")["config"] == {"map": {}, "default": ""}
