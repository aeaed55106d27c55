"""Scale from zero under Karpenter: for every API of every AWS example (rendered with
`node_provisioning: karpenter`, as a new project is) and a matrix of pools, a node that the API's
NodePool may launch can hold one replica.

Karpenter needs no node-template tags for this: it simulates a node of each instance type its
NodePool allows, with the labels of the NodePool template and requirements, the type's own labels,
the NodePool's taints, and the type's allocatable resources (accelerators included), and launches one
only if the pending pod fits. The check does the same from Karpenter's instance-type facts
(tests/terraform/data/karpenter/instance-types.json, with its source): node selector and required
node affinity, taints tolerated, and the pod's requests (containers, the largest init container,
sidecars) within allocatable. DaemonSet overhead is not simulated; the margins are listed by the
check's failure message when it bites. Self-contained for now; issue 23's template-node helper
will take it over.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from mlkit.render.facts import Facts
from mlkit.render.infra import render
from mlkit.render.jobs import render_job
from mlkit.spec.loader import load, loads
from tests.conftest import EXAMPLE_NAMES, EXAMPLES, cloud_of

FACTS = json.loads((Path(__file__).resolve().parents[1] / "terraform" / "data" / "karpenter" / "instance-types.json").read_text())
TYPES = FACTS["instance_types"]
AWS_EXAMPLES = [name for name in EXAMPLE_NAMES if cloud_of(name) == "aws"]
CHECKED = ("cpu", "memory", "nvidia.com/gpu", "aws.amazon.com/neuron", "aws.amazon.com/neuroncore")
UNITS = {"": 1, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}

MATRIX = """\
project: acme
cloud: aws
region: us-west-2
cluster:
  node_provisioning: karpenter
  node_pools:
    - {{name: cpu, instance_type: m6i.large, max_nodes: 4}}
    - {{name: arm, instance_type: m7g.xlarge, max_nodes: 2}}
    - {{name: {gpu_pool}, instance_type: {gpu_type}, max_nodes: 2, spot: true}}
    - {{name: {neuron_pool}, instance_type: {neuron_type}, max_nodes: 2}}
apis:
  - {{name: small, predictor: p.py:P, compute: {{cpu: 500m, memory: 512Mi}}}}
  - {{name: arm, predictor: p.py:P, node_pool: arm, compute: {{cpu: 1, memory: 2Gi}}}}
  - {{name: gpu, predictor: p.py:P, compute: {{cpu: 2, memory: 8Gi, gpu: {gpus}}}}}
  - {{name: neuron, predictor: p.py:P, compute: {{cpu: 2, memory: 8Gi, neuron_cores: {cores}}}}}
"""
MATRIX_CASES = {
    "g5.xlarge+inf2.xlarge": dict(gpu_pool="gpu", gpu_type="g5.xlarge", gpus=1, neuron_pool="inf", neuron_type="inf2.xlarge", cores=2),
    "g6e.12xlarge+inf2.24xlarge": dict(gpu_pool="gpu", gpu_type="g6e.12xlarge", gpus=4, neuron_pool="inf", neuron_type="inf2.24xlarge", cores=12),
    "g4dn.xlarge+trn1.2xlarge": dict(gpu_pool="gpu", gpu_type="g4dn.xlarge", gpus=1, neuron_pool="trn", neuron_type="trn1.2xlarge", cores=2),
}


def quantity(value) -> float:
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    assert match and match.group(2) in UNITS, value
    return float(match.group(1)) * UNITS[match.group(2)]


def pod_requests(pod: dict) -> dict[str, float]:
    """What the scheduler reserves for a pod: its containers and sidecars, or its largest init container if larger."""
    def requests(c: dict) -> dict[str, float]:
        return {k: quantity(v) for k, v in c.get("resources", {}).get("requests", {}).items()}

    total: dict[str, float] = {}
    for c in pod["containers"] + [c for c in pod.get("initContainers", []) if c.get("restartPolicy") == "Always"]:
        for k, v in requests(c).items():
            total[k] = total.get(k, 0) + v
    for c in pod.get("initContainers", []):
        if c.get("restartPolicy") != "Always":
            for k, v in requests(c).items():
                total[k] = max(total.get(k, 0), v)
    return total


def template_nodes(node_pool: dict) -> list[dict]:
    """The nodes Karpenter would simulate for a NodePool: one per instance type it allows."""
    spec = node_pool["spec"]["template"]
    requirements = {r["key"]: r["values"] for r in spec["spec"]["requirements"] if r["operator"] == "In"}
    nodes = []
    for itype in requirements["node.kubernetes.io/instance-type"]:
        assert itype in TYPES, f"{itype}: no Karpenter facts for it in {FACTS['source']['path']}; add its family"
        facts = TYPES[itype]
        labels = {k: v[0] for k, v in requirements.items() if len(v) == 1} | facts["labels"] | spec["metadata"]["labels"]
        labels["node.kubernetes.io/instance-type"] = itype
        nodes.append({"name": itype, "labels": labels, "taints": spec["spec"].get("taints", []), "allocatable": facts["allocatable"]})
    return nodes


def selects(pod: dict, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in pod.get("nodeSelector", {}).items()):
        return False
    terms = pod.get("affinity", {}).get("nodeAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", {}).get("nodeSelectorTerms")
    if not terms:
        return True

    def matches(e: dict) -> bool:
        op, value = e["operator"], labels.get(e["key"])
        return {"In": value in e.get("values", []), "NotIn": value not in e.get("values", []), "Exists": value is not None,
                "DoesNotExist": value is None}[op]

    return any(all(matches(e) for e in term.get("matchExpressions", [])) for term in terms)


def tolerates(pod: dict, taint: dict) -> bool:
    for t in pod.get("tolerations", []):
        if t.get("effect") not in (None, taint["effect"]) or t.get("key") not in (None, taint["key"]):
            continue
        if t.get("operator", "Equal") == "Exists" or t.get("value") == taint.get("value"):
            return True
    return False


def misfit(pod: dict, node: dict) -> str | None:
    """Why one replica of the pod cannot run on the node, or None."""
    if not selects(pod, node["labels"]):
        return "its node selector or affinity does not match the node's labels"
    untolerated = [t["key"] for t in node["taints"] if t["effect"] in ("NoSchedule", "NoExecute") and not tolerates(pod, t)]
    if untolerated:
        return f"does not tolerate {untolerated}"
    need = pod_requests(pod)
    short = [f"{k} {need[k]:g} > {node['allocatable'].get(k, 0)}" for k in CHECKED if need.get(k, 0) > quantity(node["allocatable"].get(k, 0))]
    return f"asks more than it has: {', '.join(short)}" if short else None


def objects(files: dict[str, str]) -> tuple[dict[str, dict], dict[str, dict]]:
    pools, pods = {}, {}
    for rel, text in sorted(files.items()):
        if not rel.startswith("infra/k8s/"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc and doc["kind"] == "NodePool":
                pools[doc["metadata"]["name"]] = doc
            elif doc and doc["kind"] == "Deployment" and not rel.startswith("infra/k8s/_shared/"):
                pods[doc["metadata"]["name"]] = doc["spec"]["template"]["spec"]
    return pools, pods


def placements(files: dict[str, str], spec=None) -> dict[str, dict[str, str | None]]:
    """API Deployment (and with `spec`, each batch API's Job) -> NodePool/instance type -> why it does not fit
    (None: it fits)."""
    pools, pods = objects(files)
    for api in spec.apis if spec is not None else ():
        if api.kind == "batch":  # its pods come with each job, rendered at submit time
            job = yaml.safe_load(render_job(spec, api, Facts(), f"{api.name}-20261206-110000-abcdef", "s3://out/jobs/x", 4, 2))
            pods[f"{api.name}/job"] = job["spec"]["template"]["spec"]
    assert pools and pods
    return {
        name: {f"{pool}/{node['name']}": misfit(pod, node) for pool, np in pools.items() for node in template_nodes(np)}
        for name, pod in pods.items()
    }


def assert_every_api_fits(files: dict[str, str], spec=None) -> None:
    for deployment, options in placements(files, spec).items():
        assert any(why is None for why in options.values()), f"{deployment} gets no node from zero: {options}"


def karpenter_spec(example: str):
    spec = load(EXAMPLES / example / "mlkit.yaml")
    spec.cluster.node_provisioning = "karpenter"
    return spec


def karpenter_files(example: str) -> dict[str, str]:
    return render(karpenter_spec(example))


@pytest.mark.parametrize("example", AWS_EXAMPLES)
def test_every_api_of_every_aws_example_gets_a_node_from_zero(example):
    spec = karpenter_spec(example)
    assert_every_api_fits(render(spec), spec)


def test_gpu_and_neuron_apis_land_on_their_own_pool():
    fits = placements(karpenter_files("aws-accelerators"))
    assert [k for k, why in fits["sentiment-gpu"].items() if why is None] == ["gpu/g5.xlarge"]
    assert [k for k, why in fits["sentiment-neuron"].items() if why is None] == ["inf/inf2.xlarge"]
    assert [k for k, why in fits["sentiment"].items() if why is None] == ["cpu/m6i.large"]


@pytest.mark.parametrize("case", sorted(MATRIX_CASES))
def test_a_matrix_of_pools(case):
    assert_every_api_fits(render(loads(MATRIX.format(**MATRIX_CASES[case]))))


def test_the_check_fails_where_a_node_cannot_hold_a_replica():
    files = render(loads(MATRIX.format(**MATRIX_CASES["g5.xlarge+inf2.xlarge"])))
    fits = placements(files)
    assert "selector" in fits["small"]["gpu/g5.xlarge"] and "selector" in fits["gpu"]["cpu/m6i.large"]
    # One more GPU or Neuron core than the instance type has, or a node without the vendor taint's toleration.
    pools, pods = objects(files)
    gpu_pod = pods["gpu"]
    gpu_pod["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = 2
    assert "nvidia.com/gpu 2 > 1" in misfit(gpu_pod, template_nodes(pools["gpu"])[0])
    neuron_pod = pods["neuron"]
    neuron_pod["containers"][0]["resources"]["requests"]["aws.amazon.com/neuroncore"] = 3
    assert "aws.amazon.com/neuroncore 3 > 2" in misfit(neuron_pod, template_nodes(pools["inf"])[0])
    neuron_pod["containers"][0]["resources"]["requests"]["aws.amazon.com/neuroncore"] = 2
    neuron_pod["tolerations"] = []
    assert "aws.amazon.com/neuron" in misfit(neuron_pod, template_nodes(pools["inf"])[0])
    neuron_pod["containers"][0]["resources"]["requests"]["memory"] = "15Gi"  # inf2.xlarge: 14162Mi allocatable
    neuron_pod["tolerations"] = [{"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"}]
    assert "memory" in misfit(neuron_pod, template_nodes(pools["inf"])[0])


def test_facts_name_their_source():
    assert {"repository", "path", "commit"} <= set(FACTS["source"]) and FACTS["checked"]
    assert TYPES["inf2.xlarge"]["allocatable"]["aws.amazon.com/neuroncore"] == "2" and TYPES["g5.xlarge"]["allocatable"]["nvidia.com/gpu"] == "1"
