"""What every `mlkit job` command reads: the options they share, the batch API a spec names, the input
items and the job prepared under the output prefix. Its own module so that job.py, which registers the
commands, and job_submit.py / job_status.py, which it registers, import it rather than each other."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import UserError

if TYPE_CHECKING:
    from ..spec.schema import Api, BatchSpec, Spec

InputOption = Annotated[
    str,
    typer.Option(
        "--input",
        "-i",
        help="The items: a JSONL file (one JSON item per line; `@items.jsonl`, a path, or s3://.../x.jsonl, gs://.../x.jsonl), "
        "or a folder or bucket prefix of files, each an item the predictor gets as bytes.",
    ),
]
BatchSize = Annotated[int | None, typer.Option("--batch-size", min=1, max=4096, help="Items per predict_batch call; default: the API's batch.batch_size.")]
Workers = Annotated[int | None, typer.Option("--workers", "-w", min=1, max=1000, help="Shards at once; default: the API's batch.workers.")]
ConfigOption = Annotated[str | None, typer.Option("--config", help="Predictor config for this job, a JSON object replacing the API's `config`.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace the results of an earlier job under the output prefix.")]


@dataclass(frozen=True)
class Items:
    form: str  # jsonl | files
    uri: str  # what the worker reads: a file or object (jsonl), a folder or prefix (files)


def items_of(value: str) -> Items:
    """`@file.jsonl` or a local file: JSONL; a local folder: files; a bucket URI: JSONL if it ends in .jsonl, else a prefix of files."""
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise UserError(f"--input {value}: no such file; give a JSONL file with one item per line")
        return Items("jsonl", str(path.resolve()))
    if "://" in value:
        return Items("jsonl" if value.endswith(".jsonl") else "files", value.rstrip("/") if not value.endswith(".jsonl") else value)
    path = Path(value)
    if path.is_file():
        return Items("jsonl", str(path.resolve()))
    if path.is_dir():
        return Items("files", str(path.resolve()))
    raise UserError(f"--input {value}: no such file or folder")


def job_config(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"--config: not JSON ({exc.msg} at column {exc.colno}); give an object, e.g. '{{\"threshold\": 0.7}}'") from None
    if not isinstance(value, dict):
        raise UserError("--config: must be a JSON object, e.g. '{\"threshold\": 0.7}'")
    return value


def batch_api(file: Path, api: str | None, verb: str, kinds: tuple[str, ...] = ("batch",)) -> tuple[Spec, Api, BatchSpec, Path]:
    from ..spec.schema import BatchSpec
    from .serve import chosen_api

    spec, chosen, root = chosen_api(file, api, verb)
    if chosen.kind not in kinds:
        runs = " or ".join(f"`kind: {k}`" for k in kinds)
        raise UserError(f"{chosen.name} is `kind: {chosen.kind}`; `mlkit {verb}` runs {runs} APIs (set the kind on it in {file})")
    return spec, chosen, chosen.batch or BatchSpec(), root


def prepare_job(
    api: Api, batch: BatchSpec, items: Items, output: str, batch_size: int | None, config: dict[str, Any] | None, overwrite: bool,
    job_id: str | None = None, form: Any = None, checked: bool = False,
) -> Any:
    """Split the input into shards under the output prefix and write job.json: every check before any work.

    `form`: the predictor's `Input` model (mlkit_runtime/input_form.py), or None; every JSONL item is checked
    against it first, and the first it refuses is one line (its line number and field), before any shard exists.
    `checked`: the predictor's class was imported here, so `form` is what its pods would check (None: it has no
    Input); job.json says so and the workers do not check the items again. False: each pod checks them.
    """
    from mlkit_runtime.jobs.layout import Job, JobError, input_files, input_lines, new_id, prepare
    from mlkit_runtime.jobs.storage import StorageError, open_store

    try:
        lines = input_lines(items.uri) if items.form == "jsonl" else input_files(items.uri)
        if form is not None and items.form == "jsonl":
            check_items(items.uri, lines, form, api.predictor or "")
        job = Job(
            id=job_id or new_id(api.name),
            api=api.name,
            form=items.form,
            input=items.uri,
            items=len(lines),
            shard_size=batch.shard_size,
            batch_size=batch_size or batch.batch_size,
            on_error=batch.on_error,
            fatal_errors=list(batch.fatal_errors),
            config=config,
            created=round(time.time(), 3),
            checked=checked,
        )
        prepare(open_store(output), job, lines, overwrite)
    except (JobError, StorageError) as exc:
        raise UserError(str(exc)) from None
    return job


def check_items(uri: str, lines: list[bytes], form: Any, predictor: str) -> None:
    """The first JSONL item the predictor's `Input` refuses, as one line. A line that is not JSON is left to the
    worker: `on_error` decides about it (with its line number), as it does without a form."""
    from mlkit_runtime import input_form

    for n, line in enumerate(lines, 1):
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if bad := input_form.problem(form, item):
            raise UserError(f"--input {uri}: line {n} (item {n - 1}) does not fit {predictor}'s Input: {bad}; "
                            "fix the item, or the Input model if it is too strict (no shard was written)")


def input_form_of(root: Path, predictor: str) -> tuple[Any, bool]:
    """For `mlkit job submit`: the predictor's `Input` model (or None) and whether the class could be imported here,
    as `mlkit job run` does. Where it cannot (torch not installed locally), a line says so and each pod checks the
    items against the class it imports (the worker, under on_error)."""
    from mlkit_runtime import input_form
    from mlkit_runtime.errors import PredictorLoadError
    from mlkit_runtime.predictor import load_class

    from ..options import say

    file_part, _, class_name = predictor.partition(":")
    try:
        return input_form.of(load_class(f"{root / file_part}:{class_name}")), True
    except PredictorLoadError as exc:
        say(f"note: the items are not checked against the predictor's Input here (each pod checks them): {exc}")
        return None, False
