"""MkDocs hook (mkdocs.yml `hooks:`): the reference pages are generated from the code at every build.

The spec reference comes from the schema's field descriptions (`mlkit.spec.reference`), the CLI reference
from the Typer app, and the runtime's routes from its FastAPI OpenAPI document. None of them is a file in
docs/, so none can drift from the code: a field, option or route exists in the site exactly when it
exists in the code being built.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

SPEC_INTRO = """# Spec reference

Every field of `mlkit.yaml`, generated at build time from the field descriptions in `cli/spec/schema.py`
(the same text as `mlkit schema --format markdown`; `mlkit schema` gives the JSON Schema for editors:
see [editor completion](../guides/editor-completion.md)). Unknown fields are refused.

"""


def spec_page() -> str:
    from mlkit.spec.reference import markdown

    # The generator's sections are level-4 headings (they sat under the README's "Spec reference");
    # on a page of their own they are its sections.
    return SPEC_INTRO + re.sub(r"^#### ", "## ", markdown(), flags=re.M)


def cli_page() -> str:
    import typer
    from typer.cli import get_docs_for_click

    from mlkit.app import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command, info_name="mlkit")
    body = get_docs_for_click(obj=command, ctx=ctx, name="mlkit", title="CLI reference")
    intro = (
        "Generated at build time from the Typer app (`cli/app.py` and `cli/commands/`): the same text as "
        "`mlkit COMMAND --help`. An overview with examples: [commands](../concepts/commands.md).\n\n"
    )
    first, rest = body.split("\n", 1)
    return first + "\n\n" + intro + rest.lstrip("\n")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def openapi() -> dict[str, Any]:
    from mlkit_runtime.app import create_app
    from mlkit_runtime.settings import Settings

    # The app is only built, never started: no predictor is imported and no port opened.
    document: dict[str, Any] = create_app(Settings(name="model")).openapi()
    return document


def routes_page(document: dict[str, Any]) -> str:
    lines = [
        "# Runtime routes",
        "",
        "Generated at build time from the runtime's own OpenAPI document (`runtime/app.py` and `runtime/routes/`),",
        "for a predictor API named `model`; every running API serves the same document at `/openapi.json`",
        "([download this one](openapi.json)). What the routes do: [the predictor](../concepts/predictor.md).",
        "",
        "| method | path | what it does | statuses |",
        "| --- | --- | --- | --- |",
    ]
    details: list[str] = []
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            statuses = ", ".join(sorted(op.get("responses", {})))
            lines.append(f"| {method.upper()} | `{path}` | {_cell(op.get('summary', ''))} | {statuses} |")
            details += [f"## {method.upper()} `{path}`", "", op.get("summary", "")]
            if op.get("description"):
                details += ["", op["description"].strip()]
            body = op.get("requestBody", {}).get("content", {})
            if body:
                details += ["", "Request body: " + ", ".join(f"`{kind}`" for kind in body)]
            details += ["", "| status | meaning |", "| --- | --- |"]
            for status, response in sorted(op.get("responses", {}).items()):
                details.append(f"| {status} | {_cell(response.get('description', ''))} |")
            details.append("")
    return "\n".join(lines + [""] + details)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    document = openapi()
    generated = {
        "reference/spec.md": spec_page(),
        "reference/cli.md": cli_page(),
        "reference/routes.md": routes_page(document),
        "reference/openapi.json": json.dumps(document, indent=2, sort_keys=True) + "\n",
    }
    for path, content in generated.items():
        files.append(File.generated(config, path, content=content))
    return files


def error_classes() -> str:
    """The exception classes a user can meet, from the code: the CLI's (exit codes) and the runtime's (statuses)."""
    import inspect

    import mlkit.errors as cli_errors
    import mlkit_runtime.errors as runtime_errors

    rows = ["| raised by | class | exit code / status | what it means |", "| --- | --- | --- | --- |"]
    for module, base, attr in ((cli_errors, cli_errors.MlkitError, "exit_code"), (runtime_errors, runtime_errors.HTTPError, "status")):
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, base):
                where = "CLI (`cli/errors.py`)" if module is cli_errors else "runtime (`runtime/errors.py`)"
                rows.append(f"| {where} | `{name}` | {getattr(cls, attr)} | {_cell(cls.__doc__ or '')} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page: Any, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri == "troubleshooting.md":
        return markdown.replace("<!-- error-classes -->", error_classes())
    return markdown
