"""The spec loader: valid specs load; each kind of mistake gives file:line:col, the field path and the fix."""

from __future__ import annotations

import pytest

from mlkit.errors import SpecError
from mlkit.spec.loader import load, loads
from tests.conftest import EXAMPLE_NAMES, EXAMPLES

BASE = """\
project: acme
cloud: aws
region: us-west-2
cluster:
  kubernetes_version: "1.31"
  node_pools:
    - {name: cpu, instance_type: m6i.large, min_nodes: 1, max_nodes: 5}
    - {name: inf, instance_type: inf2.xlarge, min_nodes: 0, max_nodes: 3}
    - {name: gpu, instance_type: g5.xlarge, min_nodes: 0, max_nodes: 2, spot: true}
apis:
  - name: sentiment
    predictor: predictor.py:Predictor
    compute: {cpu: 1, memory: 2Gi}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as info:
        loads(text)
    return info.value.problems


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_is_valid(name):
    spec = load(EXAMPLES / name / "mlkit.yaml")
    assert spec.apis


def test_defaults_fill_in():
    spec = loads(BASE)
    api = spec.apis[0]
    assert api.concurrency.max_in_flight == 32
    assert api.rollout.max_unavailable == "0"
    assert spec.state.backend == "local"
    assert spec.network.creates_vpc


@pytest.mark.parametrize(
    "old, new, expected",
    [
        (
            'kubernetes_version: "1.31"',
            "kubernetes_version: 1.30",
            'mlkit.yaml:5:23: cluster.kubernetes_version: YAML reads 1.30 as the number 1.3; quote it: "1.30"',
        ),
        ("project: acme", "project: Acme", "mlkit.yaml:1:10: project: 'Acme' must be 3 to 20 lowercase letters"),
        ("cloud: aws", "cloud: azure", "mlkit.yaml:2:8: cloud: 'azure' is not allowed (valid: aws, gcp)"),
        ("name: sentiment", "name: Sentiment_API", "apis[0].name: 'Sentiment_API' must be a DNS label"),
        ("cpu: 1, memory: 2Gi", "cpu: lots, memory: 2Gi", "apis[0].compute.cpu: 'lots' is not a Kubernetes quantity"),
        ("cpu: 1, memory: 2Gi", "cpu: 1, memory: 2GB", "apis[0].compute.memory: '2GB' is not a Kubernetes quantity"),
        ("predictor: predictor.py:Predictor", "predictor: predictor.py", "apis[0].predictor: 'predictor.py' must name a class"),
        ("region: us-west-2", "region: us-west-2\nnetwrk: {}", "mlkit.yaml:4:1: netwrk: unknown field; did you mean 'network'?"),
        ("min_nodes: 1, max_nodes: 5", "min_nodes: 6, max_nodes: 5", "cluster.node_pools[0].min_nodes: min_nodes (6) is above max_nodes (5)"),
        ("name: inf,", "name: cpu,", "cluster.node_pools[1].name: duplicate pool name 'cpu'"),
        ("g5.xlarge", "g5.3xlarge", "cluster.node_pools[2].instance_type: unknown size of the g5 family (valid: g5.xlarge"),
        ("g5.xlarge", "n2-standard-4", "'n2-standard-4' is not an EC2 instance type (that looks like a GCP machine type)"),
        ("spot: true}", "spot: true, tpu: {version: v5e, topology: 2x4}}", "cluster.node_pools[2].tpu: TPUs exist on GCP only"),
        ("cpu: 1, memory: 2Gi}", "cpu: 1, memory: 2Gi, gpu: 2}", "apis[0].compute.gpu: no node pool offers 2 NVIDIA GPU(s) per node"),
        ("cpu: 1, memory: 2Gi}", "cpu: 1, memory: 2Gi, tpu_chips: 4}", "apis[0].compute.tpu_chips: TPUs exist on GCP only"),
        ("cpu: 1, memory: 2Gi}", "cpu: 1, memory: 2Gi, neuron_cores: 4}", "apis[0].compute.neuron_cores: no node pool offers 4 Neuron core(s)"),
        ("cpu: 1, memory: 2Gi}", "cpu: 1, memory: 2Gi, gpu: 1, neuron_cores: 2}", "apis[0].compute: asks for gpu and neuron_cores"),
        (
            "cpu: 1, memory: 2Gi}",
            "cpu: 1, memory: 2Gi}\n    node_pool: gpu",
            "apis[0].node_pool: pool 'gpu' has 1 nvidia-a10g GPU(s) nodes; a CPU-only API would hold them idle",
        ),
        ("cpu: 1, memory: 2Gi}", "cpu: 1, memory: 2Gi}\n    node_pool: big", "apis[0].node_pool: no pool named 'big' (valid: cpu, inf, gpu)"),
        (
            "cpu: 1, memory: 2Gi}",
            "cpu: 1, memory: 2Gi}\n    autoscaling: {min_replicas: 5, max_replicas: 2}",
            "apis[0].autoscaling.min_replicas: min_replicas (5) is above max_replicas (2)",
        ),
        (
            "region: us-west-2",
            "region: us-west-2\nnetwork: {existing_vpc_id: vpc-0abc, vpc_cidr: 10.1.0.0/16, existing_private_subnet_ids: [subnet-1a, subnet-2b]}",
            "network.vpc_cidr: applies to a new network only",
        ),
        ("region: us-west-2", "region: us-west-2\nnetwork: {existing_vpc_id: vpc-0abc}", "network.existing_private_subnet_ids: required with existing_vpc_id"),
        ("region: us-west-2", "region: us-west-2\nnetwork: {vpc_cidr: 10.0.0.0/8}", "network.vpc_cidr: prefix /8 is out of range (valid: /16 to /20)"),
        ("region: us-west-2", "region: us-west-2\nstate: {backend: s3}", "state.bucket: required with `backend: s3`"),
        ("region: us-west-2", "region: us-west-2\nstate: {backend: gcs, bucket: b}", "state.backend: gcs state needs `cloud: gcp`"),
        ("region: us-west-2", "region: us-west-2\ngcp_project: acme-ml", "gcp_project: only used with `cloud: gcp`"),
        ("region: us-west-2", "region: uswest", "region: 'uswest' is not an AWS region"),
        (
            "cpu: 1, memory: 2Gi}",
            "cpu: 1, memory: 2Gi}\n    canary: {weight: 10}",
            "apis[0].canary: a canary is served through the project's Gateway, an internet-facing load balancer: set `expose: public`",
        ),
        (
            "cpu: 1, memory: 2Gi}",
            "cpu: 1, memory: 2Gi}\n    expose: public\n    canary: {weight: 100}",
            "apis[0].canary.weight: 100 is too large (valid: at most 99)",
        ),
        ("cpu: 1, memory: 2Gi}", "cpu: 1, memory: 2Gi}\n    expose: everyone", "apis[0].expose: 'everyone' is not allowed (valid: cluster, internal, public)"),
        (
            "cpu: 1, memory: 2Gi}",
            "cpu: 1, memory: 2Gi}\n    expose: public\n    autoscaling: {min_replicas: 0}\n    canary: {weight: 10}",
            "apis[0].autoscaling.min_replicas: an API with a canary cannot scale to zero",
        ),
        (
            "cpu: 1, memory: 2Gi}",
            "cpu: 1, memory: 2Gi}\n    autoscaling: {min_replicas: 0}\n  - {name: sentiment-backend, predictor: p.py:P}",
            "apis[1].name: 'sentiment-backend' is the name of the backend Service of API 'sentiment'",
        ),
        (
            "cpu: 1, memory: 2Gi}",
            "cpu: 1, memory: 2Gi}\n    autoscaling: {min_replicas: 0}\n  - {name: mlkit-wake-fallback, predictor: p.py:P}",
            "apis[1].name: 'mlkit-wake-fallback' is the name of the cold-start fallback of the APIs that scale to zero",
        ),
        ("cpu: 1, memory: 2Gi}", "cpu: 1, memory: 2Gi}\n    autoscaling: {min_replicas: 0, cold_start_timeout_s: 0}", "cold_start_timeout_s: 0 is too small"),
        ("spot: true}", "spot: true, image_streaming: true}", "cluster.node_pools[2].image_streaming: GKE image streaming exists on GCP only"),
        (
            "cpu: 1, memory: 2Gi}",
            "cpu: 1, memory: 2Gi}\n    autoscaling: {min_replicas: 0, cold_start_timeout_s: '60s'}",
            "apis[0].autoscaling.cold_start_timeout_s",
        ),
        ("region: us-west-2", "region: us-west-2\nnamespace: Team_A", "namespace: 'Team_A' must be a DNS label"),
    ],
)
def test_mistakes_name_the_field_and_the_fix(old, new, expected):
    assert old in BASE
    found = problems(BASE.replace(old, new, 1))
    assert any(expected in p for p in found), "\n".join(found)


def test_wrong_cloud_accelerators_on_gcp():
    text = BASE.replace("cloud: aws", "cloud: gcp").replace("region: us-west-2", "region: us-central1\ngcp_project: acme-ml")
    found = "\n".join(problems(text))
    assert "'inf2.xlarge' is an AWS Neuron instance type" in found
    assert "'m6i.large' is an EC2 instance type" in found


@pytest.mark.parametrize(
    "pool, expected",
    [
        ("{name: tpu, tpu: {version: v5e, topology: 3x3}, max_nodes: 1}", "'3x3' is not a TPU v5e topology (valid: 1x1, 2x2, 2x4"),
        ("{name: tpu, tpu: {version: v5e, topology: 4x4}, max_nodes: 3}", "a 4x4 slice is 4 VMs, created and removed as a whole: set max_nodes: 4"),
        ("{name: tpu, instance_type: ct5lp-hightpu-4t, tpu: {version: v5e, topology: 2x4}, max_nodes: 1}", "a v5e 2x4 slice runs on ct5lp-hightpu-8t"),
        ("{name: g, instance_type: g2-standard-8, gpu: {type: nvidia-l4}}", "g2-standard-8 comes with its GPUs; remove the gpu block"),
        ("{name: g, instance_type: n1-standard-8, gpu: {type: nvidia-l4}}", "'nvidia-l4' cannot attach to N1"),
    ],
)
def test_gcp_pool_rules(pool, expected):
    text = f"project: acme\ncloud: gcp\nregion: us-central1\ngcp_project: acme-ml\ncluster:\n  zone: us-central1-a\n  node_pools:\n    - {pool}\n"
    found = "\n".join(problems(text))
    assert expected in found


def test_tpu_in_a_regional_cluster_needs_a_zone_of_the_region():
    base = (
        "project: acme\ncloud: gcp\nregion: us-central1\ngcp_project: acme-ml\ncluster:\n"
        "  node_pools:\n    - {name: tpu, tpu: {version: v5e, topology: 2x4}, max_nodes: 1%s}\n"
    )
    assert any("cluster.node_pools[0].zones: a TPU slice lives in one zone" in p for p in problems(base % ""))
    assert any("'europe-west4-a' is not a zone of us-central1" in p for p in problems(base % ", zones: [europe-west4-a]"))
    assert loads(base % ", zones: [us-central1-a]").cluster.node_pools[0].zones == ["us-central1-a"]


def test_gcp_only_settings_on_aws():
    found = problems(BASE.replace('kubernetes_version: "1.31"', 'kubernetes_version: "1.31"\n  zone: us-west-2a'))
    assert any("cluster.zone: GCP only" in p for p in found)


def test_tpu_api_must_take_all_chips_of_a_vm():
    text = (
        "project: acme\ncloud: gcp\nregion: us-central1\ngcp_project: acme-ml\ncluster:\n  node_pools:\n"
        "    - {name: tpu, tpu: {version: v5e, topology: 2x4}, max_nodes: 1, zones: [us-central1-a]}\n"
        "apis:\n  - {name: a, predictor: p.py:P, compute: {tpu_chips: 4}, node_pool: tpu}\n"
    )
    assert any("pool 'tpu' has 8 TPU chips per VM; set compute.tpu_chips to 8" in p for p in problems(text))


def test_every_problem_is_reported_at_once():
    text = BASE.replace("min_nodes: 1, max_nodes: 5", "min_nodes: 6, max_nodes: 5").replace("region: us-west-2", "region: us-west-2\ngcp_project: acme-ml")
    assert len(problems(text)) == 2


def test_yaml_syntax_error_points_at_the_line():
    found = problems("project: acme\ncloud: [aws\n")
    assert found[0].startswith("mlkit.yaml:3:1: YAML syntax:")


def test_duplicate_keys_are_caught():
    found = problems(BASE + "project: other\n")
    assert any("project: given twice" in p for p in found)


@pytest.mark.parametrize("text, expected", [("", "the spec is empty"), ("- a\n- b\n", "must be a mapping of fields")])
def test_empty_or_non_mapping(text, expected):
    assert expected in problems(text)[0]


def test_missing_file(tmp_path):
    with pytest.raises(SpecError) as info:
        load(tmp_path / "mlkit.yaml")
    assert "no such file; run `mlkit init DIR`" in info.value.message


def test_missing_required_field_points_at_its_parent():
    found = problems(BASE.replace("    predictor: predictor.py:Predictor\n", ""))
    assert any(p.startswith("mlkit.yaml:11:") and "apis[0].predictor: required field is missing" in p for p in found)


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("max_nodes: 5}", "max_nodes: true}", "cluster.node_pools[0].max_nodes: true is not a whole number"),
        ("max_nodes: 5}", "max_nodes: 5.0}", "cluster.node_pools[0].max_nodes: 5.0 is not a whole number"),
        ("cpu: 1, memory: 2Gi}", "cpu: 1, memory: 2Gi}\n    batching: {max_wait_ms: .nan}", "apis[0].batching.max_wait_ms: nan is not a finite number"),
        ("cpu: 1, memory: 2Gi}", "cpu: 1, memory: 2Gi}\n    config: !!binary aGVsbG8=", "apis[0].config: b'hello' is not a mapping"),
        ("cpu: 1, memory: 2Gi}", "cpu: 1, memory: 2Gi}\n    config: {tags: !!set {a, b}}", "apis[0].config: tags is a YAML set, which JSON cannot carry"),
        ("cpu: 1, memory: 2Gi}", "cpu: 1, memory: 2Gi}\n    config: {x: {1: a}}", "apis[0].config: key 1 at x is not a string"),
        ("cpu: 1, memory: 2Gi}", "cpu: 1, memory: 2Gi}\n    config: {x: !!python/object:os.system ls}", "YAML syntax: could not determine a constructor"),
        ("cpu: 1, memory: 2Gi}", "cpu: 1, memory: 2Gi}\n---\nproject: b", "YAML syntax: but found another document"),
        ("project: acme", "'project ': acme", "mlkit.yaml:1:1: project : the key 'project ' has spaces around it; remove them"),
        ("name: sentiment", "name: sentiment\n    node_pool: GPU", "apis[0].node_pool: 'GPU' must be a DNS label"),
        ("cluster:", "cluster:\n  existing: {context: \"prod\\u0007\"}", "cluster.existing.context: the value holds the invisible character U+0007"),
        ("name: sentiment", "name: sentimеnt", "apis[0].name: 'sentimеnt' must be a DNS label"),  # a Cyrillic е
        ("region: us-west-2", "region: us-west-2\nnamespace: default", "namespace: 'default' belongs to Kubernetes itself"),
        ("cpu: 1, memory: 2Gi}", 'cpu: 1, memory: 2Gi}\n    config: {"a\\x1bb": 1}', "apis[0].config.a\x1bb: the key holds the invisible character U+001B"),
        (
            "name: sentiment",
            "name: sentiment\n    model: s3://acme-models/m\n    canary: {weight: 5, model: 'gs://acme-models/m'}\n    expose: public",
            "apis[0].canary.model: gs:// is a GCP bucket",
        ),
        ("region: us-west-2", 'region: us-west-2\ntags: {"team\\0": ml}', "tags.team\x00: the key holds the invisible character U+0000 (NUL)"),
        (
            "m6i.large, min_nodes: 1",
            'm6i.large, labels: {"te\\u200bam": a}, min_nodes: 1',
            "labels.te\u200bam: the key holds the invisible character U+200B (ZERO WIDTH SPACE)",
        ),
        ("region: us-west-2", "region: us-west-2\ntags: {team: " + "x" * 300 + "}", "is not an AWS tag value: at most 256"),
    ],
)
def test_careless_types_and_characters(old, new, expected):
    assert old in BASE
    found = problems(BASE.replace(old, new, 1))
    assert any(expected in p for p in found), "\n".join(found)


def test_state_region_is_for_s3_only():
    text = BASE.replace("cloud: aws", "cloud: gcp").replace(
        "region: us-west-2", "region: us-central1\ngcp_project: acme-ml\nstate: {backend: gcs, bucket: acme-state, region: us-central1}"
    )
    text = text.replace("m6i.large", "n2-standard-4").replace("inf2.xlarge", "n2-standard-8").replace("g5.xlarge", "g2-standard-8")
    assert any("state.region: used with `backend: s3` only" in p for p in problems(text))


def test_config_values_are_free_form_but_bounded():
    text = BASE.replace("cpu: 1, memory: 2Gi}", 'cpu: 1, memory: 2Gi}\n    config: {note: "tabs\\tand\\nnewlines", n: 1e300}', 1)
    assert loads(text).apis[0].config["note"] == "tabs\tand\nnewlines"
    big = BASE.replace("cpu: 1, memory: 2Gi}", "cpu: 1, memory: 2Gi}\n    config: {blob: '" + "x" * 600_000 + "'}", 1)
    assert any("apis[0].config: is 600012 bytes as JSON; at most 524288" in p for p in problems(big))
