"""Bounded YAML: aliases, nesting and recursive anchors are refused at their line, fast and in little
memory, while ordinary anchors and merge keys keep working."""

from __future__ import annotations

import time
import tracemalloc

import pytest
import yaml

from mlkit.spec.yamlsafe import MAX_DEPTH, compose


def laughs(levels: int) -> str:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_a_billion_laughs_is_refused_at_its_line_fast_and_small():
    text = laughs(10)  # 10**10 nodes once expanded, in under 1 KB
    assert len(text) < 1000
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(yaml.YAMLError) as info:
        compose(text)
    took = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert took < 1.0 and peak < 20 * 1024 * 1024, (took, peak)
    assert "past 200000 nodes" in info.value.problem
    assert info.value.problem_mark.line + 1 == 6  # l5 is the first level past the bound


def test_shared_anchors_and_merge_keys_still_load():
    node, data = compose("base: &b {cpu: 1, memory: 2Gi}\na: {<<: *b, cpu: 2}\nb: *b\n")
    assert data == {"base": {"cpu": 1, "memory": "2Gi"}, "a": {"cpu": 2, "memory": "2Gi"}, "b": {"cpu": 1, "memory": "2Gi"}}
    assert node is not None


@pytest.mark.parametrize(
    "text, words, line",
    [
        ("a: &a [1, *a]\n", "sits inside its own anchor", 1),
        ("x: 1\na: &a {b: *a}\n", "sits inside its own anchor", 2),
        ("a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n", f"nested more than {MAX_DEPTH} levels deep", 1),
        ("d: &d " + "[" * 40 + "]" * 40 + "\ne: " + "[" * 30 + "*d" + "]" * 30 + "\n", "nests the document more than", 2),
        ("a: 1\n---\nb: 2\n", "but found another document", 2),
    ],
)
def test_hostile_shapes_are_refused_at_their_line(text, words, line):
    with pytest.raises(yaml.YAMLError) as info:
        compose(text)
    assert words in info.value.problem and info.value.problem_mark.line + 1 == line


def test_empty_text_is_no_document():
    assert compose("") == (None, None)
