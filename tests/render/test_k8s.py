"""The per-API manifests: real schemas for every object, and placement, security and drain by structure."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from mlkit.render.facts import Facts
from mlkit.render.infra import render
from mlkit.render.runtime_view import PRESTOP_S
from mlkit.render.wake import INTERCEPTOR_SELECTOR
from mlkit.spec.loader import load, loads
from tests.conftest import EXAMPLE_NAMES, EXAMPLES
from tests.kube_expand import expand

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


# Engine APIs on every accelerator family: NVIDIA on EKS and GKE, Neuron (Inferentia2 and Trainium2) on
# EKS, TPU v5e and v6e on GKE; weights from a bucket, a project folder and Hugging Face.
ENGINE_AWS_SPEC = """
project: llm-aws
cloud: aws
region: us-east-1
cluster:
  node_pools:
    - {name: cpu, instance_type: m6i.large}
    - {name: gpu, instance_type: g5.12xlarge, max_nodes: 2}
    - {name: inf, instance_type: inf2.24xlarge, max_nodes: 2}
    - {name: trn, instance_type: trn2.48xlarge, max_nodes: 1}
apis:
  - name: chat
    engine: vllm
    hf_model: meta-llama/Llama-3.1-8B-Instruct
    hf_token_secret: {name: hf-token, key: token}
    compute: {cpu: 8, memory: 96Gi, gpu: 4}
    api_keys: true
    expose: internal
    serving: {max_model_len: 8192, dtype: bfloat16, model_size_gb: 16, shm_size: 8Gi, extra_args: [--max-num-seqs, "128", --enable-prefix-caching]}
  - name: inf
    engine: vllm
    model: s3://acme-models/llama-3.1-8b/
    node_pool: inf
    compute: {cpu: 8, memory: 96Gi, neuron_cores: 8}
    autoscaling: {min_replicas: 1, max_replicas: 4, target_in_flight: 16, target_waiting: 2}
    serving: {max_model_len: 4096}
  - name: trn
    engine: vllm
    model: s3://acme-models/llama-3.1-70b/
    compute: {cpu: 32, memory: 512Gi, neuron_cores: 64}
    serving: {model_size_gb: 140, quantization: fp8}
"""

ENGINE_GCP_SPEC = """
project: llm-gcp
cloud: gcp
region: us-central1
gcp_project: acme-ml
cluster:
  zone: us-central1-a
  node_pools:
    - {name: cpu, instance_type: n2-standard-4}
    - {name: l4, instance_type: g2-standard-24, max_nodes: 2}
    - {name: v5e, tpu: {version: v5e, topology: 2x4}, max_nodes: 2}
    - {name: v6e, tpu: {version: v6e, topology: 2x2}, max_nodes: 2}
apis:
  - {name: chat, engine: vllm, model: gs://acme-models/gemma/, compute: {memory: 48Gi, gpu: 2}, api_keys: true}
  - {name: tpu, engine: vllm, hf_model: google/gemma-3-12b-it, node_pool: v5e, compute: {memory: 96Gi, tpu_chips: 8}}
  - {name: trillium, engine: vllm, model: gs://acme-models/gemma/, node_pool: v6e, compute: {memory: 96Gi, tpu_chips: 4}, serving: {max_model_len: 4096}}
  - {name: sentiment, predictor: predictor.py:Predictor}
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
ENGINE_FILES = {"aws": render(loads(ENGINE_AWS_SPEC)), "gcp": render(loads(ENGINE_GCP_SPEC))}
ENGINE = [(f"engine-{cloud}", rel, doc) for cloud, files in ENGINE_FILES.items() for rel, doc in manifests(files)]
ENGINE_APIS = {"aws": ("chat", "inf", "trn"), "gcp": ("chat", "tpu", "trillium")}
CUSTOM = {"keda.sh/v1alpha1", "gateway.networking.k8s.io/v1", "http.keda.sh/v1beta1", "karpenter.sh/v1", "karpenter.k8s.aws/v1"}  # Karpenter: test_nodepools.py


def by_kind(docs, kind):
    return [d for _, d in docs if d["kind"] == kind]


BUILT_IN = [d for d in ALL + ENGINE if d[2]["apiVersion"] not in CUSTOM]


@pytest.mark.parametrize("version", ["1.31.0", KUBERNETES_VERSION])
@pytest.mark.parametrize(("example", "rel", "doc"), BUILT_IN, ids=lambda v: v if isinstance(v, str) else "")
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


@pytest.mark.parametrize(("example", "rel", "doc"), [d for d in ALL + ENGINE if d[2]["kind"] == "ScaledObject"], ids=lambda v: v if isinstance(v, str) else "")
def test_scaled_objects_match_the_keda_crd(example, rel, doc):
    keda_check(doc)
    trigger = doc["spec"]["triggers"][0]
    if doc["metadata"]["labels"].get("mlkit.dev/track") == "worker":  # an async API's workers: tests/render/test_asyncapi.py
        assert trigger["type"] == "aws-sqs-queue"
        return
    engine = trigger.get("name") == "running"  # the engine's triggers are named; the runtime's one is not
    assert trigger["type"] == "prometheus" and ("vllm:num_requests_running" if engine else "mlkit_requests_in_flight") in trigger["metadata"]["query"]


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
            # A ConfigMap for the predictor's config, or the S3 model fetcher's (an engine takes no predictor config,
            # and one that loads a Hugging Face id fetches nothing).
            fetches = spec.cloud == "aws" and api.model_access == "copy" and api.model is not None
            config = {"ConfigMap"} if not api.engine or fetches else set()
            mounts = {"PersistentVolume", "PersistentVolumeClaim"} if spec.cloud == "aws" and api.model_access == "mount" else set()
            if api.kind == "async":  # a front and workers, the workers scaled on the queue through KEDA's pod identity
                assert kinds == {"ServiceAccount", "Deployment", "Service", "ScaledObject", "TriggerAuthentication", "PodDisruptionBudget",
                                 "NetworkPolicy", "ConfigMap"}
                continue
            if api.kind != "realtime":  # jobs bring their pods: between them only the identity and the settings stand
                assert kinds == {"ServiceAccount", "ConfigMap"} | mounts, (name, api.name, kinds)
                continue
            assert kinds == {"ServiceAccount", "Deployment", "Service", "ScaledObject", "PodDisruptionBudget", "NetworkPolicy"} | config | wakes | mounts
        for rel, doc in manifests(files):
            if doc["kind"] not in ("Namespace", "GatewayClass", "PersistentVolume", "EC2NodeClass", "NodePool"):
                # Nothing goes to the add-on's namespace: no Service there selects the interceptor (render/wake.py).
                assert doc["metadata"]["namespace"] == spec.project, rel
                assert doc["kind"] != "Service" or doc["spec"].get("selector") != INTERCEPTOR_SELECTOR, rel


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
    # Anything not a known CPU family counts as accelerated, read from the type's name, not from the kit's
    # table under test (a list of accelerated prefixes missed the llm example's g6 pool).
    cpu_family = re.compile(r"^([mcrt]\d[a-z]*\.|(n1|n2|n2d|e2|c3|c4)-)")
    accelerated = {p.name for p in spec.cluster.node_pools if p.tpu or p.gpu or not cpu_family.match(p.instance_type or "")}
    assert all(cpu_family.match(p.instance_type or "") for p in spec.cluster.node_pools if p.name == "cpu"), "a CPU pool the rule calls accelerated"
    if name == "llm":
        assert "gpu" in accelerated  # the g6.xlarge pool
    for api in spec.apis:
        if api.compute.gpu or api.compute.neuron_cores or api.compute.tpu_chips or api.kind != "realtime":  # batch and task APIs: pods come with jobs
            continue
        p = pod(files, api.name)
        assert p["nodeSelector"]["mlkit.dev/pool"] not in accelerated
        terms = p["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchExpressions": [{"key": "mlkit.dev/accelerator", "operator": "In", "values": ["none"]}]}]
        assert "tolerations" not in p


@pytest.mark.parametrize(("example", "rel", "doc"), [d for d in ALL + ENGINE if d[2]["kind"] == "Deployment"], ids=lambda v: v if isinstance(v, str) else "")
def test_pods_meet_the_restricted_pod_security_standard(example, rel, doc):
    spec = doc["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"] + spec.get("initContainers", []):
        sc = dict(container["securityContext"])
        # Only the gcloud fetch runs as its image's own user (1000: gcloud needs a passwd entry for its uid,
        # tests/deploy/test_model_fetch.py); never root, which the restricted standard forbids.
        own_user = {k: sc.pop(k) for k in ("runAsUser", "runAsGroup") if k in sc}
        gcloud_fetch = container["name"] == "fetch-model" and container["command"][0] == "gcloud"
        assert not own_user or (gcloud_fetch and own_user == {"runAsUser": 1000, "runAsGroup": 1000}), container["name"]
        assert sc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}, container["name"]


# The APIs' Deployments (the cold-start fallback beside them holds no requests: tests/render/test_wake.py).
API_DEPLOYMENTS = [d for d in ALL + ENGINE if d[2]["kind"] == "Deployment" and "/_shared/" not in d[1]]


@pytest.mark.parametrize(("example", "rel", "doc"), API_DEPLOYMENTS, ids=lambda v: v if isinstance(v, str) else "")
def test_grace_period_covers_prestop_and_the_runtimes_drain(example, rel, doc):
    spec = doc["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] == PRESTOP_S
    if "args" in container:  # an engine API (an example may hold one): the engine's own health route
        assert spec["terminationGracePeriodSeconds"] > PRESTOP_S and container["readinessProbe"]["httpGet"]["path"] == "/health"
    else:
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


def test_the_canary_gateways_load_balancer_is_public_as_its_apis_service_would_be():
    # On EKS the load balancer controller's webhook takes every new LoadBalancer Service and makes its NLB
    # internal unless annotated; Envoy Gateway copies the Gateway's infrastructure annotations onto its
    # proxy Service, the load balancer.
    gateway = next(d for d in yaml.safe_load_all(render(loads(CANARY_SPEC))["infra/k8s/_shared/gateway.yaml"]) if d["kind"] == "Gateway")
    plain = yaml.safe_load(render(loads(CANARY_SPEC.replace("    canary: {weight: 10, model: s3://models/sentiment/v4/, config: {threshold: 0.7}}\n", "")))[
        "infra/k8s/sentiment/service.yaml"])
    assert gateway["spec"]["infrastructure"]["annotations"] == plain["metadata"]["annotations"]
    assert gateway["spec"]["infrastructure"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-scheme"] == "internet-facing"
    jsonschema.validate(gateway, json.loads((SCHEMAS / "gateway.networking.k8s.io_v1_gateway.json").read_text()))


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


def engine_pod(cloud: str, api: str) -> dict:
    return pod(ENGINE_FILES[cloud], api)


def flags(container: dict) -> dict[str, str | None]:
    """The engine's flags as a mapping (a flag without a value maps to None)."""
    args, out, i = container["args"], {}, 0
    while i < len(args):
        value = args[i + 1] if i + 1 < len(args) and not args[i + 1].startswith("--") else None
        out[args[i]] = value
        i += 2 if value is not None else 1
    return out


def test_engine_apis_get_the_objects_of_an_api_but_no_predictor_config():
    for cloud, apis in ENGINE_APIS.items():
        for api in apis:
            docs = [d for rel, d in manifests(ENGINE_FILES[cloud]) if rel.startswith(f"infra/k8s/{api}/")]
            kinds = {d["kind"] for d in docs}
            # The one ConfigMap an engine API has is aws-cli's settings for copying weights from S3.
            fetcher = {"ConfigMap"} if cloud == "aws" and api != "chat" else set()
            assert kinds == {"ServiceAccount", "Deployment", "Service", "ScaledObject", "PodDisruptionBudget", "NetworkPolicy"} | fetcher, (cloud, api)
            assert [d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"] == [f"{api}-model-fetch"] * len(fetcher)


@pytest.mark.parametrize(("cloud", "api", "image", "resource", "amount", "toleration", "selector"), [
    ("aws", "chat", "vllm/vllm-openai:v0.31.0-cu129", "nvidia.com/gpu", 4, "nvidia.com/gpu", {"mlkit.dev/pool": "gpu"}),
    ("aws", "inf", "public.ecr.aws/neuron/pytorch-inference-vllm-neuronx:0.16.0-neuronx-py312-sdk2.31.1-ubuntu24.04", "aws.amazon.com/neuroncore", 8,
     "aws.amazon.com/neuron", {"mlkit.dev/pool": "inf"}),
    ("aws", "trn", "public.ecr.aws/neuron/pytorch-inference-vllm-neuronx:0.29.0.1.2.0-neuronx-py314-sdk2.33.0-ubuntu26.04", "aws.amazon.com/neuroncore", 64,
     "aws.amazon.com/neuron", {"mlkit.dev/pool": "trn"}),
    ("gcp", "chat", "vllm/vllm-openai:v0.31.0-cu129", "nvidia.com/gpu", 2, "nvidia.com/gpu",
     {"mlkit.dev/pool": "l4", "cloud.google.com/gke-accelerator": "nvidia-l4"}),
    ("gcp", "tpu", "vllm/vllm-tpu:v0.29.0", "google.com/tpu", 8, "google.com/tpu",
     {"mlkit.dev/pool": "v5e", "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice", "cloud.google.com/gke-tpu-topology": "2x4"}),
    ("gcp", "trillium", "vllm/vllm-tpu:v0.29.0", "google.com/tpu", 4, "google.com/tpu",
     {"mlkit.dev/pool": "v6e", "cloud.google.com/gke-tpu-accelerator": "tpu-v6e-slice", "cloud.google.com/gke-tpu-topology": "2x2"}),
])
def test_each_accelerator_gets_its_engine_image_resources_placement_and_tensor_parallelism(cloud, api, image, resource, amount, toleration, selector):
    spec = engine_pod(cloud, api)
    container = spec["containers"][0]
    assert container["image"] == image
    assert container["resources"]["requests"][resource] == container["resources"]["limits"][resource] == amount
    assert {"key": toleration, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["nodeSelector"] == selector
    assert flags(container)["--tensor-parallel-size"] == str(amount)
    assert flags(container)["--served-model-name"] == api and flags(container)["--port"] == "8080"
    shm = next(v for v in spec["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["medium"] == "Memory"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]


def test_engine_probes_ask_its_health_route_with_a_startup_budget_sized_from_the_model():
    small = engine_pod("aws", "chat")["containers"][0]
    big = engine_pod("aws", "trn")["containers"][0]
    for c in (small, big):
        assert c["readinessProbe"]["httpGet"]["path"] == c["livenessProbe"]["httpGet"]["path"] == c["startupProbe"]["httpGet"]["path"] == "/health"
    budget = lambda c: c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]  # noqa: E731
    assert budget(small) >= 300 + 16 * 20 and budget(big) >= 1800 + 140 * 20 > budget(small)


def test_engine_probes_outwait_a_saturated_engines_late_health_answer():
    # The kubelet's default timeout is 1 s; a busy vLLM answers /health later, and three missed liveness
    # checks killed it with every generation in flight (llm-d-benchmark uses 15 s).
    for cloud, apis in ENGINE_APIS.items():
        for api in apis:
            container = engine_pod(cloud, api)["containers"][0]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert container[probe].get("timeoutSeconds", 1) >= 10, (cloud, api, probe)


def test_neuron_engines_compile_and_save_into_the_tmp_volume_with_the_flags_their_image_needs():
    # vllm-neuron's loader compiles into <model>/neuron-compiled-artifacts (the model volume is read-only) or
    # local-models/ under the working directory (the root filesystem is read-only) unless told otherwise.
    container = engine_pod("aws", "inf")["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["NEURON_COMPILED_ARTIFACTS"].startswith("/tmp/") and container["workingDir"] == "/tmp"
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"] and container["securityContext"]["readOnlyRootFilesystem"]
    f = flags(container)
    # block_size is max_model_len without prefix caching, so one block per sequence: 1 x 32.
    assert (f["--max-model-len"], f["--max-num-seqs"], f["--num-gpu-blocks-override"]) == ("4096", "32", "32")
    assert "--no-enable-chunked-prefill" in f
    # Trainium2 runs the newer image, whose plugin lists none of these known issues (it still works in /tmp);
    # NVIDIA and TPU neither.
    assert "--num-gpu-blocks-override" not in flags(engine_pod("aws", "trn")["containers"][0])
    for cloud, api in (("aws", "chat"), ("gcp", "tpu")):
        other = engine_pod(cloud, api)["containers"][0]
        assert "--num-gpu-blocks-override" not in flags(other) and "workingDir" not in other


def test_neuron_blocks_follow_the_users_own_sequences_and_block_size():
    from mlkit.render.engine_view import neuron_args

    assert neuron_args(4096, []) == ["--max-num-seqs", "32", "--num-gpu-blocks-override", "32", "--no-enable-chunked-prefill"]
    assert neuron_args(4096, ["--max-num-seqs", "8", "--enable-prefix-caching", "--block-size=32"]) == [
        "--num-gpu-blocks-override", str(128 * 8), "--no-enable-chunked-prefill",
    ]
    assert neuron_args(1000, ["--block-size", "32", "--num-gpu-blocks-override", "5", "--enable-chunked-prefill"]) == ["--max-num-seqs", "32"]


def test_neuron_engine_apis_must_say_what_length_to_compile_for():
    from mlkit.errors import SpecError

    text = ENGINE_AWS_SPEC.replace("    serving: {max_model_len: 4096}\n", "")
    with pytest.raises(SpecError) as caught:
        loads(text)
    assert len(caught.value.problems) == 1 and "apis[1].serving.max_model_len" in caught.value.problems[0]
    assert "inferentia2" in caught.value.problems[0] and "max_model_len: 4096" in caught.value.problems[0]


def test_engine_weights_come_from_the_bucket_through_the_model_init_container():
    spec = engine_pod("aws", "inf")
    init = spec["initContainers"][0]
    assert init["name"] == "fetch-model" and init["command"][:3] == ["aws", "s3", "sync"] and "s3://acme-models/llama-3.1-8b/" in init["command"]
    assert flags(spec["containers"][0])["--model"] == "/models"
    assert {"name": "model", "mountPath": "/models", "readOnly": True} in spec["containers"][0]["volumeMounts"]
    gke = engine_pod("gcp", "chat")
    assert gke["initContainers"][0]["command"][:3] == ["gcloud", "storage", "rsync"] and flags(gke["containers"][0])["--model"] == "/models"


def test_hugging_face_weights_download_into_the_model_volume_with_the_users_token():
    spec = engine_pod("aws", "chat")
    container = spec["containers"][0]
    assert "initContainers" not in spec
    assert flags(container)["--model"] == "meta-llama/Llama-3.1-8B-Instruct" and flags(container)["--download-dir"] == "/models/hf"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["HF_HOME"] == "/models/hf" and env["HF_TOKEN_PATH"] == "/etc/mlkit/hf-token/token"  # a file, not an env value
    assert {"name": "hf-token", "secret": {"secretName": "hf-token", "items": [{"key": "token", "path": "token"}]}} in spec["volumes"]
    assert {"name": "hf-token", "mountPath": "/etc/mlkit/hf-token", "readOnly": True} in container["volumeMounts"]
    assert {"name": "model", "mountPath": "/models", "readOnly": False} in container["volumeMounts"]


def test_serving_options_become_engine_flags_after_mlkits_own():
    container = engine_pod("aws", "chat")["containers"][0]
    f = flags(container)
    assert (f["--max-model-len"], f["--dtype"], f["--max-num-seqs"]) == ("8192", "bfloat16", "128") and "--enable-prefix-caching" in f
    assert container["args"][-3:] == ["--max-num-seqs", "128", "--enable-prefix-caching"]
    assert flags(engine_pod("aws", "trn")["containers"][0])["--quantization"] == "fp8"
    assert "--dtype" not in flags(engine_pod("aws", "inf")["containers"][0])  # auto: the model's own
    shm = next(v for v in engine_pod("aws", "chat")["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["sizeLimit"] == "8Gi"


def test_engine_api_keys_come_from_the_apis_secret_through_the_engines_key_variable(tmp_path):
    container = engine_pod("aws", "chat")["containers"][0]
    command = container["command"]
    assert command[:2] == ["/bin/sh", "-c"] and command[4:] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    assert {"name": "api-keys", "secret": {"secretName": "chat-api-keys"}} in engine_pod("aws", "chat")["volumes"]
    assert "api-keys" not in {v["name"] for v in engine_pod("aws", "inf")["volumes"]}
    assert engine_pod("aws", "inf")["containers"][0]["command"] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    # The script as the pod runs it, against a stand-in engine that prints its key and arguments.
    import os
    import subprocess

    keys = tmp_path / "keys"
    script = expand(command[2], {}).replace("/etc/mlkit/api-keys/keys", str(keys))  # as the kubelet hands it to the shell
    fake = ["sh", "-c", 'echo "$VLLM_API_KEY|$*"', "engine"]
    keys.write_text("mlk_first\nmlk_second\n")
    run = subprocess.run(["/bin/sh", "-c", script, "engine", *fake, "--model", "x; rm -rf /"], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert run.returncode == 0 and run.stdout == "mlk_first|--model x; rm -rf /\n"
    keys.write_text("\n")
    run = subprocess.run(["/bin/sh", "-c", script, "engine", *fake], capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert run.returncode == 1 and run.stdout == "" and "no key" in run.stderr  # never serves without a key


def test_engine_scaled_object_reads_the_engines_running_and_waiting_requests():
    aws = yaml.safe_load(ENGINE_FILES["aws"]["infra/k8s/inf/scaledobject.yaml"])
    triggers = {t["name"]: t["metadata"] for t in aws["spec"]["triggers"]}
    selector = 'namespace="llm-aws",mlkit_dev_api="inf",mlkit_dev_track="stable"'
    assert triggers["running"]["query"] == f"sum(vllm:num_requests_running{{{selector}}})" and triggers["running"]["threshold"] == "16"
    assert triggers["waiting"]["query"] == f"sum(vllm:num_requests_waiting{{{selector}}})" and triggers["waiting"]["threshold"] == "2"
    defaults = {t["name"]: t["metadata"]["threshold"] for t in yaml.safe_load(ENGINE_FILES["aws"]["infra/k8s/chat/scaledobject.yaml"])["spec"]["triggers"]}
    assert defaults == {"running": "32", "waiting": "4"}
    text = ENGINE_FILES["aws"]["infra/k8s/inf/scaledobject.yaml"]
    assert f"#   waiting: sum(vllm:num_requests_waiting{{{selector}}})" in text  # the query, documented where it runs


def test_engine_pods_are_scraped_and_keep_the_apis_identity_and_policies():
    files = ENGINE_FILES["gcp"]
    deployment = yaml.safe_load(files["infra/k8s/tpu/deployment.yaml"])
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": "8080", "prometheus.io/path": "/metrics"}
    sa = yaml.safe_load(files["infra/k8s/tpu/serviceaccount.yaml"])
    assert sa["metadata"]["annotations"] == {"iam.gke.io/gcp-service-account": "llm-gcp-serving@acme-ml.iam.gserviceaccount.com"}
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "tpu"
    pdb = yaml.safe_load(files["infra/k8s/tpu/poddisruptionbudget.yaml"])
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    policy = yaml.safe_load(files["infra/k8s/tpu/networkpolicy.yaml"])
    assert policy["spec"]["podSelector"]["matchLabels"] == {"mlkit.dev/api": "tpu"}
    service = yaml.safe_load(ENGINE_FILES["aws"]["infra/k8s/chat/service.yaml"])
    assert service["spec"]["type"] == "LoadBalancer" and service["spec"]["ports"][0]["targetPort"] == "http"


def test_a_predictor_api_beside_engine_apis_renders_as_before():
    alone = render(loads(ENGINE_GCP_SPEC.split("apis:")[0] + "apis:\n  - {name: sentiment, predictor: predictor.py:Predictor}\n"))
    for name in ("deployment", "configmap", "scaledobject", "service"):
        rel = f"infra/k8s/sentiment/{name}.yaml"
        assert ENGINE_FILES["gcp"][rel] == alone[rel]


def test_container_commands_args_and_env_reach_the_process_as_written_whatever_they_hold():
    """Kubernetes expands $(VAR) in command, args and env values: `$(HOME)` in an extra_args value or a model
    URI was written verbatim and reached the process as another string. Rendered values expand to the spec's."""
    spec = ENGINE_AWS_SPEC.replace(
        "extra_args: [--max-num-seqs, \"128\", --enable-prefix-caching]",
        'extra_args: [--max-num-seqs, "128", --chat-template, "$(HOME)/t.jinja", --override-generation-config, "{\\"x\\": \\"$$(id)\\"}"]',
    )
    assert spec != ENGINE_AWS_SPEC
    container = pod(render(loads(spec)), "chat")["containers"][0]
    variables = {e["name"]: e["value"] for e in container["env"]} | {"HOME": "/root", "id": "x"}
    args = [expand(a, variables) for a in container["args"]]
    assert args[args.index("--chat-template") + 1] == "$(HOME)/t.jinja"
    assert args[args.index("--override-generation-config") + 1] == '{"x": "$$(id)"}'
    assert [expand(c, variables) for c in container["command"]][-3:] == ["python3", "-m", "vllm.entrypoints.openai.api_server"]
    model = "s3://acme-models/m$(HOME)/"
    files = render(loads(ENGINE_AWS_SPEC.replace("model: s3://acme-models/llama-3.1-8b/", f'model: "{model}"', 1)))
    (init,) = pod(files, "inf")["initContainers"]
    assert [expand(a, {"HOME": "/root"}) for a in init["command"]][-2] == model
