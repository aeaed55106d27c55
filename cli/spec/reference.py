"""The spec reference in Markdown, generated from the models' field descriptions (the docs site's reference/spec page, built by scripts/docs_reference.py)."""

from __future__ import annotations

import json
import typing

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .loader import _model_of
from .schema import Spec


def _type_name(annotation: typing.Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_name(a) for a in args if a is not type(None))
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map of {_type_name(args[1])}"
    if isinstance(annotation, type):
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "Any": "any"}.get(annotation.__name__, annotation.__name__)
    return "any"


def _default(field: FieldInfo) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.get_default(call_default_factory=True)  # the spec's factories take no arguments
    if isinstance(value, BaseModel):
        return "see below"
    if value is None or value == {} or value == []:
        return "—"
    return f"`{json.dumps(value)}`"


def markdown() -> str:
    sections: list[str] = []
    seen: set[type[BaseModel]] = set()

    def visit(model: type[BaseModel], path: str) -> None:
        if model in seen:
            return
        seen.add(model)
        rows = ["| field | type | default | description |", "| --- | --- | --- | --- |"]
        children: list[tuple[type[BaseModel], str]] = []
        for name, field in model.model_fields.items():
            rows.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {field.description or ''} |")
            child = _model_of(field.annotation)
            if child is not None:
                suffix = "[]" if typing.get_origin(field.annotation) is list else ""
                children.append((child, f"{path}.{name}{suffix}" if path else f"{name}{suffix}"))
        title = f"`{path}`" if path else "top level"
        sections.append(f"#### {title}\n\n{(model.__doc__ or '').strip()}\n\n" + "\n".join(rows))
        for child, child_path in children:
            visit(child, child_path)

    visit(Spec, "")
    return "\n\n".join(sections) + "\n"
