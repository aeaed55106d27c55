"""Scale from zero: every API placed on a pool fits the node the autoscaler imagines for that pool at zero.

A pool at `min_nodes: 0` has no node; the autoscaler scales it up only when a pending pod fits the
template node it builds from the pool (tests/template_nodes.py, from the autoscalers' own code and
facts kept in tests/render/data/autoscaler/). A pod that asks for a resource, label or taint the
template lacks stays Pending for ever. Checked for every example and a matrix of pools on both clouds,
with the node pools and the pod specs as rendered.
"""

from __future__ import annotations

import json

import pytest
import yaml

from mlkit.render.facts import Facts
from mlkit.render.infra import render
from mlkit.render.jobs import render_job
from mlkit.spec import accelerators as acc
from mlkit.spec.loader import load, loads
from tests import template_nodes
from tests.conftest import EXAMPLE_NAMES, EXAMPLES

POOL = "mlkit.dev/pool"


def template_for(spec, files: dict[str, str]) -> dict[str, template_nodes.Node]:
    tfvars = json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])
    if spec.cloud == "aws":
        return {
            name: template_nodes.eks_node_group(name, group, spec.project, spec.cluster.kubernetes_version)
            for name, group in tfvars["node_groups"].items()
        }
    gcp = acc.table()["gcp"]
    return {name: template_nodes.gke_node_pool(name, pool, gcp) for name, pool in tfvars["node_pools"].items()}


def pods(files: dict[str, str], spec=None) -> dict[str, dict]:
    """Pod spec of every Deployment rendered under infra/k8s, by `<file>/<name>`, and with `spec` the pod of
    each batch API's Job (rendered at submit time, so not under infra/: `<api>/job`)."""
    out = {}
    for rel, text in files.items():
        if rel.startswith("infra/k8s/") and rel.endswith(".yaml"):
            for doc in yaml.safe_load_all(text):
                if doc and doc.get("kind") == "Deployment":
                    out[f"{rel}/{doc['metadata']['name']}"] = doc["spec"]["template"]["spec"]
    for api in spec.apis if spec is not None else ():
        if api.kind == "batch":
            job = yaml.safe_load(render_job(spec, api, Facts(), f"{api.name}-20261206-110000-abcdef", "s3://out/jobs/x", 4, 2))
            out[f"{api.name}/job"] = job["spec"]["template"]["spec"]
    return out


def unplaceable(spec) -> list[str]:
    """Every Deployment that the autoscaler could not place from zero, with the reasons."""
    files = render(spec)
    nodes = template_for(spec, files)
    problems = []
    for where, pod in pods(files, spec).items():
        pool = (pod.get("nodeSelector") or {}).get(POOL)
        candidates = [nodes[pool]] if pool else list(nodes.values())
        reasons = {node.name: template_nodes.fits(pod, node) for node in candidates}
        if all(reasons.values()):
            problems.append(f"{where}: {reasons}")
    return problems


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_api_fits_its_pool_at_zero(name):
    spec = load(EXAMPLES / name / "mlkit.yaml")
    if spec.cluster.existing is not None:
        pytest.skip("a cluster someone else runs: its pools are not mlkit's")
    if spec.cloud == "aws":
        # Every AWS example's pools, as managed node groups under the cluster autoscaler, whichever mode it
        # names; Karpenter's own check (test_scale_from_zero_karpenter.py) takes the same examples in its mode.
        spec.cluster.node_provisioning = "node-groups"
    assert unplaceable(spec) == []


def test_the_neuron_example_api_asks_for_what_only_the_tags_offer():
    # The case the autoscaler's instance table cannot answer: Neuron cores come from the node group's tags alone.
    spec = load(EXAMPLES / "aws-accelerators" / "mlkit.yaml")
    files = render(spec)
    inf = template_for(spec, files)["inf"]
    assert inf.allocatable["aws.amazon.com/neuroncore"] == 2
    pod = pods(files)["infra/k8s/sentiment-neuron/deployment.yaml/sentiment-neuron"]
    assert pod["containers"][0]["resources"]["requests"]["aws.amazon.com/neuroncore"] == 2
    assert template_nodes.fits(pod, inf) == []


def test_nvidia_nodes_carry_the_autoscalers_gpu_label():
    # aws_cloud_provider.go GPULabel: a GPU node whose plugin has not reported yet counts as starting.
    spec = load(EXAMPLES / "aws-accelerators" / "mlkit.yaml")
    gpu = template_for(spec, render(spec))["gpu"]
    assert gpu.labels["k8s.amazonaws.com/accelerator"] == "nvidia-a10g"
    assert "k8s.amazonaws.com/accelerator" not in template_for(spec, render(spec))["inf"].labels


AWS = """project: zero
cloud: aws
region: us-west-2
cluster:
  kubernetes_version: "1.35"
  node_pools:
    - {{name: base, instance_type: m6i.large, min_nodes: 1, max_nodes: 2}}
    - {{name: pool, instance_type: {itype}, min_nodes: 0, max_nodes: 2{extra}}}
apis:
  - {{name: a, predictor: p.py:P, compute: {{cpu: 1, memory: 2Gi{ask}}}, autoscaling: {{min_replicas: 0, max_replicas: 2}}}}
"""


def aws_matrix() -> list[tuple[str, str, str]]:
    cases = []
    table = acc.table()["aws"]
    for family, entry in table["nvidia"].items():
        for size, count in entry["sizes"].items():
            cases.append((f"{family}.{size}", "", f", gpu: {count}"))
    for family, entry in table["neuron"].items():
        for size, devices in entry["sizes"].items():
            cases.append((f"{family}.{size}", "", f", neuron_cores: {devices * entry['cores_per_device']}"))
    cases += [
        ("m6i.xlarge", "", ""),
        ("m7g.large", ", spot: true", ""),
        ("g5.xlarge", ", spot: true, labels: {team: vision}, taints: [{key: dedicated, value: vision, effect: NoSchedule}]", ", gpu: 1"),
        ("inf2.xlarge", ", taints: [{key: dedicated, effect: NoSchedule}]", ", neuron_cores: 1"),
    ]
    return cases


@pytest.mark.parametrize(("itype", "extra", "ask"), aws_matrix())
def test_aws_pools_at_zero_take_the_api_placed_on_them(itype, extra, ask):
    spec = loads(AWS.format(itype=itype, extra=extra, ask=ask))
    assert unplaceable(spec) == []


GCP = """project: zero
cloud: gcp
region: us-central1
gcp_project: zero-proj
cluster:
  kubernetes_version: "1.35"
  node_pools:
    - {{name: base, instance_type: n2-standard-4, min_nodes: 1, max_nodes: 2}}
    - {{name: pool, {pool}, min_nodes: 0}}
apis:
  - {{name: a, predictor: p.py:P, compute: {{cpu: 1, memory: 2Gi{ask}}}, autoscaling: {{min_replicas: 0, max_replicas: 2}}}}
"""


def gcp_matrix() -> list[tuple[str, str]]:
    table = acc.table()["gcp"]
    cases = [(f"instance_type: {mt}, max_nodes: 2", f", gpu: {e['count']}") for mt, e in table["gpu_machines"].items()]
    for version, entry in table["tpu"].items():
        for topology in entry["topologies"][:4]:
            s = acc.tpu_slice(version, topology)
            cases.append((f"tpu: {{version: {version}, topology: {topology}}}, zones: [us-central1-a], max_nodes: {s.nodes}", f", tpu_chips: {s.chips_per_vm}"))
    cases += [
        ("instance_type: n1-standard-4, gpu: {type: nvidia-tesla-t4, count: 1}, max_nodes: 2", ", gpu: 1"),
        ("instance_type: g2-standard-8, spot: true, max_nodes: 2, labels: {team: vision}, taints: [{key: ded, value: v, effect: NoSchedule}]", ", gpu: 1"),
        ("instance_type: e2-standard-4, max_nodes: 2", ""),
    ]
    return cases


@pytest.mark.parametrize(("pool", "ask"), gcp_matrix())
def test_gke_pools_at_zero_take_the_api_placed_on_them(pool, ask):
    spec = loads(GCP.format(pool=pool, ask=ask))
    assert unplaceable(spec) == []


def test_the_check_sees_a_pod_the_template_cannot_take():
    # The check itself: without the node group's resource tags, the Neuron API has no node at zero.
    spec = load(EXAMPLES / "aws-accelerators" / "mlkit.yaml")
    files = render(spec)
    tfvars = json.loads(files["infra/terraform/cluster/mlkit.auto.tfvars.json"])
    group = {**tfvars["node_groups"]["inf"], "autoscaler_tags": {}}
    bare = template_nodes.eks_node_group("inf", group, spec.project, "1.35")
    pod = pods(files)["infra/k8s/sentiment-neuron/deployment.yaml/sentiment-neuron"]
    assert template_nodes.fits(pod, bare) == ["aws.amazon.com/neuroncore: asks 2, node offers 0"]
    untolerated = {**pod, "tolerations": []}
    assert any("aws.amazon.com/neuron" in p for p in template_nodes.fits(untolerated, template_for(spec, files)["inf"]))
