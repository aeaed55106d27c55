"""Engine APIs in the spec: the server choice, weights, serving options and the accelerator rules."""

from __future__ import annotations

import pytest

from mlkit.spec.engines import ENGINES
from mlkit.spec.loader import loads
from tests.spec.refusals import only, problems

AWS = """\
project: llm-demo
cloud: aws
region: us-east-1
cluster:
  node_pools:
    - {name: cpu, instance_type: m6i.large}
    - {name: gpu, instance_type: g5.12xlarge}
    - {name: inf, instance_type: inf2.24xlarge}
apis:
  - {name: chat, engine: vllm, hf_model: meta-llama/Llama-3.1-8B-Instruct, compute: {gpu: 4, memory: 64Gi}}
"""

GCP = """\
project: llm-demo
cloud: gcp
region: us-central1
gcp_project: acme-ml
cluster:
  zone: us-central1-a
  node_pools:
    - {name: cpu, instance_type: n2-standard-4}
    - {name: t4, instance_type: n1-standard-8, gpu: {type: nvidia-tesla-p4, count: 2}}
    - {name: v5p, tpu: {version: v5p, topology: 2x2x1}, max_nodes: 1}
    - {name: big, tpu: {version: v5e, topology: 4x4}, max_nodes: 4}
apis:
  - {name: chat, engine: vllm, model: gs://acme-models/llama/, compute: {gpu: 2, memory: 32Gi}}
"""


def test_an_engine_api_loads_without_a_predictor():
    api = loads(AWS).apis[0]
    assert (api.engine, api.predictor, api.hf_model) == ("vllm", None, "meta-llama/Llama-3.1-8B-Instruct")


def test_the_engine_field_takes_the_known_engines_only():
    found = only(AWS.replace("engine: vllm", "engine: tgi"))
    assert "apis[0].engine" in found and "vllm" in found
    assert set(ENGINES) == {"vllm"}


def test_a_predictor_api_still_needs_its_predictor():
    found = only(AWS.replace("engine: vllm, hf_model: meta-llama/Llama-3.1-8B-Instruct, compute: {gpu: 4, memory: 64Gi}", "compute: {cpu: 1}"))
    assert "apis[0].predictor: required field is missing" in found and "engine: vllm" in found


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("engine: vllm,", "engine: vllm, predictor: p.py:P,", "apis[0].predictor: an API with `engine: vllm` runs the engine's own server"),
    ("engine: vllm,", "engine: vllm, config: {a: 1},", "apis[0].config: predictor settings is a predictor-runtime setting"),
    ("engine: vllm,", "engine: vllm, batching: {max_batch_size: 4},", "apis[0].batching: server-side batching"),
    ("hf_model: meta-llama/Llama-3.1-8B-Instruct,", "", "apis[0].model: an engine API needs weights"),
    ("hf_model: meta-llama/Llama-3.1-8B-Instruct,", "hf_model: a/b, model: s3://acme-models/x/,", "apis[0].hf_model: give the weights once"),
    ("hf_model: meta-llama/Llama-3.1-8B-Instruct,", "model: s3://acme-models/x/, hf_token_secret: {name: hf},",
     "apis[0].hf_token_secret: a Hugging Face token is for `hf_model`"),
    ("hf_model: meta-llama/Llama-3.1-8B-Instruct", "hf_model: ../etc/passwd", "apis[0].hf_model"),
    ("hf_model: meta-llama/Llama-3.1-8B-Instruct", "hf_model: 'org/name; rm -rf /'", "apis[0].hf_model"),
])
def test_engine_fields_that_do_not_fit_name_the_fix(old, new, expected):
    assert old in AWS
    assert expected in only(AWS.replace(old, new))


def test_engine_only_fields_on_a_predictor_api_are_refused():
    fields = "predictor: p.py:P, hf_model: a/b, serving: {max_model_len: 4096}, autoscaling: {target_waiting: 2},"
    text = AWS.replace("engine: vllm, hf_model: meta-llama/Llama-3.1-8B-Instruct,", fields)
    found = problems(text)
    assert any("apis[0].hf_model: only for engine APIs" in p for p in found)
    assert any("apis[0].serving: only for engine APIs" in p for p in found)
    assert any("apis[0].autoscaling.target_waiting: only for engine APIs" in p for p in found)


def test_tensor_parallel_size_must_equal_the_accelerators_of_a_replica():
    found = only(AWS.replace("memory: 64Gi}", "memory: 64Gi}, serving: {tensor_parallel_size: 2}"))
    assert "apis[0].serving.tensor_parallel_size: tensor_parallel_size 2 does not match the 4 NVIDIA GPU(s) of one replica" in found
    assert loads(AWS.replace("memory: 64Gi}", "memory: 64Gi}, serving: {tensor_parallel_size: 4}")).apis[0].serving.tensor_parallel_size == 4


def test_more_accelerators_than_one_node_has_names_both_numbers():
    found = only(AWS.replace("gpu: 4,", "gpu: 8,"))
    assert "apis[0].compute.gpu: no node pool offers 8 NVIDIA GPU(s) per node" in found and "gpu: 4 nvidia-a10g" in found
    found = only(AWS.replace("compute: {gpu: 4,", "node_pool: inf, compute: {neuron_cores: 16,"))
    assert "pool 'inf' offers 12 Neuron cores per node, the API asks for 16" in found


def test_an_engine_without_accelerators_lists_the_ones_it_runs_on():
    found = only(AWS.replace("compute: {gpu: 4, memory: 64Gi}", "compute: {cpu: 4}"))
    assert "apis[0].compute: engine vllm needs accelerators; it runs on NVIDIA GPUs" in found
    assert "inferentia2" in found and "tpu-v6e-slice" in found


def test_an_engine_on_a_device_it_does_not_support_lists_the_ones_it_does():
    found = only(GCP)
    assert "apis[0].compute.gpu: pool 't4' has nvidia-tesla-p4, which engine vllm does not run on; it runs on NVIDIA GPUs (" in found
    found = only(GCP.replace("compute: {gpu: 2, memory: 32Gi}", "compute: {tpu_chips: 4, memory: 32Gi}, node_pool: v5p"))
    assert "pool 'v5p' has tpu-v5p-slice, which engine vllm does not run on" in found and "tpu-v5-lite-podslice" in found


def test_an_engine_replica_lives_on_one_tpu_vm():
    found = only(GCP.replace("compute: {gpu: 2, memory: 32Gi}", "compute: {tpu_chips: 4, memory: 32Gi}, node_pool: big"))
    assert "apis[0].node_pool: pool 'big' is a multi-host TPU slice (4x4)" in found and "at most 8 chips" in found


@pytest.mark.parametrize(("args", "expected"), [
    (["--max-num-seqs", "128", "--enable-prefix-caching", "--gpu-memory-utilization=0.9"], None),
    (["128"], "item 0 '128' is a value without a flag"),
    (["--max-num-seqs\n--port", "1"], "a newline"),
    (["--Port=1"], "is not a flag"),
    (["-p", "1"], "is not a flag"),
    (["--port=9000"], "--port is set by mlkit from the spec"),
    (["--api-key", "x"], "--api-key is set by mlkit from the spec"),
    (["--model=/etc"], "--model is set by mlkit"),
    # vLLM's argparse takes any unique prefix of a flag: each of these would set one of mlkit's.
    (["--api-k=KEY"], "item 0: --api-k (a prefix of --api-key, which vllm reads it as) is set by mlkit from the spec; set it with api_keys"),
    (["--max-num-seqs", "8", "--served-model", "x"], "item 2: --served-model (a prefix of --served-model-name, which vllm reads it as) is set by mlkit"),
    (["--served-model-name", "x"], "item 0: --served-model-name is set by mlkit from the spec; set it with name"),
    (["--hos=0.0.0.0"], "--hos (a prefix of --host, which vllm reads it as)"),
    (["--max-model=9"], "set it with serving.max_model_len"),
    (["--dtype", "half"], "item 0: --dtype is set by mlkit from the spec; set it with serving.dtype"),
    (["--config", "/tmp/x.yaml"], "item 0: --config reads flags from a file that mlkit cannot check; give each flag in extra_args instead"),
    (["--conf=x.yaml"], "--conf (a prefix of --config, which vllm reads it as) reads flags from a file"),
    (["--enable-prefix-caching"] * 65, "65 items is too many (valid: at most 64)"),  # once "at most List"
    (["--config-format", "hf", "--model-impl=vllm", "--max-num-batched-tokens=8192"], None),  # longer flags, not prefixes: allowed
])
def test_extra_args_are_flags_and_values_and_leave_mlkits_flags_alone(args, expected):
    quoted = ", ".join(f'"{a}"' for a in args).replace("\n", "\\n")
    text = AWS.replace("memory: 64Gi}", f"memory: 64Gi}}, serving: {{extra_args: [{quoted}]}}")
    if expected is None:
        assert loads(text).apis[0].serving.extra_args == args
    else:
        found = only(text)
        assert "apis[0].serving.extra_args" in found and expected in found, found


def test_an_engine_api_sets_its_memory():
    found = only(AWS.replace("compute: {gpu: 4, memory: 64Gi}", "compute: {gpu: 4}"))
    assert "apis[0].compute.memory: set it for an engine API" in found


def test_serving_options_are_checked():
    assert "apis[0].serving.dtype" in only(AWS.replace("memory: 64Gi}", "memory: 64Gi}, serving: {dtype: float8}"))
    assert "apis[0].serving.quantization" in only(AWS.replace("memory: 64Gi}", "memory: 64Gi}, serving: {quantization: 'awq; reboot'}"))
    assert "apis[0].serving.max_model_len" in only(AWS.replace("memory: 64Gi}", "memory: 64Gi}, serving: {max_model_len: 0}"))
    assert "apis[0].hf_token_secret.name" in only(AWS.replace("memory: 64Gi}", "memory: 64Gi}, hf_token_secret: {name: Bad_Name}"))


HOSTILE = [
    ("extra-args-newline", '{extra_args: ["--max-num-seqs\\n--api-key=stolen"]}', r"serving\.extra_args\[0\]: the value holds the invisible character U\+000A"),
    ("extra-args-owned", "{extra_args: [--api-key=open]}", r"serving\.extra_args: .*--api-key is set by mlkit from the spec"),
    ("extra-args-shell", '{extra_args: ["$(curl evil)"]}', r"serving\.extra_args: .*is a value without a flag before it"),
    ("quantization-shell", "{quantization: 'awq && reboot'}", r"serving\.quantization"),
]


@pytest.mark.parametrize(("serving", "pattern"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_engine_options_are_refused_with_one_line_and_nothing_written(project, sentinel, serving, pattern):
    from tests.spec.test_hostile import _refused_by_validate_and_render

    proj = project("aws-accelerators")
    spec = proj / "mlkit.yaml"
    spec.write_text(spec.read_text() + f"  - {{name: chat, engine: vllm, model: model/, compute: {{memory: 16Gi, gpu: 1}}, serving: {serving}}}\n")
    _refused_by_validate_and_render(proj, sentinel, pattern)


def test_an_engine_api_validates_and_renders_through_the_cli(project):
    from tests.conftest import mlkit

    proj = project("aws-accelerators")
    spec = proj / "mlkit.yaml"
    spec.write_text(spec.read_text() + "  - {name: chat, engine: vllm, model: model/, compute: {memory: 16Gi, gpu: 1}}\n")
    assert mlkit("validate", cwd=proj, timeout=60).returncode == 0
    rendered = mlkit("render", "--allow-dirty", cwd=proj, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    assert "vllm/vllm-openai:v0.31.0-cu129" in (proj / "infra/k8s/chat/deployment.yaml").read_text()
    assert not (proj / "infra/k8s/chat/configmap.yaml").exists()


def test_fields_an_engine_would_drop_or_cannot_honour_are_refused():
    """Each was accepted: monitoring silently dropped, a /dev/shm larger than the pod's memory limit."""
    found = only(AWS.replace("memory: 64Gi}", "memory: 64Gi}, monitoring: {key: label, type: classification}"))
    assert "apis[0].monitoring: prediction monitoring" in found and "not used with `engine: vllm`; remove it" in found
    found = only(AWS.replace("memory: 64Gi}", "memory: 64Gi}, serving: {shm_size: 128Gi}"))
    assert "apis[0].serving.shm_size: 128Gi is more than compute.memory (64Gi), which /dev/shm counts against" in found
    assert "apis[0].serving.shm_size: '1e99' is out of range for /dev/shm" in only(AWS.replace("memory: 64Gi}", "memory: 64Gi}, serving: {shm_size: 1e99}"))
    assert loads(AWS.replace("memory: 64Gi}", "memory: 64Gi}, serving: {shm_size: 64Gi}")).apis[0].serving.shm_size == "64Gi"


@pytest.mark.parametrize("repo", ["a..b/c--d", "org/name--x", "org/x..y", "org/model.git", "meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-0.5B", "a/b"])
def test_hf_model_ids_follow_the_hubs_own_rules(repo):
    """The Hub's client decides: mlkit accepts exactly the ids huggingface_hub's validate_repo_id accepts (of `org/name` form)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
        hub_ok = True
    except HFValidationError:
        hub_ok = False
    text = AWS.replace("meta-llama/Llama-3.1-8B-Instruct", repo)
    if hub_ok:
        assert loads(text).apis[0].hf_model == repo
    else:
        assert "apis[0].hf_model: " + repr(repo) + " is not a Hugging Face model id" in only(text)
