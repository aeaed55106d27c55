"""`mlkit job ...`: batch jobs of a `kind: batch` API. `run` does the whole job on this machine with
the worker code its pods run (runtime/jobs), in `--workers` processes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import UserError
from ..options import DEFAULT_SPEC, JsonOut, SpecFile, say
from .job_inputs import BatchSize, ConfigOption, InputOption, Overwrite, Workers, batch_api, items_of, job_config, prepare_job

app = typer.Typer(
    help="Batch jobs of `kind: batch` APIs: a dataset's items through the predictor, shard by shard.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


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
    from mlkit_runtime import input_form
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
        form = input_form.of(load_class(predictor))  # an import error is one line here, before any shard is written
    except PredictorLoadError as exc:
        raise UserError(str(exc)) from None
    if output.exists() and not output.is_dir():
        raise UserError(f"--output {output}: is a file; give a folder for the job's results")
    job_settings = job_config(config)
    job = prepare_job(chosen, batch, items_of(input), str(output), batch_size, job_settings, overwrite, form=form, checked=True)
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
