"""The view of an engine API (`engine: vllm`): the runtime view of its API (runtime_view.py), with the
engine's own image, command, flags, probes and queue triggers decided; engine-*.yaml.j2 lay it out."""

from __future__ import annotations

from typing import Any

from .. import labels, placement
from ..spec import accelerators as acc
from ..spec import engines
from ..spec.engines import ENGINES
from ..spec.schema import Api, Autoscaling, Spec
from .facts import Facts
from .runtime_view import CHECKOV_SKIPS, MODEL_DIR, PORT, Track, api_view

################################################################################
# Engine APIs: the engine's own server image instead of the predictor runtime; the ServiceAccount,
# Service, PodDisruptionBudget and NetworkPolicy are the runtime's, from the same templates.
################################################################################

HF_TOKEN_DIR = "/etc/mlkit/hf-token"
ENGINE_UNITS = {"nvidia": "GPU(s)", "neuron": "NeuronCore(s)", "tpu": "TPU chip(s)", "none": ""}
ENGINE_OBJECTS = ("serviceaccount", "deployment", "service", "scaledobject", "poddisruptionbudget", "networkpolicy")
# Startup probe budget: a fixed part per accelerator (CUDA graph capture; XLA precompilation on TPU;
# Neuron compiles the model on first start, tens of minutes for 8B models), plus seconds per GB of
# weights (read from the volume or downloaded from Hugging Face at about 100 MB/s, then loaded).
ENGINE_STARTUP_PERIOD_S = 10
# Readiness and liveness wait this long for /health: a saturated vLLM answers it late (its event loop is
# busy with the batch), and the kubelet's default of 1 s made liveness kill a busy engine after 3 misses,
# losing every generation in flight and paying a full cold start. llm-d-benchmark raised its probes to
# timeoutSeconds 15 for this (llm-d/llm-d-benchmark, its vLLM standup probes).
ENGINE_PROBE_TIMEOUT_S = 15
# The Inf2/Trn1 image's Neuron plugin (vllm-project/vllm-neuron 0.2.x, vllm_neuron/worker/
# neuronx_distributed_model_loader.py _get_compiled_model_path) compiles into $NEURON_COMPILED_ARTIFACTS,
# else into `<model path>/neuron-compiled-artifacts/` or, for a hub id, `local-models/` under the working
# directory (where _save_pretrained_model also writes the weights): the model volume and the root
# filesystem are read-only here, so both go to the tmp volume (the working directory is /tmp). Its README's known issues: the engine needs
# `num_gpu_blocks_override = ceil(max_model_len // block_size) * max_num_seqs` (else an out-of-bounds error),
# and its scheduler turns chunked prefill off; it compiles for max_num_seqs x max_model_len (platform.py:
# max_num_seqs defaults to 32, block_size to max_model_len unless prefix caching is on).
NEURON_WORK_DIR = "/tmp"
NEURON_MAX_NUM_SEQS = 32
ENGINE_CHECKOV_SKIPS = {
    "checkov.io/skip1": CHECKOV_SKIPS["checkov.io/skip1"],
    "checkov.io/skip2": "CKV_K8S_15=The engine image is pinned by its release tag, which its publisher does not move",
    "checkov.io/skip3": "CKV_K8S_43=Pinned by release tag (cli/spec/engines.py); replace it with a digest here to pin further",
}


def api_key_script(variable: str) -> str:
    """The engine reads one key from `variable`; the API's Secret holds keys one per line (schema.Api.api_keys).

    User values never enter the script: the engine's command and flags arrive as its arguments ("$@").
    """
    return (
        f'{variable}="$(grep -m1 . /etc/mlkit/api-keys/keys)"; '
        f'[ -n "${variable}" ] || {{ echo "mlkit: no key in the API key Secret" >&2; exit 1; }}; '
        f'export {variable}; exec "$@"'
    )


# Autoscaling targets per replica when the spec leaves them out: an engine batches dozens of sequences.
TARGET_RUNNING = 32
TARGET_WAITING = 4


def autoscaling_targets(auto: Autoscaling) -> tuple[int, int]:
    """Running and waiting requests per replica an engine API scales on (its ScaledObject and dashboard)."""
    running = auto.target_in_flight if "target_in_flight" in auto.model_fields_set else TARGET_RUNNING
    return running, auto.target_waiting or TARGET_WAITING


def engine_view(spec: Spec, api: Api, facts: Facts) -> dict[str, Any]:
    """The predictor view, with the engine's image, command, arguments, probes and autoscaling decided."""
    view = api_view(spec, api, facts)
    engine = ENGINES[api.engine or ""]
    serving = api.serving
    pool = placement.pool_for(api, spec) if spec.cluster.existing is None else None
    accel = placement.pool_accelerator(pool, spec.cloud) if pool else acc.NONE
    kind, amount = placement.api_demand(api)
    track = view["tracks"][0]
    track.env = _engine_env(api, kind)
    size_gb = serving.model_size_gb if serving else 16.0
    budget = engines.startup_budget_s(kind, size_gb)
    target_running, target_waiting = autoscaling_targets(api.autoscaling)
    selector = _metric_selector(spec.k8s_namespace, track)
    view.update(
        engine=engine,
        engine_image=engine.image(kind, accel.device),
        engine_command=list(engine.command),
        key_command=["/bin/sh", "-c", api_key_script(engine.key_env), "engine", *engine.command],
        engine_args=engine_args(api, amount, accel.device if kind == "neuron" else ""),
        engine_working_dir=NEURON_WORK_DIR if kind == "neuron" else None,
        probe_timeout_s=ENGINE_PROBE_TIMEOUT_S,
        tensor_parallel_size=amount,
        accelerator_words=" ".join(filter(None, [str(amount), accel.device, ENGINE_UNITS[kind]])),
        model_size_gb=f"{size_gb:g}",
        startup_budget_s=budget,
        startup_period_s=ENGINE_STARTUP_PERIOD_S,
        startup_failures=-(-budget // ENGINE_STARTUP_PERIOD_S),
        shm_size=serving.shm_size if serving else "2Gi",
        engine_checkov_skips=ENGINE_CHECKOV_SKIPS,
        hf_token_dir=HF_TOKEN_DIR,
        running_query=f"sum(vllm:num_requests_running{{{selector}}})",
        waiting_query=f"sum(vllm:num_requests_waiting{{{selector}}})",
        target_running=target_running,
        target_waiting=target_waiting,
    )
    return view


def engine_args(api: Api, tensor_parallel_size: int, neuron_device: str = "") -> list[str]:
    """The engine's flags, from the spec: weights, name, sharding, serving options, then the extra flags.

    vLLM's flag names; an engine that spells them otherwise maps them here. `neuron_device`: the Neuron
    device the API runs on, whose image may need flags of its own (neuron_args).
    """
    serving = api.serving
    args = ["--model", api.hf_model or MODEL_DIR, "--served-model-name", api.name, "--host", "0.0.0.0", "--port", str(PORT)]
    args += ["--tensor-parallel-size", str(tensor_parallel_size)]
    if api.hf_model:
        args += ["--download-dir", f"{MODEL_DIR}/hf"]
    if serving is not None:
        if serving.max_model_len is not None:
            args += ["--max-model-len", str(serving.max_model_len)]
        if serving.dtype != "auto":
            args += ["--dtype", serving.dtype]
        if serving.quantization is not None:
            args += ["--quantization", serving.quantization]
        args += serving.extra_args
    if neuron_device in engines.NEURON_LEGACY_DEVICES and serving is not None and serving.max_model_len is not None:
        args += neuron_args(serving.max_model_len, serving.extra_args)
    return args


def neuron_args(max_model_len: int, extra_args: list[str]) -> list[str]:
    """The flags the Inf2/Trn1 image's known issues ask for (NEURON_WORK_DIR's comment), unless extra_args sets them."""
    given = _flag_values(extra_args)
    out = []
    max_num_seqs = NEURON_MAX_NUM_SEQS
    if "--max-num-seqs" in given and given["--max-num-seqs"].isdigit():
        max_num_seqs = int(given["--max-num-seqs"])
    else:
        out += ["--max-num-seqs", str(max_num_seqs)]
    block_size = max_model_len  # the plugin's own choice without prefix caching
    if "--block-size" in given and given["--block-size"].isdigit() and int(given["--block-size"]) > 0:
        block_size = int(given["--block-size"])
    if "--num-gpu-blocks-override" not in given:
        # The README writes ceil(max_model_len // block_size); rounding the true quotient up never gives fewer blocks.
        out += ["--num-gpu-blocks-override", str(-(-max_model_len // block_size) * max_num_seqs)]
    if "--enable-chunked-prefill" not in given:
        out.append("--no-enable-chunked-prefill")
    return out


def _flag_values(args: list[str]) -> dict[str, str]:
    """`--flag value` and `--flag=value` of a flag list, by flag ("" for a flag without a value)."""
    out: dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg.startswith("--"):
            flag, eq, value = arg.partition("=")
            if not eq and i + 1 < len(args) and not args[i + 1].startswith("--"):
                value = args[i + 1]
            out[flag] = value
    return out


def _engine_env(api: Api, kind: str) -> dict[str, str]:
    env = {
        # The root filesystem is read-only and the image user has no home: caches go to the tmp volume.
        "HOME": "/tmp",
        "XDG_CACHE_HOME": "/tmp/.cache",
        "USER": "mlkit",  # torch's compile caches ask getpass for a user name; uid 10001 has no passwd entry
        "VLLM_NO_USAGE_STATS": "1",  # a served model reports nothing to the engine's makers
    }
    if api.hf_model:
        env["HF_HOME"] = f"{MODEL_DIR}/hf"
    if api.hf_token_secret:
        env["HF_TOKEN_PATH"] = f"{HF_TOKEN_DIR}/token"  # huggingface_hub reads the token from this file
    if kind == "neuron":
        env["NEURON_COMPILE_CACHE_URL"] = "/tmp/neuron-compile-cache"
        env["NEURON_COMPILED_ARTIFACTS"] = f"{NEURON_WORK_DIR}/neuron-compiled-artifacts"
    return env


def _metric_selector(namespace: str, track: Track) -> str:
    # The Prometheus chart's pod scrape job turns pod labels into metric labels, as for the runtime's gauge.
    api, tr = labels.prometheus_label(labels.API), labels.prometheus_label(labels.TRACK)
    return f'namespace="{namespace}",{api}="{track.labels[labels.API]}",{tr}="{track.track}"'
