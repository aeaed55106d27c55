"""`mlkit job ...`: batch jobs of a `kind: batch` API. `run` does the whole job on this machine with
the worker code its pods run (runtime/jobs), in `--workers` processes."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import UserError
from ..options import DEFAULT_SPEC, JsonOut, SpecFile, say

if TYPE_CHECKING:
    from ..spec import Spec
    from ..spec.schema import Api, BatchSpec

app = typer.Typer(
    help="Batch jobs of `kind: batch` APIs: a dataset's items through the predictor, shard by shard.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

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
    api: Api, batch: BatchSpec, items: Items, output: str, batch_size: int | None, config: dict[str, Any] | None, overwrite: bool, job_id: str | None = None
) -> Any:
    """Split the input into shards under the output prefix and write job.json: every check before any work."""
    from mlkit_runtime.jobs.layout import Job, JobError, input_files, input_lines, new_id, prepare
    from mlkit_runtime.jobs.storage import StorageError, open_store

    try:
        lines = input_lines(items.uri) if items.form == "jsonl" else input_files(items.uri)
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
        )
        prepare(open_store(output), job, lines, overwrite)
    except (JobError, StorageError) as exc:
        raise UserError(str(exc)) from None
    return job


def run(
    api: Annotated[str | None, typer.Argument(help="A `kind: batch` API; may be left out when the spec has one API.")] = None,
    input: InputOption = ...,  # type: ignore[assignment]
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the job: its shards, results/, errors/ and done markers.")] = ...,  # type: ignore[assignment]
    workers: Workers = None,
    batch_size: BatchSize = None,
    config: ConfigOption = None,
    overwrite: Overwrite = False,
    model_dir: Annotated[Path | None, typer.Option("--model-dir", help="Local model folder, instead of the spec's `model`.")] = None,
    file: SpecFile = DEFAULT_SPEC,
    as_json: JsonOut = False,
) -> None:
    """Run a batch job on this machine: the items through the API's predictor, in --workers processes.

    Results: OUTPUT/results/NNNNN.jsonl, one line per item, {"index": N, "result": ...}; skipped items (on_error: skip) in OUTPUT/errors/.
    """
    from mlkit_runtime.errors import PredictorLoadError
    from mlkit_runtime.jobs.layout import JobError
    from mlkit_runtime.jobs.pool import run_all
    from mlkit_runtime.jobs.storage import StorageError
    from mlkit_runtime.predictor import load_class

    from .serve import local_model_dir

    spec, chosen, batch, root = batch_api(file, api, "job run")
    folder = local_model_dir(file, spec, chosen, root, model_dir, "run a job of")
    file_part, _, class_name = (chosen.predictor or "").partition(":")
    predictor = f"{root / file_part}:{class_name}"
    try:
        load_class(predictor)  # an import error is one line here, before any shard is written
    except PredictorLoadError as exc:
        raise UserError(str(exc)) from None
    if output.exists() and not output.is_dir():
        raise UserError(f"--output {output}: is a file; give a folder for the job's results")
    job_settings = job_config(config)
    job = prepare_job(chosen, batch, items_of(input), str(output), batch_size, job_settings, overwrite)
    width = max(1, min(workers or batch.workers, job.shards))
    say(f"job {job.id}: {job.items} items in {job.shards} shards of {job.shard_size}, batches of {job.batch_size}, {width} worker(s)")
    started = time.monotonic()
    done = 0

    def progress(report: Any) -> None:
        nonlocal done
        done += 1
        say(f"  shard {report.shard}: {report.ok} results, {report.failed} skipped ({done}/{job.shards} shards)")

    try:
        outcome = run_all(str(output), predictor, str(folder), job_settings if job_settings is not None else chosen.config, width, batch.retries,
                          on_shard=progress)
    except (PredictorLoadError, JobError, StorageError) as exc:
        raise UserError(str(exc)) from None
    seconds = time.monotonic() - started
    ok = sum(r.ok for r in outcome.reports)
    skipped = sum(r.failed for r in outcome.reports)
    summary = {
        "id": job.id,
        "items": job.items,
        "results": ok,
        "skipped": skipped,
        "shards": job.shards,
        "shards_done": len(outcome.reports),
        "shards_failed": {str(k): v for k, v in sorted(outcome.failed.items())},
        "seconds": round(seconds, 3),
        "items_per_s": round((ok + skipped) / seconds, 1) if seconds > 0 else None,
        "output": str(output),
    }
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        typer.echo(f"{job.id}: {ok} results, {skipped} skipped, {len(outcome.failed)} of {job.shards} shards failed, "
                   f"{seconds:.1f} s ({summary['items_per_s']} items/s) -> {output / 'results'}")
    for shard, message in sorted(outcome.failed.items()):
        say(f"error: shard {shard} failed after {outcome.attempts[shard]} attempt(s): {message}")
    if outcome.failed:
        raise typer.Exit(1)


app.command("run")(run)

# The cluster side, in their own modules (imported here so that `mlkit job --help` lists them all).
from . import job_status, job_submit  # noqa: E402

app.command("submit")(job_submit.submit)
app.command("status")(job_status.status)
app.command("list")(job_status.list_jobs)
app.command("logs")(job_status.logs)
app.command("cancel")(job_status.cancel)
