"""The Typer app: global options and one command per module in `mlkit.commands`.

Command modules import their heavy dependencies (pydantic, jinja2) inside the command, so that
`mlkit --help` stays fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from . import __version__
from .commands import apply, bench, build, delete, destroy, history, init, job, logs, plan, predict, render, rollback, schema, serve, status, token, validate
from .options import state

app = typer.Typer(
    name="mlkit",
    help=(
        "Production model serving on Kubernetes from one spec file.\n\n"
        "mlkit reads mlkit.yaml, renders it into Terraform and Kubernetes manifests under infra/ "
        "(yours to read and edit: re-rendering keeps your edits), and applies them.\n\n"
        "Start with: mlkit init my-project && cd my-project && mlkit render"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"mlkit {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    state.debug = debug


app.command("init")(init.command)
app.command("validate")(validate.command)
app.command("schema")(schema.command)
app.command("render")(render.command)
app.command("plan")(plan.command)
app.command("apply")(apply.command)
app.command("build")(build.command)
app.command("status")(status.command)
app.command("history")(history.command)
app.command("rollback")(rollback.command)
app.command("logs")(logs.command)
app.command("predict")(predict.command)
app.command("delete")(delete.command)
app.command("destroy")(destroy.command)
app.command("serve")(serve.command)
app.command("token")(token.command)
app.command("bench")(bench.command)
app.add_typer(job.app, name="job")
