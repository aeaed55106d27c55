"""`mlkit schema`: the JSON Schema of mlkit.yaml, for editors and CI."""

from __future__ import annotations

import json


def command() -> None:
    """Print the JSON Schema of mlkit.yaml (point your editor's YAML language server at it)."""
    from ..spec import Spec

    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "mlkit.yaml"
    print(json.dumps(schema, indent=2))
