"""`mlkit init`: scaffold a project that validates, renders and serves as it is."""

from __future__ import annotations

import re
import shutil
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UserError
from ..options import say

DEFAULT_EXAMPLE = "sentiment"


class Cloud(str, Enum):
    aws = "aws"
    gcp = "gcp"


def project_name(directory: Path) -> str:
    """A valid `project:` from a folder name: lowercase, '-' for anything else, 3 to 20 characters."""
    name = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")
    name = re.sub(r"^[^a-z]+", "", name)[:20].rstrip("-")
    return name if len(name) >= 3 else "mlkit-project"


def command(
    directory: Annotated[Path, typer.Argument(help="Folder to create the project in; created if missing.")],
    cloud: Annotated[Cloud | None, typer.Option("--cloud", help="Cloud to target: aws or gcp. Default: aws, or the example's.")] = None,
    example: Annotated[str | None, typer.Option("--example", help="Start from this example (see the examples/ folder): its spec, predictor and model.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Write into a folder that is not empty, replacing files of the same name.")] = False,
) -> None:
    """Create a project: a commented mlkit.yaml, predictor.py, requirements.txt and a small model.

    Without --example the project serves the sentiment example's model, with a spec for --cloud.
    """
    from .. import kit

    names = sorted(p.name for p in kit.examples().iterdir() if (p / "mlkit.yaml").is_file())
    source = kit.examples() / (example or DEFAULT_EXAMPLE)
    if not (source / "mlkit.yaml").is_file():
        raise UserError(f"--example {example}: no such example (valid: {', '.join(names)})")
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory} is a file; pick a folder name for the new project")
    if directory.exists() and any(directory.iterdir()) and not force:
        raise UserError(f"{directory} is not empty; pick a new folder, or pass --force to write into it")

    spec_text = None
    if example is None:
        spec_text = _template_spec(project_name(directory), (cloud or Cloud.aws).value)
    elif cloud is not None:
        example_cloud = _cloud_of(source / "mlkit.yaml")
        if example_cloud != cloud.value:
            raise UserError(f"--example {example} targets {example_cloud}; drop --cloud or pass --cloud {example_cloud}")

    directory.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")):
        if "__pycache__" in path.parts or path.is_dir():
            continue
        target = directory / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    if spec_text is not None:
        (directory / "mlkit.yaml").write_text(spec_text, encoding="utf-8")
    say(f"Created {directory}/ from the {source.name} example. Next:")
    say(f"  cd {directory} && mlkit validate && mlkit render")


def _template_spec(project: str, cloud: str) -> str:
    import jinja2

    from .. import kit

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(kit.templates() / "project")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env.get_template("mlkit.yaml.j2").render(project=project, cloud=cloud)


def _cloud_of(spec_file: Path) -> str:
    import yaml

    return (yaml.safe_load(spec_file.read_text(encoding="utf-8")) or {}).get("cloud", "aws")
