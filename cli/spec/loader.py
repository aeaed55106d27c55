"""Read `mlkit.yaml` into a Spec, or fail with every problem as `file:line:col: field.path: message`."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import SpecError
from . import rules
from .schema import DNS_LABEL, PERCENT_OR_INT, QUANTITY, Spec

Loc = tuple[str | int, ...]

# Pattern failures in words a person can act on.
_PATTERN_HELP = {
    DNS_LABEL: "must be a DNS label: lowercase letters, digits and '-', starting with a letter (e.g. sentiment, gpu-pool)",
    QUANTITY: "is not a Kubernetes quantity (valid: e.g. 500m, 1, 2 for cpu; 512Mi, 2Gi for memory)",
    PERCENT_OR_INT: "must be a count or a percentage (e.g. 1 or 25%)",
    r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$": "must be 3 to 20 lowercase letters, digits or '-', starting with a letter (it prefixes bucket and cluster names)",
    r"^[A-Za-z0-9_./-]+\.py:[A-Za-z_][A-Za-z0-9_]*$": "must name a class in a Python file as file.py:ClassName (e.g. predictor.py:Predictor)",
    r"^vpc-[0-9a-f]+$": "is not a VPC ID (e.g. vpc-0a1b2c3d)",
    r"^subnet-[0-9a-f]+$": "is not a subnet ID (e.g. subnet-0a1b2c3d)",
}


class Positions:
    """Line and column (1-based) of every key and value in a YAML document, by field path."""

    def __init__(self, root: yaml.Node | None):
        self.values: dict[Loc, yaml.Node] = {}
        self.keys: dict[Loc, yaml.Node] = {}
        self.duplicates: list[Loc] = []
        if root is not None:
            self._walk(root, ())

    def _walk(self, node: yaml.Node, loc: Loc) -> None:
        self.values[loc] = node
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = loc + (key.value,)
                if child in self.keys:
                    self.duplicates.append(child)
                self.keys[child] = key
                self._walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._walk(item, loc + (i,))

    def mark(self, loc: Loc, key: bool = False) -> tuple[int, int]:
        """Where to point for a problem at `loc`: the key itself, its value, or the nearest parent that exists."""
        while loc:
            node = (self.keys if key else self.values).get(loc) or self.values.get(loc)
            if node is not None:
                return node.start_mark.line + 1, node.start_mark.column + 1
            loc = loc[:-1]
        return 1, 1


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load(path: Path) -> Spec:
    """Parse and check a spec file. Raises SpecError listing every problem; never a traceback."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([f"{path}: no such file; run `mlkit init DIR` to create a project, or pass -f PATH"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"{path}: cannot read the spec: {exc}"]) from None
    return loads(text, str(path))


def loads(text: str, name: str = "mlkit.yaml") -> Spec:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([f"{where}: YAML syntax: {problem}"]) from None
    pos = Positions(root)
    if data is None:
        raise SpecError([f"{name}: the spec is empty; run `mlkit init DIR` for a commented example"])
    if not isinstance(data, dict):
        raise SpecError([f"{name}:1:1: the spec must be a mapping of fields (project:, cloud:, ...), not a {type(data).__name__}"])

    problems = [f"{name}:{_at(pos, loc, True)}: {dotted(loc)}: given twice; YAML keeps only the last one, remove one" for loc in pos.duplicates]
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        problems += [_pydantic_problem(name, pos, err) for err in exc.errors()]
        raise SpecError(problems) from None
    problems += [f"{name}:{_at(pos, p.loc)}: {dotted(p.loc)}: {p.message}" for p in rules.check(spec)]
    if problems:
        raise SpecError(problems)
    return spec


def _at(pos: Positions, loc: Loc, key: bool = False) -> str:
    line, col = pos.mark(loc, key)
    return f"{line}:{col}"


def _pydantic_problem(name: str, pos: Positions, err: dict[str, Any]) -> str:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        field = str(loc[-1])
        valid = _fields_at(loc[:-1])
        close = difflib.get_close_matches(field, valid, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        return f"{name}:{_at(pos, loc, key=True)}: {dotted(loc)}: unknown field; {hint}(valid: {', '.join(valid)})"
    if kind == "missing":
        return f"{name}:{_at(pos, loc[:-1])}: {dotted(loc)}: required field is missing"
    if kind == "literal_error":
        valid = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        return f"{name}:{_at(pos, loc)}: {dotted(loc)}: {err['input']!r} is not allowed (valid: {valid})"
    if kind == "string_pattern_mismatch":
        help_ = _PATTERN_HELP.get(ctx.get("pattern", ""), f"does not match {ctx.get('pattern')}")
        return f"{name}:{_at(pos, loc)}: {dotted(loc)}: {err['input']!r} {help_}"
    if kind == "yaml_number":
        node = pos.values.get(loc)
        raw = node.value if isinstance(node, yaml.ScalarNode) else ctx.get("example")
        return f'{name}:{_at(pos, loc)}: {dotted(loc)}: YAML reads {raw} as the number {ctx.get("number")}; quote it: "{raw}"'
    return f"{name}:{_at(pos, loc)}: {dotted(loc)}: {err['msg']}"


def _fields_at(loc: Loc) -> list[str]:
    """Field names of the model at a location, for 'unknown field' messages."""
    model: type[BaseModel] = Spec
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        model = _model_of(field.annotation)
        if model is None:
            return []
    return list(model.model_fields)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
