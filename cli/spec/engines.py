"""Serving engines an API may run instead of the predictor runtime: what each runs on, and its images.

Another engine is one more entry in ENGINES (and one more value of `Api.engine`); the spec rules and
the manifests read everything engine-specific from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .accelerators import Kind


@dataclass(frozen=True)
class Engine:
    name: str
    # Accelerator kind -> devices (the kit's device names, accelerators.yaml) the engine runs on.
    devices: dict[Kind, tuple[str, ...]]
    # Accelerator kind -> the engine's OpenAI-compatible server image, pinned; `by_device` overrides it.
    images: dict[Kind, str]
    by_device: dict[str, str] = field(default_factory=dict)
    # The server's command in every image, and the environment variable it reads its API key from.
    command: tuple[str, ...] = ()
    key_env: str = ""
    # Flags mlkit sets, each with the spec field that sets it: passing one again in serving.extra_args
    # would contradict the spec (or replace the Secret's API key with a literal one).
    owned_flags: dict[str, str] = field(default_factory=dict)
    # Flags that read more flags from elsewhere (a file), which no spec check could see.
    indirect_flags: tuple[str, ...] = ()

    def image(self, kind: Kind, device: str) -> str:
        return self.by_device.get(device) or self.images[kind]

    def claims(self, flag: str) -> tuple[str, str] | None:
        """The flag of mlkit's (and the spec field that sets it) which `flag` would set, or None.

        The engines parse with argparse's allow_abbrev: any unique prefix of a flag sets it, so
        `--api-k=KEY` is `--api-key`; a prefix of an indirect flag (`--conf`) is refused the same way.
        """
        for owned, spec_field in self.owned_flags.items():
            if owned.startswith(flag):
                return owned, f"is set by mlkit from the spec; set it with {spec_field}"
        for indirect in self.indirect_flags:
            if indirect.startswith(flag):
                return indirect, "reads flags from a file that mlkit cannot check; give each flag in extra_args instead"
        return None

    def supported(self) -> str:
        """The accelerators it runs on, for error messages."""
        words = {"nvidia": "NVIDIA GPUs", "neuron": "AWS Neuron (Inferentia2, Trainium)", "tpu": "TPU chips"}
        return "; ".join(f"{words[k]} ({', '.join(v)})" for k, v in self.devices.items())


# Images checked 2026-11-29 against the projects' release notes and registries:
# - vllm/vllm-openai:v0.31.0-cu129: vLLM v0.31.0 (vllm-project/vllm releases; Docker Hub vllm/vllm-openai).
#   The plain v0.31.0 tag is the CUDA 13 build and needs NVIDIA driver 580 or newer; the -cu129 build runs
#   on the CUDA 12 drivers that EKS's accelerated AMIs and GKE's default driver install still ship.
# - vllm/vllm-tpu:v0.29.0: vLLM's TPU image (tpu-inference backend; docs.vllm.ai/projects/tpu "Get started":
#   TPU v7x, v6e and v5e are supported, not v4 or v5p). The newest TPU release in use (llm-d guides); its known
#   regression (tpu-inference#3566) hits the HMA KV connector of disaggregated TPU7x serving only.
# - public.ecr.aws/neuron/pytorch-inference-vllm-neuronx: AWS Neuron Deep Learning Containers. Neuron SDK
#   2.33.0 ("Install PyTorch via Deep Learning Container", 2026-10-16) ships vLLM 0.29 for Trn2 and Trn3
#   only; the vLLM 0.16 line on SDK 2.31.1 is the newest that still covers Inf2 and Trn1 (Neuron quickstart
#   v2.31.1: "If you are using Trn1 instances, use the legacy vLLM 0.16 DLC").
NEURON_LEGACY = "public.ecr.aws/neuron/pytorch-inference-vllm-neuronx:0.16.0-neuronx-py312-sdk2.31.1-ubuntu24.04"
NEURON_TRN2 = "public.ecr.aws/neuron/pytorch-inference-vllm-neuronx:0.29.0.1.2.0-neuronx-py314-sdk2.33.0-ubuntu26.04"

VLLM = Engine(
    name="vllm",
    devices={
        # Compute capability 7.0 and newer (vLLM "GPU installation"); the Pascal P4 and P100 are older.
        "nvidia": (
            "nvidia-t4", "nvidia-a10g", "nvidia-l4", "nvidia-l40s", "nvidia-a100", "nvidia-h100",
            "nvidia-tesla-t4", "nvidia-tesla-v100", "nvidia-tesla-a100", "nvidia-a100-80gb", "nvidia-h100-80gb", "nvidia-h100-mega-80gb",
        ),
        "neuron": ("inferentia2", "trainium", "trainium2"),
        "tpu": ("tpu-v5-lite-podslice", "tpu-v6e-slice"),
    },
    images={
        "nvidia": "vllm/vllm-openai:v0.31.0-cu129",
        "tpu": "vllm/vllm-tpu:v0.29.0",
        "neuron": NEURON_LEGACY,
    },
    by_device={"trainium2": NEURON_TRN2},
    # The module, not `vllm serve`: the Neuron images document it, and every image has it.
    command=("python3", "-m", "vllm.entrypoints.openai.api_server"),
    key_env="VLLM_API_KEY",
    owned_flags={
        "--model": "model or hf_model",
        "--served-model-name": "name",
        "--tensor-parallel-size": "serving.tensor_parallel_size",
        "--max-model-len": "serving.max_model_len",
        "--dtype": "serving.dtype",
        "--quantization": "serving.quantization",
        "--port": "the pod's port (mlkit's own)",
        "--host": "the pod's address (mlkit's own)",
        "--api-key": "api_keys",
        "--download-dir": "model (the pod's model volume)",
    },
    # vLLM's --config reads flags from a YAML file: a key there would pass every check above.
    indirect_flags=("--config",),
)

ENGINES: dict[str, Engine] = {VLLM.name: VLLM}
# The Neuron devices NEURON_LEGACY serves: its plugin needs the flags and paths that
# cli/render/engine_view.py neuron_args and NEURON_WORK_DIR describe, and `serving.max_model_len` to compile for.
NEURON_LEGACY_DEVICES = ("inferentia2", "trainium")

# Startup budget: a fixed part per accelerator (CUDA graph capture; XLA precompilation on TPU; Neuron
# compiles the model on first start, tens of minutes for 8B models), plus seconds per GB of weights (read
# from the volume or downloaded from Hugging Face at about 100 MB/s, then loaded). The startup probe
# allows it; a request held at zero waits for it too.
STARTUP_BASE_S = {"nvidia": 300, "tpu": 900, "neuron": 1800}
STARTUP_S_PER_GB = 20


def startup_budget_s(kind: str, model_size_gb: float) -> int:
    return STARTUP_BASE_S.get(kind, 300) + int(model_size_gb * STARTUP_S_PER_GB)
