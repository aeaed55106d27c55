"""The per-API manifests: real schemas for every object, and placement, security and drain by structure."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from mlkit.render.facts import Facts
from mlkit.render.infra import render
from mlkit.render.k8s import PRESTOP_S, SYSTEM_NAMESPACE
from mlkit.render.wake import INTERCEPTOR_SELECTOR
from mlkit.spec import load, loads
from tests.conftest import EXAMPLE_NAMES, EXAMPLES

SCHEMAS = Path(__file__).resolve().parent / "schemas"
KUBERNETES_VERSION = "1.34.0"  # a current release; the examples ask for 1.31, checked too

CANARY_SPEC = """
project: canary-demo
cloud: aws
region: us-east-1
cluster:
  node_pools: [{name: cpu, instance_type: m6i.large, min_nodes: 1, max_nodes: 3}]
apis:
  - name: sentiment
    predictor: predictor.py:Predictor
    model: s3://models/sentiment/v3/
    expose: public
    api_keys: true
    canary: {weight: 10, model: s3://models/sentiment/v4/, config: {threshold: 0.7}}
"""


# No model to fetch, an internal load balancer and API keys, on GKE.
PLAIN_SPEC = """
project: plain-demo
cloud: gcp
region: us-central1
gcp_project: acme-ml
cluster: {node_pools: [{name: cpu, instance_type: n2-standard-4}]}
apis: [{name: a, predictor: p.py:P, expose: internal, api_keys: true}]
"""


def manifests(files: dict[str, str]) -> list[tuple[str, dict]]:
    out = []
    for rel, text in sorted(files.items()):
        if rel.startswith("infra/k8s/"):
            out += [(rel, doc) for doc in yaml.safe_load_all(text) if doc]
    return out


def example_manifests() -> list[tuple[str, str, dict]]:
    docs = []
    for name in EXAMPLE_NAMES:
        docs += [(name, rel, doc) for rel, doc in manifests(render(load(EXAMPLES / name / "mlkit.yaml")))]
    docs += [("canary", rel, doc) for rel, doc in manifests(render(loads(CANARY_SPEC)))]
    docs += [("plain", rel, doc) for rel, doc in manifests(render(loads(PLAIN_SPEC)))]
    return docs


ALL = example_manifests()
CUSTOM = {"keda.sh/v1alpha1", "gateway.networking.k8s.io/v1", "http.keda.sh/v1beta1"}


def by_kind(docs, kind):
    return [d for _, d in docs if d["kind"] == kind]


@pytest.mark.parametrize("version", ["1.31.0", KUBERNETES_VERSION])
@pytest.mark.parametrize(("example", "rel", "doc"), [d for d in ALL if d[2]["apiVersion"] not in CUSTOM], ids=lambda v: v if isinstance(v, str) else "")
def test_built_in_kinds_pass_strict_schema_validation(example, rel, doc, version):
    kubernetes_validate.validate(doc, version, strict=True)


def test_strict_validation_catches_an_unknown_field():
    """The check above can fail: an unknown field is an error, not silently dropped."""
    doc = copy.deepcopy(next(d for _, _, d in ALL if d["kind"] == "Deployment"))
    doc["spec"]["template"]["spec"]["containers"][0]["gpus"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def keda_check(doc: dict) -> None:
    """Validate against the KEDA CRD models, strictly: a field the models drop is an unknown field."""
    from cloudcoil.models.keda.v1alpha1 import ScaledObject

    parsed = ScaledObject.model_validate(doc)
    assert parsed.model_dump(by_alias=True, exclude_none=True, mode="json") == doc


@pytest.mark.parametrize(("example", "rel", "doc"), [d for d in ALL if d[2]["kind"] == "ScaledObject"], ids=lambda v: v if isinstance(v, str) else "")
def test_scaled_objects_match_the_keda_crd(example, rel, doc):
    keda_check(doc)
    trigger = doc["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus" and "mlkit_requests_in_flight" in trigger["metadata"]["query"]


def test_keda_check_catches_wrong_and_unknown_fields():
    doc = copy.deepcopy(next(d for _, _, d in ALL if d["kind"] == "ScaledObject"))
    doc["spec"]["minReplicaCount"] = "one"
    with pytest.raises(Exception, match="minReplicaCount|min_replica_count"):
        keda_check(doc)
    doc = copy.deepcopy(next(d for _, _, d in ALL if d["kind"] == "ScaledObject"))
    doc["spec"]["maxReplicas"] = 3
    with pytest.raises(AssertionError):
        keda_check(doc)


def strict(schema):
    """What `kubernetes-validate --strict` does to built-in schemas: objects with properties take no others."""
    if isinstance(schema, dict):
        schema = {k: strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(v) for v in schema]
    return schema


def gateway_check(doc: dict) -> None:
    schema = json.loads((SCHEMAS / f"gateway.networking.k8s.io_v1_{doc['kind'].lower()}.json").read_text())
    jsonschema.validate(doc, strict(schema))


@pytest.mark.parametrize(
    ("example", "rel", "doc"), [d for d in ALL if d[2]["apiVersion"] == "gateway.networking.k8s.io/v1"], ids=lambda v: v if isinstance(v, str) else ""
)
def test_gateway_api_objects_match_their_crd(example, rel, doc):
    gateway_check(doc)


def test_gateway_check_catches_an_unknown_field():
    doc = copy.deepcopy(next(d for _, _, d in ALL if d["kind"] == "HTTPRoute"))
    doc["spec"]["rules"][0]["backendRefs"][0]["percent"] = 10
    with pytest.raises(jsonschema.ValidationError):
        gateway_check(doc)


def test_every_api_gets_its_objects_and_every_object_its_namespace():
    for name in EXAMPLE_NAMES:
        spec = load(EXAMPLES / name / "mlkit.yaml")
        files = render(spec)
        for api in spec.apis:
            kinds = {d["kind"] for rel, d in manifests(files) if rel.startswith(f"infra/k8s/{api.name}/")}
            wakes = {"InterceptorRoute"} if api.autoscaling.min_replicas == 0 else set()
            assert kinds == {"ServiceAccount", "ConfigMap", "Deployment", "Service", "ScaledObject", "PodDisruptionBudget", "NetworkPolicy"} | wakes
        for rel, doc in manifests(files):
            if doc["kind"] not in ("Namespace", "GatewayClass"):
                # The one exception: a scale-to-zero API's front Service beside the interceptor (render/wake.py).
                beside_interceptor = doc["kind"] == "Service" and doc["spec"].get("selector") == INTERCEPTOR_SELECTOR
                assert doc["metadata"]["namespace"] == (SYSTEM_NAMESPACE if beside_interceptor else spec.project), rel


def pod(files, api, track_suffix=""):
    deployment = yaml.safe_load(files[f"infra/k8s/{api}/deployment.yaml"].split("\n---\n")[1 if track_suffix else 0])
    return deployment["spec"]["template"]["spec"]


def test_gpu_api_lands_on_its_gpu_pool_with_the_toleration_and_asks_for_gpus():
    files = render(load(EXAMPLES / "aws-accelerators" / "mlkit.yaml"))
    spec = pod(files, "sentiment-gpu")
    assert spec["nodeSelector"] == {"mlkit.dev/pool": "gpu"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    resources = spec["containers"][0]["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == 1 and resources["requests"]["nvidia.com/gpu"] == 1


def test_gke_gpu_api_selects_the_gke_accelerator_label():
    files = render(load(EXAMPLES / "gcp-l4" / "mlkit.yaml"))
    spec = pod(files, "sentiment-l4")
    assert spec["nodeSelector"] == {"mlkit.dev/pool": "l4", "cloud.google.com/gke-accelerator": "nvidia-l4"}


def test_neuron_api_asks_for_neuron_cores_on_its_pool():
    files = render(load(EXAMPLES / "aws-accelerators" / "mlkit.yaml"))
    spec = pod(files, "sentiment-neuron")
    assert spec["nodeSelector"] == {"mlkit.dev/pool": "inf"}
    assert spec["containers"][0]["resources"]["limits"]["aws.amazon.com/neuroncore"] == 2
    assert {"key": "aws.amazon.com/neuron", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]


def test_tpu_api_asks_for_exactly_its_pools_chips_and_selects_the_topology():
    files = render(load(EXAMPLES / "gcp-tpu-v5e" / "mlkit.yaml"))
    spec = pod(files, "sentiment-tpu")
    assert spec["nodeSelector"] == {
        "mlkit.dev/pool": "tpu",
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "2x4",
    }
    resources = spec["containers"][0]["resources"]
    assert resources["requests"]["google.com/tpu"] == resources["limits"]["google.com/tpu"] == 8


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_cpu_apis_never_land_on_accelerator_pools(name):
    spec = load(EXAMPLES / name / "mlkit.yaml")
    files = render(spec)
    accelerated = {p.name for p in spec.cluster.node_pools if p.tpu or p.gpu or (p.instance_type or "").split(".")[0] in ("g5", "inf2", "g2-standard-8")}
    for api in spec.apis:
        if api.compute.gpu or api.compute.neuron_cores or api.compute.tpu_chips:
            continue
        p = pod(files, api.name)
        assert p["nodeSelector"]["mlkit.dev/pool"] not in accelerated
        terms = p["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchExpressions": [{"key": "mlkit.dev/accelerator", "operator": "In", "values": ["none"]}]}]
        assert "tolerations" not in p


@pytest.mark.parametrize(("example", "rel", "doc"), [d for d in ALL if d[2]["kind"] == "Deployment"], ids=lambda v: v if isinstance(v, str) else "")
def test_pods_meet_the_restricted_pod_security_standard(example, rel, doc):
    spec = doc["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"] + spec.get("initContainers", []):
        sc = container["securityContext"]
        assert sc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}, container["name"]


@pytest.mark.parametrize(("example", "rel", "doc"), [d for d in ALL if d[2]["kind"] == "Deployment"], ids=lambda v: v if isinstance(v, str) else "")
def test_grace_period_covers_prestop_and_the_runtimes_drain(example, rel, doc):
    spec = doc["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] == PRESTOP_S
    assert spec["terminationGracePeriodSeconds"] > PRESTOP_S + float(env["MLKIT_DRAIN_TIMEOUT_S"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" and container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    zones = [c for c in spec["topologySpreadConstraints"] if c["topologyKey"] == "topology.kubernetes.io/zone"]
    assert zones and zones[0]["labelSelector"]["matchLabels"] == doc["spec"]["selector"]["matchLabels"]


def test_gke_spot_pods_fit_the_30_second_notice():
    spec = loads(
        """
project: spot-demo
cloud: gcp
region: us-central1
gcp_project: acme-ml
cluster:
  node_pools: [{name: l4, instance_type: g2-standard-8, max_nodes: 2, spot: true}]
apis: [{name: a, predictor: p.py:P, compute: {gpu: 1}}]
"""
    )
    assert pod(render(spec), "a")["terminationGracePeriodSeconds"] <= 25


def test_model_is_fetched_into_a_volume_by_an_init_container():
    files = render(loads(CANARY_SPEC))
    spec = pod(files, "sentiment")
    init = spec["initContainers"][0]
    assert init["command"][:3] == ["aws", "s3", "sync"] and "s3://models/sentiment/v3/" in init["command"]
    assert "s3://models/sentiment/v4/" in pod(files, "sentiment", "canary")["initContainers"][0]["command"]


def test_deploy_facts_fill_image_role_and_uploaded_model():
    spec = load(EXAMPLES / "sentiment" / "mlkit.yaml")
    before = render(spec)
    assert "BUILT-ON-APPLY" in before["infra/k8s/sentiment/deployment.yaml"] and "ACCOUNT-ID" in before["infra/k8s/sentiment/serviceaccount.yaml"]
    facts = Facts(aws_account_id="123456789012", images={"sentiment": "3f2a9c"}, models={"sentiment": "s3://b/sentiment/abc/"})
    after = render(spec, facts)
    p = pod(after, "sentiment")
    assert p["containers"][0]["image"] == "123456789012.dkr.ecr.us-west-2.amazonaws.com/sentiment-demo:sentiment-3f2a9c"
    assert "s3://b/sentiment/abc/" in p["initContainers"][0]["command"]
    sa = yaml.safe_load(after["infra/k8s/sentiment/serviceaccount.yaml"])
    assert sa["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/sentiment-demo-sentiment"}


def test_gke_service_account_is_bound_through_workload_identity():
    files = render(load(EXAMPLES / "gcp-l4" / "mlkit.yaml"))
    sa = yaml.safe_load(files["infra/k8s/sentiment/serviceaccount.yaml"])
    assert sa["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": "l4-demo-serving@my-gcp-project.iam.gserviceaccount.com"}


def test_canary_splits_traffic_by_weight_through_the_gateway():
    files = render(loads(CANARY_SPEC))
    route = yaml.safe_load(files["infra/k8s/sentiment/httproute.yaml"])
    refs = route["spec"]["rules"][0]["backendRefs"]
    assert [(r["name"], r["weight"]) for r in refs] == [("sentiment", 90), ("sentiment-canary", 10)]
    services = list(yaml.safe_load_all(files["infra/k8s/sentiment/service.yaml"]))
    assert [s["spec"]["selector"]["mlkit.dev/track"] for s in services] == ["stable", "canary"]
    assert all(s["spec"]["type"] == "ClusterIP" for s in services)
    configs = yaml.safe_load(files["infra/k8s/sentiment/configmap.yaml"])["data"]
    assert json.loads(configs["canary.json"]) == {"threshold": 0.7}
    assert "infra/k8s/_shared/gateway.yaml" in files


@pytest.mark.parametrize(
    ("cloud", "expose", "annotations"),
    [
        (
            "aws",
            "public",
            {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing", "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip"},
        ),
        (
            "aws",
            "internal",
            {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal", "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip"},
        ),
        ("gcp", "internal", {"networking.gke.io/load-balancer-type": "Internal"}),
        ("gcp", "public", None),
    ],
)
def test_exposure_makes_a_load_balancer_private_by_default(cloud, expose, annotations):
    pool = "m6i.large" if cloud == "aws" else "n2-standard-4"
    region = "us-east-1" if cloud == "aws" else "us-central1\ngcp_project: acme-ml"
    text = (
        f"project: x-demo\ncloud: {cloud}\nregion: {region}\n"
        f"cluster: {{node_pools: [{{name: cpu, instance_type: {pool}}}]}}\napis: [{{name: a, predictor: p.py:P}}]\n"
    )
    private = yaml.safe_load(render(loads(text))["infra/k8s/a/service.yaml"])
    assert private["spec"]["type"] == "ClusterIP"
    files = render(loads(text.replace("predictor: p.py:P", f"predictor: p.py:P, expose: {expose}")))
    service = yaml.safe_load(files["infra/k8s/a/service.yaml"])
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["metadata"].get("annotations") == annotations
    policy = yaml.safe_load(files["infra/k8s/a/networkpolicy.yaml"])
    assert "from" not in policy["spec"]["ingress"][0]


def test_api_keys_mount_the_secret_and_tell_the_runtime():
    files = render(loads(CANARY_SPEC))
    spec = pod(files, "sentiment")
    env = {e["name"]: e["value"] for e in spec["containers"][0]["env"]}
    assert env["MLKIT_API_KEYS_FILE"] == "/etc/mlkit/api-keys/keys"
    assert {"name": "api-keys", "secret": {"secretName": "sentiment-api-keys"}} in spec["volumes"]
