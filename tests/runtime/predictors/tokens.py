"""A fast text generator for the streaming and OpenAI protocol tests: its tokens are the words of a
fixed text (or of the prompt's last message, echoed), one per `delay` seconds. It writes a line to
`events` in the model folder when a generation starts and when its generator is closed, so tests can
see that a disconnect stopped it."""

import asyncio
import time
from pathlib import Path

TEXT = "one two three four five six seven eight nine ten eleven twelve"


class Predictor:
    def __init__(self, config, model_dir):
        self.delay = float(config.get("delay", 0.0))
        self.events = Path(model_dir) / "events"

    def note(self, line):
        with open(self.events, "a") as f:
            f.write(line + "\n")

    def predict(self, payload):
        """Streams: a sync generator, or an async one when the payload says {"async": true}."""
        n = int(payload.get("n", 3))
        if payload.get("fail"):
            return self._failing(n)
        if payload.get("async"):
            return self._async_items(n)
        return self._items(n)

    def _items(self, n):
        self.note("start")
        try:
            for i in range(n):
                time.sleep(self.delay)
                yield {"i": i}
        finally:
            self.note("closed")

    async def _async_items(self, n):
        self.note("start")
        try:
            for i in range(n):
                await asyncio.sleep(self.delay)
                yield f"item {i}\n"
        finally:
            self.note("closed")

    def _failing(self, n):
        yield "before\n"
        raise RuntimeError("generator broke")

    def count_tokens(self, prompt):
        return len(self._text(prompt).split())

    def _text(self, prompt):
        return prompt[-1]["content"] if isinstance(prompt, list) else prompt

    def generate(self, prompt, *, max_tokens, temperature=1.0, seed=None):
        """Tokens with their leading space, as a tokenizer's pieces: ' one', ' two', ..."""
        self.note("start")
        words = TEXT.split() if self._text(prompt) == "count" else self._text(prompt).split()
        try:
            for i, word in enumerate(words * 100):
                time.sleep(self.delay)
                yield word if i == 0 else " " + word
        finally:
            self.note("closed")


class GenerateOnly:
    """No predict: only the OpenAI routes; an async generator."""

    def __init__(self, config, model_dir):
        pass

    async def generate(self, prompt, **sampling):
        for word in ["a", " b", " c"]:
            await asyncio.sleep(0)
            yield word


class NoMaxTokens:
    def __init__(self, config, model_dir):
        pass

    def generate(self, prompt):
        yield "x"


class WithContext(Predictor):
    """The same tokens from a model that reads at most 20 tokens, prompt and answer together."""

    context_length = 20
