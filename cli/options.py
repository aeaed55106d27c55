"""Options shared by several commands, declared once; and `state`, the global options' values (app.py's
callback sets them; __main__ and the commands read them here, not from app.py, which imports them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

SpecFile = Annotated[
    Path,
    typer.Option("--file", "-f", help="Spec file; the project is the folder it is in.", show_default=True),
]
ApiName = Annotated[str, typer.Argument(help="API name from mlkit.yaml.")]
JsonOut = Annotated[bool, typer.Option("--json", help="Write machine-readable JSON to stdout (messages stay on stderr).")]
AutoApprove = Annotated[bool, typer.Option("--auto-approve", help="Do not ask before changing anything (for automation).")]

DEFAULT_SPEC = Path("mlkit.yaml")


@dataclass
class State:
    debug: bool = False


state = State()


def say(message: str) -> None:
    """Messages for people go to stderr; stdout is for data."""
    typer.echo(message, err=True)


def confirm(question: str) -> bool:
    """Ask on stderr; no answer (end of input) is a no."""
    try:
        return typer.confirm(question, default=False, err=True)
    except typer.Abort:
        return False
