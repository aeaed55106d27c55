"""The nesting check on raw JSON bytes agrees with the parsed document's depth, strings and escapes included."""

from __future__ import annotations

import random

import orjson
import pytest

from mlkit_runtime.payloads import too_deep


def depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


TRICKY_STRINGS = ['a"[', "]]\\", "{", '\\"]', "", "x", "[[[[", "}}}}", '\\\\"', "\\\\"]


def document(rng: random.Random, level: int = 0):
    roll = rng.random()
    if level > 9 or roll < 0.3:
        return rng.choice([*TRICKY_STRINGS, 1, 2.5, None, True])
    if roll < 0.65:
        return [document(rng, level + 1) for _ in range(rng.randint(0, 3))]
    return {f"{i}{rng.choice(TRICKY_STRINGS)}": document(rng, level + 1) for i in range(rng.randint(0, 3))}


def test_agrees_with_the_parsed_depth_on_random_documents():
    rng = random.Random(12)
    for _ in range(3000):
        value = document(rng)
        body, actual = orjson.dumps(value), depth(value)
        for limit in range(1, 12):
            assert too_deep(body, limit) == (actual > limit), (body, limit, actual)


@pytest.mark.parametrize(
    "body, limit, deep",
    [(b"[1]", 1, False), (b"[[1]]", 1, True), (b'["[[[[[["]', 1, False), (b'["]]]]",[[[1]]]]', 3, True), (b"[" * 10_000, 64, True), (b"[[]", 1, True)],
)
def test_cases(body, limit, deep):
    assert too_deep(body, limit) is deep
