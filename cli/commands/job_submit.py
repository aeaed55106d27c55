"""`mlkit job submit`: split the input into shards under the output prefix, then create the Indexed Job.

Every check (the API, its built image, the input, the output prefix, --config) comes before anything
is written to the cluster: bad input never leaves a Job behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UserError
from ..options import DEFAULT_SPEC, JsonOut, SpecFile, say
from .job_inputs import BatchSize, ConfigOption, Overwrite, Workers, batch_api, input_form_of, items_of, job_config, prepare_job

if TYPE_CHECKING:
    from ..spec.schema import Api, Spec

INPUT_HELP = (
    "The items of a batch API's job: a JSONL file (one JSON item per line; `@items.jsonl`, a path, or s3://.../x.jsonl, gs://.../x.jsonl), "
    "or a bucket prefix of files, each an item the predictor gets as bytes. A task takes none."
)
# A task's --config travels in its Job (an argument of the pod's command), which the API server stores whole.
MAX_TASK_CONFIG = 64 * 1024


def submit(
    api: Annotated[str | None, typer.Argument(help="A `kind: batch` API; may be left out when the spec has one API.")] = None,
    input: Annotated[str | None, typer.Option("--input", "-i", help=INPUT_HELP)] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Bucket prefix for the job (s3://BUCKET/PREFIX or gs://BUCKET/PREFIX): shards, results, markers. It must lie under the "
            "API's `batch.output` (what its pods may write); default: <batch.output><job id>/.",
        ),
    ] = None,
    workers: Workers = None,
    batch_size: BatchSize = None,
    config: ConfigOption = None,
    overwrite: Overwrite = False,
    file: SpecFile = DEFAULT_SPEC,
    as_json: JsonOut = False,
) -> None:
    """Run a job on the cluster: a batch API's (shards in the bucket, an Indexed Job, one pod per shard) or a task's (one run of run()); prints its id."""
    import yaml

    from mlkit_runtime.jobs.layout import new_id

    from .. import clouds
    from ..cluster.connect import connect
    from ..cluster.kinds import JOB
    from ..render import facts
    from ..render.jobs import render_job

    spec, chosen, batch, root = batch_api(file, api, "job submit", kinds=("batch", "task"))
    if chosen.kind == "task":
        given = [flag for flag, value in (("--input", input), ("--output", output), ("--workers", workers), ("--batch-size", batch_size)) if value]
        if given or overwrite:
            raise UserError(f"{', '.join(given or ['--overwrite'])}: {chosen.name} is a task (one run of its class's run()); give only --config")
        submit_task(spec, chosen, root, config, as_json)
        return
    if input is None:
        raise UserError(f"--input: {chosen.name} is a batch API; give the items (a JSONL file or a bucket prefix of files)")
    if output is not None and not output.startswith(("s3://", "gs://")):
        raise UserError(f"--output {output}: the job's pods write to a bucket; give s3://BUCKET/PREFIX or gs://BUCKET/PREFIX")
    wanted = f"{clouds.of(spec).bucket_scheme}://"
    if output is not None and not output.startswith(wanted):
        raise UserError(f"--output {output}: a {spec.cloud} cluster's pods write to {wanted} buckets")
    known = facts.load(root)
    if not known.image_tag(chosen.name):
        raise UserError(f"{chosen.name} has no image yet: `mlkit apply --only apis` builds and pushes it (and its ServiceAccount and ConfigMap)")
    job_id = new_id(chosen.name)
    output = job_output(spec, chosen, file, known.aws_account_id, output, job_id)
    items = items_of(input)
    if "://" not in items.uri and items.form == "files":
        raise UserError(f"--input {input}: the pods cannot read a folder on this machine; upload it to a bucket prefix and give that")
    if items.form == "files":
        readable(spec, chosen, file, known.aws_account_id, items.uri)
    form, checked = input_form_of(root, chosen.predictor or "")
    cluster = connect(spec)  # credentials before any write: a cluster that cannot be reached leaves nothing in the bucket
    job = prepare_job(chosen, batch, items, output, batch_size, job_config(config), overwrite, job_id, form=form, checked=checked)
    text = render_job(spec, chosen, known, job.id, output, job.shards, workers or batch.workers)
    cluster.apply(yaml.safe_load(text), JOB)
    say(f"job {job.id}: {job.items} items in {job.shards} shards of {job.shard_size} under {output}; `mlkit job status {chosen.name} {job.id}`")
    typer.echo(json.dumps({"id": job.id, "items": job.items, "shards": job.shards, "output": output}) if as_json else job.id)


def _granted(spec: Spec, api: Api, account: str | None) -> str | None:
    """The prefix the API's pods may write (its `batch.output`); None while the model bucket's name is unknown."""
    from .. import clouds
    from ..clouds import jobaccess

    grant = jobaccess.grant(api)
    bucket = grant.bucket or jobaccess.model_bucket(spec, account)
    return f"{clouds.of(spec).bucket_scheme}://{bucket}/{grant.prefix}" if bucket else None


def job_output(spec: Spec, api: Api, file: Path, account: str | None, output: str | None, job_id: str) -> str:
    """--output, or its default under the API's grant; one outside the grant is refused: the pods could not write it."""
    from ..clouds import jobaccess

    granted = _granted(spec, api, account)
    if granted is None:
        raise UserError(
            f"{api.name}'s pods may write only under jobs/{api.name}/ in the model bucket, whose name holds the AWS account id "
            "`mlkit apply --only apis` records in .mlkit/deploy.json; run it first (or set batch.output)"
        )
    if output is None:
        return f"{granted}{job_id}/"
    if not jobaccess.within(output, granted):
        raise UserError(
            f"--output {output}: {api.name}'s pods may write only under {granted} (`batch.output` in {file}); "
            f"give a prefix under it, or leave --output out for {granted}<job id>/"
        )
    return output


def readable(spec: Spec, api: Api, file: Path, account: str | None, uri: str) -> None:
    """A prefix of files is read by the pods themselves: it must be under what they may read (the model bucket, their job prefix)."""
    from ..clouds import jobaccess

    granted = _granted(spec, api, account)
    bucket = jobaccess.model_bucket(spec, account)
    if (granted and jobaccess.within(uri, granted)) or (bucket and uri.split("://", 1)[1].split("/", 1)[0] == bucket):
        return
    raise UserError(
        f"--input {uri}: {api.name}'s pods may read only the model bucket and {granted or 'its batch.output'} (`batch.output` in {file}); "
        "copy the files under it, or give a JSONL file (the CLI reads it and writes the shards)"
    )


def submit_task(spec: Spec, api: Api, root: Path, config: str | None, as_json: bool) -> None:
    """A task's run: one Job running the class's run() once, with --config in place of the API's config."""
    import yaml

    from mlkit_runtime.jobs.layout import new_id

    from ..cluster.connect import connect
    from ..cluster.kinds import JOB
    from ..render import facts
    from ..render.jobs import render_task

    known = facts.load(root)
    if not known.image_tag(api.name):
        raise UserError(f"{api.name} has no image yet: `mlkit apply --only apis` builds and pushes it (and its ServiceAccount and ConfigMap)")
    settings = job_config(config)
    text = json.dumps(settings, separators=(",", ":")) if settings is not None else None
    if text is not None and len(text.encode()) > MAX_TASK_CONFIG:
        raise UserError(f"--config: {len(text.encode())} bytes; a task's config travels in its Job, at most {MAX_TASK_CONFIG} bytes: put data in the bucket")
    cluster = connect(spec)
    job_id = new_id(api.name)
    cluster.apply(yaml.safe_load(render_task(spec, api, known, job_id, text)), JOB)
    say(f"task {job_id}: one run of {api.predictor}'s run(); `mlkit job logs {api.name} {job_id}`")
    typer.echo(json.dumps({"id": job_id, "kind": "task"}) if as_json else job_id)
