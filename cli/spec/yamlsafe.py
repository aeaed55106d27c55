"""YAML parsing with bounds: alias expansion, nesting depth and recursive anchors.

PyYAML's safe loader expands aliases as it builds Python objects, so a 2 KB spec with nested
aliases (a "billion laughs") takes gigabytes and minutes; a deeply nested one overflows the stack.
Composing keeps aliases as shared nodes, cheaply, so here the composer counts the nodes the
document would have once expanded (an alias adds the memoised size of its anchor, without building
anything) and refuses, at the alias's line, once that count passes a bound. Only then are Python
objects built.
"""

from __future__ import annotations

from typing import cast

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.error import Mark
from yaml.events import AliasEvent, Event

# Nodes of the expanded document: a spec has hundreds; 512 KiB of config has at most some 100k.
MAX_NODES = 200_000
# Nesting of mappings and sequences; a spec is about 6 deep.
MAX_DEPTH = 64
# Every number parsed is range-checked before use: digits of a YAML integer. Python refuses to convert
# more than 4300 (a ValueError traceback); no count, size or port needs more than a handful.
MAX_INT_DIGITS = 100


class ValueOutOfRange(ConstructorError):
    """A well-formed YAML value past a bound (not a syntax error)."""


class _BoundedLoader(yaml.SafeLoader):
    def __init__(self, text: str):
        super().__init__(text)
        self._expanded = 0
        self._depth = 0
        self._shape: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, expanded depth)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # types-PyYAML leaves Parser.peek_event unannotated; it returns the next parser Event.
        event: Event = self.peek_event()  # type: ignore[no-untyped-call]
        # The pure-Python SafeLoader makes yaml.error.Mark; the stubs also allow the C parser's Mark.
        mark = cast("Mark | None", event.start_mark)
        if isinstance(event, AliasEvent):
            node = self.anchors.get(event.anchor)
            if node is not None:
                # A collection is given its end mark once its last child is composed: one without
                # it is still open, so the alias sits inside its own anchor.
                if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) and node.end_mark is None:
                    problem = f"the alias *{event.anchor} sits inside its own anchor (a recursive alias); a spec cannot hold one"
                    raise ComposerError(None, None, problem, mark)
                nodes, depth = self._measure(node)
                if self._depth + depth > MAX_DEPTH:
                    problem = f"the alias *{event.anchor} nests the document more than {MAX_DEPTH} levels deep; write the values out"
                    raise ComposerError(None, None, problem, mark)
                self._count(nodes, mark)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep; a spec needs a handful", mark)
        self._count(1, mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = sum(ch.isdigit() for ch in node.value)
        if digits > MAX_INT_DIGITS:
            raise ValueOutOfRange(None, None, f"a number of {digits} digits; numbers here have at most {MAX_INT_DIGITS}", node.start_mark)
        return super().construct_yaml_int(node)

    def _count(self, n: int, mark: Mark | None) -> None:
        self._expanded += n
        if self._expanded > MAX_NODES:
            raise ComposerError(
                None,
                None,
                f"aliases expand the document past {MAX_NODES} nodes here (a 'billion laughs'); write the values out or nest fewer aliases",
                mark,
            )

    def _measure(self, node: yaml.Node) -> tuple[int, int]:
        """Nodes and depth of `node` once expanded, memoised by identity so shared subtrees cost nothing.
        Its own aliases were measured when they were composed, so this recursion is at most MAX_DEPTH deep."""
        key = id(node)
        if key not in self._shape:
            if isinstance(node, yaml.MappingNode):
                children = [self._measure(n) for pair in node.value for n in pair]
            elif isinstance(node, yaml.SequenceNode):
                children = [self._measure(n) for n in node.value]
            else:
                children = []
            self._shape[key] = (1 + sum(n for n, _ in children), 1 + max((d for _, d in children), default=0))
        return self._shape[key]


_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)


def compose(text: str) -> tuple[yaml.Node | None, object]:
    """The node tree (for line numbers) and the Python data of one YAML document, both bounded."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return node, data


def load_all(text: str) -> list[object]:
    """The Python data of every document of a YAML stream (Kubernetes manifests), under the same bounds
    as one spec, counted over the whole stream: yaml.safe_load_all expands a billion laughs."""
    loader = _BoundedLoader(text)
    try:
        docs = []
        while loader.check_node():
            node = loader.get_node()
            docs.append(loader.construct_document(node) if node is not None else None)
        return docs
    finally:
        loader.dispose()
