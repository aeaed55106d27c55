"""JSON that comes from outside mlkit, parsed with bounds: request bodies the user gives (`mlkit predict`,
`mlkit bench`) and the JSON files under .mlkit/ (which may come from someone else's pull request).

Rule: every number parsed is range-checked before use. Python's `json` turns a 5000-digit integer into
a ValueError (the int str-digits limit) and `NaN` or `1e400` into floats no JSON peer accepts, and
recurses once per level of nesting. Here a number must fit a double (what the runtime's parser and
most clients read), NaN and Infinity are refused, and nesting is bounded; each problem is one
`BadJson` whose message says what and where, for the caller to put after the file's name.
"""

from __future__ import annotations

import json
import math
from typing import Any

# The runtime's default --max-json-depth: a deeper body only earns a 400 after it is sent.
MAX_DEPTH = 64
# A double holds about 1.8e308: an integer with more digits is infinite to every JSON peer that reads
# numbers as doubles (the runtime's orjson reads integers past 64 bits so).
MAX_INT_DIGITS = 309


class BadJson(ValueError):
    """JSON text mlkit will not use; str() is one line."""


def _int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise BadJson(f"an integer of {digits} digits (at most {MAX_INT_DIGITS}: larger numbers are infinite as doubles)")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadJson(f"the number {text[:40]}{'...' if len(text) > 40 else ''} is too large to be finite")
    return value


def _constant(text: str) -> Any:
    raise BadJson(f"{text} is not JSON (NaN and Infinity are Python's extension; no other parser reads them)")


def depth(value: Any) -> int:
    """How deeply arrays and objects nest in parsed JSON (a scalar: 0); iterative, so any depth is safe."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            level += 1
            deepest = max(deepest, level)
            stack.extend((child, level) for child in item if isinstance(child, (dict, list)))
    return deepest


def loads(text: str | bytes, max_depth: int = MAX_DEPTH, **kwargs: Any) -> Any:
    """Parse JSON text; raises BadJson (one line) for malformed text, unbounded numbers or deep nesting."""
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant, **kwargs)
    except json.JSONDecodeError as exc:
        raise BadJson(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise BadJson(f"nested more than {max_depth} levels deep") from None
    except UnicodeDecodeError as exc:
        raise BadJson(f"not UTF-8 text (byte {exc.start + 1}: {exc.reason})") from None
    if depth(value) > max_depth:
        raise BadJson(f"nested more than {max_depth} levels deep")
    return value
