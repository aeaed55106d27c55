"""`mlkit schema`: the JSON Schema of mlkit.yaml, for editors and CI, or the spec reference in Markdown."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated

import typer


class Format(str, Enum):
    json = "json"
    markdown = "markdown"


def command(
    format: Annotated[Format, typer.Option("--format", help="json: JSON Schema for editors; markdown: the spec reference table.")] = Format.json,
) -> None:
    """Print the JSON Schema of mlkit.yaml (point your editor's YAML language server at it)."""
    if format is Format.markdown:
        from ..spec.reference import markdown

        print(markdown(), end="")
        return
    from ..spec.schema import Spec

    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mlkit.yaml"
    print(json.dumps(schema, indent=2))
