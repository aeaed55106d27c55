"""Read `mlkit.yaml` into a Spec, or fail with every problem as `file:line:col: field.path: message`."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from ..errors import SpecError
from . import naming, paths, rules, syntax
from .schema import DNS_LABEL, EXCEPTION_NAME, PERCENT_OR_INT, QUANTITY, Spec
from .yamlsafe import ValueOutOfRange, compose

Loc = tuple[str | int, ...]

# Pattern failures in words a person can act on.
_PATTERN_HELP = {
    DNS_LABEL: "must be a DNS label: lowercase letters, digits and '-', starting with a letter (e.g. sentiment, gpu-pool)",
    QUANTITY: "is not a Kubernetes quantity (valid: e.g. 500m, 1, 2 for cpu; 512Mi, 2Gi for memory)",
    PERCENT_OR_INT: "must be a count or a percentage (e.g. 1 or 25%)",
    r"^[a-z][a-z0-9-]{1,18}[a-z0-9]$": "must be 3 to 20 lowercase letters, digits or '-', starting with a letter (it prefixes bucket and cluster names)",
    r"^[A-Za-z0-9_./-]+\.py:[A-Za-z_][A-Za-z0-9_]*$": "must name a class in a Python file as file.py:ClassName (e.g. predictor.py:Predictor)",
    r"^vpc-[0-9a-f]{1,17}$": "is not a VPC ID: vpc- and up to 17 hex digits (e.g. vpc-0a1b2c3d)",
    r"^subnet-[0-9a-f]{1,17}$": "is not a subnet ID: subnet- and up to 17 hex digits (e.g. subnet-0a1b2c3d)",
    EXCEPTION_NAME: "is not an exception class name: a Python name, dotted if it lives in a module (e.g. MemoryError, mymodule.BadModel)",
}


# Bounds pydantic checks, in the same `what (valid: ...)` form as the other problems.
_BOUND_WORDS = {
    "less_than_equal": "too large (valid: at most",
    "greater_than_equal": "too small (valid: at least",
    "string_too_long": "too long (valid: at most",
    "string_too_short": "too short (valid: at least",
    "too_long": "too many (valid: at most",
    "too_short": "too few (valid: at least",
}


# Type mistakes, in words: YAML reads `yes` as true and `1.0` as a float.
_TYPE_WORDS = {
    "int_type": "a whole number (write digits only, e.g. 3)",
    "int_from_float": "a whole number (write digits only, e.g. 3)",
    "finite_number": "a finite number (e.g. 10)",
    "float_type": "a number (e.g. 10)",
    "bool_type": "true or false",
    "string_type": "a string (quote it)",
    "dict_type": "a mapping (key: value)",
    "list_type": "a list ([a, b] or '- ' items)",
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


# A spec is a page or two of YAML; `config` may carry up to 512 KiB of settings as JSON.
SPEC_MAX_BYTES = 2 * 1024 * 1024
# Strings outside `config` are names, paths and versions; none is near this long.
STRING_MAX = 1024


def load(path: Path) -> Spec:
    """Parse and check a spec file. Raises SpecError listing every problem; never a traceback.

    The project is the folder of the spec: mlkit writes infra/ there, so a spec that is a link
    (to a file elsewhere) would make another folder the project. Only a regular file is read.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise SpecError([f"{path}: no such file; run `mlkit init DIR` to create a project, or pass -f PATH"]) from None
    except OSError as exc:
        raise SpecError([f"{path}: cannot read the spec: {exc.strerror}"]) from None
    import stat

    if stat.S_ISLNK(info.st_mode):
        raise SpecError([f"{path}: is a symbolic link; the project is the folder of its spec, "
                         "so mlkit reads only a regular file: copy the target here, or pass -f with the target's path"])
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise SpecError([f"{path}: is {kind}; pass -f with the path of an mlkit.yaml file"])
    if info.st_size > SPEC_MAX_BYTES:
        raise SpecError([f"{path}: is {info.st_size} bytes; a spec is at most {SPEC_MAX_BYTES // (1024 * 1024)} MiB (put large settings in the model folder)"])
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError([f"{path}: cannot read the spec: {exc.strerror}"]) from None
    if b"\0" in data:
        raise SpecError([f"{path}: is a binary file (it holds NUL bytes), not YAML; pass -f with the path of an mlkit.yaml file"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([f"{path}: is not UTF-8 text (byte {exc.start + 1}: {exc.reason}); save it as UTF-8"]) from None
    return loads(text, str(path), root=path.parent)


def loads(text: str, name: str = "mlkit.yaml", root: Path | None = None) -> Spec:
    """Parse and check spec text. With `root` (the project folder), also check the files it names."""
    try:
        node, data = compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        problem = getattr(exc, "problem", None) or str(exc)
        kind = "YAML value" if isinstance(exc, ValueOutOfRange) else "YAML syntax"
        raise SpecError([f"{where}: {kind}: {problem}"]) from None
    pos = Positions(node)
    if data is None:
        raise SpecError([f"{name}: the spec is empty; run `mlkit init DIR` for a commented example"])
    if not isinstance(data, dict):
        raise SpecError([f"{name}:1:1: the spec must be a mapping of fields (project:, cloud:, ...), not a {type(data).__name__}"])

    problems = [f"{name}:{_at(pos, loc, True)}: {dotted(loc)}: given twice; YAML keeps only the last one, remove one" for loc in pos.duplicates]
    problems += [f"{name}:{_at(pos, loc, key)}: {dotted(loc)}: {message}" for loc, key, message in _strings(data, ())]
    if problems:
        raise SpecError(problems)
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        problems += [_pydantic_problem(name, pos, err) for err in exc.errors()]
        raise SpecError(problems) from None
    found = rules.check(spec) + naming.check(spec) + paths.check(spec, root)
    problems += [f"{name}:{_at(pos, p.loc, p.key)}: {dotted(p.loc)}: {p.message}" for p in found]
    if problems:
        raise SpecError(problems)
    return spec


def _strings(data: Any, loc: Loc, free: bool = False) -> list[tuple[Loc, bool, str]]:
    """Control characters and runaway lengths in keys and string values, before any field sees them.

    A newline, NUL or bidi override in a name would reach Terraform, a label or a log line, and
    looks like nothing on screen. Values under an API's `config` are free-form (they travel as
    JSON, which escapes them, and are bounded by size), so only their keys are checked.
    """
    out: list[tuple[Loc, bool, str]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            child = loc + (key,)
            if isinstance(key, str) and (bad := syntax.control_char(key)):
                out.append((child, True, f"the key holds the invisible character {bad}; retype it"))
            elif isinstance(key, str) and key != key.strip() and not free:
                out.append((child, True, f"the key {key!r} has spaces around it; remove them"))
            out += _strings(value, child, free or _is_config(child))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            out += _strings(value, loc + (i,), free)
    elif isinstance(data, str) and not free:
        if bad := syntax.control_char(data):
            out.append((loc, False, f"the value holds the invisible character {bad}; retype it on one line"))
        elif len(data) > STRING_MAX:
            out.append((loc, False, f"the value is {len(data)} characters long; at most {STRING_MAX}"))
    return out


def _is_config(loc: Loc) -> bool:
    """apis[i].config and apis[i].canary.config: the predictor's own settings."""
    return loc[:1] == ("apis",) and len(loc) in (3, 4) and loc[-1] == "config" and (len(loc) == 3 or loc[2] == "canary")


def _at(pos: Positions, loc: Loc, key: bool = False) -> str:
    line, col = pos.mark(loc, key)
    return f"{line}:{col}"


def _pydantic_problem(name: str, pos: Positions, err: ErrorDetails) -> str:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
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
    if kind in _BOUND_WORDS:
        # The bound itself, not the other context pydantic adds (`too_long` also carries field_type: List).
        limit = next((v for k, v in ctx.items() if k in ("le", "ge", "lt", "gt", "max_length", "min_length")), "")
        given = err["input"]
        shown = f"{len(given)} items" if isinstance(given, (list, dict)) else f"{len(given)} characters" if isinstance(given, str) else repr(given)
        return f"{name}:{_at(pos, loc)}: {dotted(loc)}: {shown} is {_BOUND_WORDS[kind]} {limit})"
    if kind in _TYPE_WORDS:
        given = err["input"]
        shown = f"a {type(given).__name__}" if isinstance(given, (dict, list)) else repr(given) if not isinstance(given, bool) else str(given).lower()
        return f"{name}:{_at(pos, loc)}: {dotted(loc)}: {shown} is not {_TYPE_WORDS[kind]}"
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
        inner = _model_of(field.annotation)
        if inner is None:
            return []
        model = inner
    return list(model.model_fields)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_of(arg)
        if found is not None:
            return found
    return None
