"""The add-ons stack without the helm provider (it cannot be installed here): fmt, an HCL parse, and
what the spec turns on. Every chart is pinned to one version, and every tfvars key is declared."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from mlkit.render.infra import render
from mlkit.spec.loader import load, loads
from tests.conftest import EXAMPLE_NAMES, EXAMPLES, mlkit
from tests.terraform.test_gcp_static import parse_all

EXACT_VERSION = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+$")


def releases(parsed: dict) -> dict[str, dict]:
    out = {}
    for file in parsed.values():
        for block in file.get("resource", []):
            for name, body in block.get("helm_release", {}).items():
                out[name] = body
    return out


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_fmt_clean_parses_and_pins_every_chart(project, name):
    proj = project(name)
    assert mlkit("render", cwd=proj).returncode == 0
    stack = proj / "infra/terraform/addons"
    if shutil.which("terraform"):
        fmt = subprocess.run(["terraform", "fmt", "-check", "-recursive", "-diff"], cwd=stack, capture_output=True, text=True)
        assert fmt.returncode == 0, fmt.stdout
    parsed = parse_all(stack)
    charts = releases(parsed)
    assert {"keda", "prometheus"} <= set(charts)
    for release, body in charts.items():
        assert EXACT_VERSION.match(body["version"]), f"{release}: version {body['version']!r} is not pinned"
    declared = {name for v in parsed["variables.tf"]["variable"] for name in v}
    tfvars = json.loads((stack / "mlkit.auto.tfvars.json").read_text())
    assert set(tfvars) <= declared
    for release, body in charts.items():
        count = body.get("count")
        if count:
            toggle = re.search(r"var\.(enable_[a-z_]+)", str(count)).group(1)
            assert toggle in declared, release


def addons_tfvars(spec_text: str) -> dict:
    return json.loads(render(loads(spec_text))["infra/terraform/addons/mlkit.auto.tfvars.json"])


def test_aws_addons_follow_the_pools_and_apis():
    accel = json.loads(render(load(EXAMPLES / "aws-accelerators" / "mlkit.yaml"))["infra/terraform/addons/mlkit.auto.tfvars.json"])
    assert accel["enable_nvidia_device_plugin"] and accel["enable_neuron_device_plugin"] and accel["enable_cluster_autoscaler"]
    assert not accel["enable_load_balancer_controller"] and not accel["enable_gateway"]
    plain = json.loads(render(load(EXAMPLES / "sentiment" / "mlkit.yaml"))["infra/terraform/addons/mlkit.auto.tfvars.json"])
    assert not plain["enable_nvidia_device_plugin"] and not plain["enable_neuron_device_plugin"]
    public = addons_tfvars(
        "project: pub-demo\ncloud: aws\nregion: us-east-1\ncluster: {node_pools: [{name: cpu, instance_type: m6i.large}]}\n"
        "apis: [{name: a, predictor: p.py:P, expose: public, canary: {weight: 5}}]\n"
    )
    assert public["enable_load_balancer_controller"] and public["enable_gateway"]


def test_existing_cluster_gets_addons_and_apis_but_no_cluster_stack():
    spec = loads(
        "project: byo-demo\ncloud: aws\nregion: us-east-1\ncluster: {existing: {name: prod-eks, context: prod}}\n"
        "apis: [{name: a, predictor: p.py:P}]\n"
    )
    files = render(spec)
    assert not any(rel.startswith("infra/terraform/cluster/") for rel in files)
    tfvars = json.loads(files["infra/terraform/addons/mlkit.auto.tfvars.json"])
    assert tfvars["cluster_name"] == "prod-eks" and tfvars["kube_context"] == "prod"
    assert not tfvars["enable_cluster_autoscaler"]
    assert "config_context = var.kube_context" in files["infra/terraform/addons/main.tf"]
    assert "infra/k8s/a/deployment.yaml" in files


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_a_kubeconfig_context_alone_is_enough_for_addons_and_apis(cloud):
    region = "us-east-1" if cloud == "aws" else "us-central1\ngcp_project: acme-ml"
    text = f"project: ctx-demo\ncloud: {cloud}\nregion: {region}\ncluster: {{existing: {{context: prod}}}}\napis: [{{name: a, predictor: p.py:P}}]\n"
    files = render(loads(text))
    tfvars = json.loads(files["infra/terraform/addons/mlkit.auto.tfvars.json"])
    assert tfvars["kube_context"] == "prod" and "cluster_name" not in tfvars
    main = files["infra/terraform/addons/main.tf"]
    assert "config_context = var.kube_context" in main
    assert "data \"aws_eks_cluster\"" not in main and "data \"google_container_cluster\"" not in main
    assert "infra/terraform/addons/policies.tf" not in files


def test_an_aws_load_balancer_on_a_context_only_cluster_asks_for_the_name():
    from mlkit.errors import SpecError

    text = "project: ctx-demo\ncloud: aws\nregion: us-east-1\ncluster: {existing: {context: prod}}\napis: [{name: a, predictor: p.py:P, expose: public}]\n"
    with pytest.raises(SpecError, match=r"cluster.existing.name: API a has a load balancer.*set the EKS cluster's name here too"):
        loads(text)


def test_gke_addons_leave_device_plugins_and_autoscaling_to_gke():
    files = render(load(EXAMPLES / "gcp-tpu-v5e" / "mlkit.yaml"))
    tfvars = json.loads(files["infra/terraform/addons/mlkit.auto.tfvars.json"])
    assert tfvars["cluster_location"] == "us-west4-a"  # the example's zonal cluster
    text = "".join(v for k, v in files.items() if k.startswith("infra/terraform/addons/"))
    assert "device_plugin" not in text and "cluster_autoscaler" not in text


def test_cluster_autoscaler_minor_follows_the_cluster():
    """Upstream supports each autoscaler release only on its own Kubernetes minor."""
    from mlkit.clouds import aws_rules
    from mlkit.errors import SpecError
    from mlkit.spec.schema import ClusterSpec

    spec = ("project: ca-demo\ncloud: aws\nregion: us-east-1\n"
            "cluster: {{kubernetes_version: '{v}', node_pools: [{{name: cpu, instance_type: m6i.large}}]}}\napis: [{{name: a, predictor: p.py:P}}]\n")
    for version, tag in aws_rules.CLUSTER_AUTOSCALER.items():
        assert tag.startswith(f"v{version}."), tag
        assert addons_tfvars(spec.format(v=version))["cluster_autoscaler_image_tag"] == tag
    default = ClusterSpec.model_fields["kubernetes_version"].default
    variables = (EXAMPLES.parent / "templates/terraform/aws/addons/variables.tf.j2").read_text()
    assert f'default     = "{aws_rules.CLUSTER_AUTOSCALER[default]}"' in variables
    with pytest.raises(SpecError) as info:
        loads(spec.format(v="1.27"))
    assert "no Cluster Autoscaler release for Kubernetes 1.27" in info.value.problems[0]


def chart_values(example: str, release: str) -> dict:
    from tests.terraform.test_chart_values import releases as chart_releases
    from tests.terraform.test_chart_values import yamlencode_object

    values = chart_releases(example)[release]["values"]
    return yamlencode_object(values[0] if isinstance(values, list) else values)


def test_the_interceptor_drains_long_streams_before_it_stops():
    # The chart gives a stopping interceptor 30 s (drainTimeout 30s, grace 45): every longer stream of an API
    # at zero was cut whenever the interceptor scaled in, rolled or drained.
    interceptor = chart_values("aws-accelerators", "http_add_on")["interceptor"]
    drain = int(interceptor["drainTimeout"].removesuffix("s"))
    assert drain >= 600
    assert interceptor["terminationGracePeriodSeconds"] >= 5 + drain  # shutdownDelay (5s) + drainTimeout, as values.yaml asks


def test_gpu_nodes_run_a_dcgm_exporter_that_the_addons_prometheus_scrapes():
    # The dashboard's GPU panel reads DCGM_FI_DEV_GPU_UTIL; the add-ons' Prometheus scrapes pods by annotation,
    # which the dcgm-exporter chart leaves commented out, and its default ServiceMonitor needs a CRD nobody installs.
    values = chart_values("aws-accelerators", "dcgm_exporter")
    assert values["podAnnotations"] == {"prometheus.io/scrape": "true", "prometheus.io/port": "9400"}
    assert values["serviceMonitor"] == {"enabled": False}
    assert values["nodeSelector"] == {"mlkit.dev/accelerator-kind": "nvidia"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in values["tolerations"]
    text = render(load(EXAMPLES / "aws-accelerators" / "mlkit.yaml"))["infra/terraform/addons/main.tf"]
    assert re.search(r'resource "helm_release" "dcgm_exporter" \{\n  count = var.enable_dcgm_exporter \? 1 : 0', text)
