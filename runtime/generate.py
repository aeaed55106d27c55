"""The `generate` contract of text-generating predictors, and one generation run against it.

    def generate(self, prompt, *, max_tokens, temperature=1.0, top_p=1.0, seed=None):
        yield "Hello"; yield ","; ...

`prompt` is a str (`/v1/completions`) or a list of chat messages `[{"role": ..., "content": str}]`
(`/v1/chat/completions`). It yields (or async-yields) one str per generated token. `max_tokens` is
always passed; each sampling parameter a request sets is passed only if `generate` names it (or takes
`**kwargs`): a request that sets one it does not name is a 400 that names it, since ignoring it would
answer a different question. The runtime itself enforces `max_tokens` and `stop` sequences (it
closes the generator), so every predictor honours them. An optional `count_tokens(self, prompt) ->
int` gives the prompt's token count for usage; without it, responses carry no usage. An optional
`context_length` attribute (an int) is the most tokens the model reads, prompt and answer together:
it bounds `max_tokens` (otherwise MAX_TOKENS_WITHOUT_CONTEXT does), and with `count_tokens` a prompt
that leaves no room is a 400 before generate() is called.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .errors import BadRequest, PredictorLoadError, PredictorRaised
from .metrics import Metrics
from .streaming import Source

# Sampling parameters handed to generate() when a request sets them and generate() names them.
SAMPLING = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")
# Rule: every number parsed from a client is range-checked before use. max_tokens 10^7 held a slot
# for minutes; where a model does not say its context, this is the most one request may ask for.
MAX_TOKENS_WITHOUT_CONTEXT = 32768


class ParamError(BadRequest):
    """A 400 about one request parameter, which OpenAI's error shape names in `param`."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


class Generator:
    """A predictor's `generate` (and `count_tokens`), with what it can honour read off its signature."""

    def __init__(self, instance: Any, executor: ThreadPoolExecutor):
        self.fn = instance.generate
        self.executor = executor
        self.counter = getattr(instance, "count_tokens", None)
        params = inspect.signature(self.fn).parameters.values()
        self.any_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
        self.names = {p.name for p in params if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)}
        if not self.any_keyword and "max_tokens" not in self.names:
            raise PredictorLoadError(f"{type(instance).__name__}.generate must take max_tokens: def generate(self, prompt, *, max_tokens, ...)")
        context = getattr(instance, "context_length", None)
        if context is not None and (not isinstance(context, int) or isinstance(context, bool) or context < 1):
            raise PredictorLoadError(f"{type(instance).__name__}.context_length must be a positive int (the most tokens the model reads), not {context!r}")
        self.context: int | None = context

    def max_tokens(self, asked: int | None, default: int, prompt_tokens: int | None, param: str, prompt_param: str) -> int:
        """How many tokens this request may generate: what it asked for (`param`), or `default` cut to
        what fits, checked against the model's context with the prompt where it is counted."""
        if prompt_tokens == 0:
            raise ParamError(f"{prompt_param}: the prompt is empty (0 tokens); a model needs some text to continue", prompt_param)
        if self.context is None:
            room, why = MAX_TOKENS_WITHOUT_CONTEXT, f"the most this server generates for one request is {MAX_TOKENS_WITHOUT_CONTEXT}"
        else:
            if prompt_tokens is not None and prompt_tokens >= self.context:
                raise ParamError(
                    f"{prompt_param}: the prompt is {prompt_tokens} tokens; this model reads at most {self.context}, prompt and answer together", prompt_param
                )
            room = self.context - (prompt_tokens or 0)
            prompt = f", and the prompt takes {prompt_tokens}" if prompt_tokens else ""
            why = f"this model reads at most {self.context} tokens{prompt}"
        if asked is None:
            return min(default, room)
        if asked > room:
            raise ParamError(f"{param}: {asked} is more than can be generated here: at most {room} ({why})", param)
        return asked

    def sampling(self, request: dict[str, Any]) -> dict[str, Any]:
        """The sampling parameters the request set, checked against what generate() takes."""
        chosen = {name: request[name] for name in SAMPLING if request.get(name) is not None}
        for name in chosen:
            if not self.any_keyword and name not in self.names:
                raise ParamError(f"{name}: this model's generate() does not take it; leave it out", name)
        return chosen

    def start(self, prompt: Any, max_tokens: int, sampling: dict[str, Any]) -> Source:
        try:
            tokens = self.fn(prompt, max_tokens=max_tokens, **sampling)
        except Exception as exc:
            raise PredictorRaised() from exc
        if inspect.iscoroutine(tokens):  # `async def generate` that returns (not yields) an iterator
            raise PredictorRaised() from TypeError("generate() must be a generator (yield tokens), not a coroutine")
        if not (hasattr(tokens, "__next__") or hasattr(tokens, "__anext__")):
            raise PredictorRaised() from TypeError(f"generate() must return an iterator of str tokens, not {type(tokens).__name__}")
        return Source(tokens, self.executor)

    async def count(self, prompt: Any) -> int | None:
        if self.counter is None:
            return None
        try:
            if inspect.iscoroutinefunction(self.counter):
                n = await self.counter(prompt)
            else:
                n = await asyncio.get_running_loop().run_in_executor(self.executor, self.counter, prompt)
        except Exception as exc:
            raise PredictorRaised() from exc
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise PredictorRaised() from TypeError(f"count_tokens() must return an int >= 0, not {n!r}")
        return n


class StopMatcher:
    """Finds stop sequences across token boundaries: text that could be the start of one is held back
    until the next token shows whether it is."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.longest = max((len(s) for s in self.stops), default=0)
        self.buffer = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """What may be sent now, and whether a stop sequence was reached (the text before it is sent)."""
        if not self.stops:
            return text, False
        self.buffer += text
        hits = [i for i in (self.buffer.find(s) for s in self.stops) if i >= 0]
        if hits:
            out, self.buffer = self.buffer[: min(hits)], ""
            return out, True
        keep = 0
        for k in range(min(len(self.buffer), self.longest - 1), 0, -1):
            tail = self.buffer[-k:]
            if any(s.startswith(tail) for s in self.stops):
                keep = k
                break
        cut = len(self.buffer) - keep
        out, self.buffer = self.buffer[:cut], self.buffer[cut:]
        return out, False

    def flush(self) -> str:
        out, self.buffer = self.buffer, ""
        return out


class Generation:
    """One run: the text pieces to send, with max_tokens and stop applied and the token metrics kept.
    `finish_reason` is "length" when max_tokens ended it, else "stop"; `tokens` counts what generate
    yielded. The caller closes `source` when done (early or not), which stops the generator."""

    def __init__(self, source: Source, max_tokens: int, stops: list[str], metrics: Metrics, started: float):
        self.source = source
        self.max_tokens = max_tokens
        self.matcher = StopMatcher(stops)
        self.metrics = metrics
        self.started = started
        self.tokens = 0
        self.finish_reason = "stop"

    async def pieces(self) -> AsyncIterator[str]:
        last: float | None = None
        if self.max_tokens == 0:
            self.finish_reason = "length"
            return
        async for token in self.source:
            if not isinstance(token, str):
                raise PredictorRaised() from TypeError(f"generate() must yield str tokens, not {type(token).__name__}")
            now = time.perf_counter()
            if last is None:
                self.metrics.time_to_first_token.observe(now - self.started)
            else:
                self.metrics.inter_token_latency.observe(now - last)
            last = now
            self.tokens += 1
            self.metrics.generated_tokens.inc()
            text, stopped = self.matcher.feed(token)
            if text:
                yield text
            if stopped:
                return
            if self.tokens >= self.max_tokens:
                self.finish_reason = "length"
                break
        rest = self.matcher.flush()
        if rest:
            yield rest
