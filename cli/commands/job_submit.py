"""`mlkit job submit`: split the input into shards under the output prefix, then create the Indexed Job.

Every check (the API, its built image, the input, the output prefix, --config) comes before anything
is written to the cluster: bad input never leaves a Job behind.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ..errors import UserError
from ..options import DEFAULT_SPEC, JsonOut, SpecFile, say
from .job_inputs import BatchSize, ConfigOption, InputOption, Overwrite, Workers, batch_api, items_of, job_config, prepare_job


def submit(
    api: Annotated[str | None, typer.Argument(help="A `kind: batch` API; may be left out when the spec has one API.")] = None,
    input: InputOption = ...,  # type: ignore[assignment]
    output: Annotated[
        str, typer.Option("--output", "-o", help="Bucket prefix for the job (s3://BUCKET/PREFIX or gs://BUCKET/PREFIX): shards, results, markers.")
    ] = ...,  # type: ignore[assignment]
    workers: Workers = None,
    batch_size: BatchSize = None,
    config: ConfigOption = None,
    overwrite: Overwrite = False,
    file: SpecFile = DEFAULT_SPEC,
    as_json: JsonOut = False,
) -> None:
    """Run a batch job on the cluster: shards in the bucket, an Indexed Job with one pod per shard; prints the job's id."""
    import yaml

    from .. import clouds
    from ..cluster.connect import connect
    from ..cluster.kinds import JOB
    from ..render import facts
    from ..render.jobs import render_job

    spec, chosen, batch, root = batch_api(file, api, "job submit")
    if not output.startswith(("s3://", "gs://")):
        raise UserError(f"--output {output}: the job's pods write to a bucket; give s3://BUCKET/PREFIX or gs://BUCKET/PREFIX")
    wanted = f"{clouds.of(spec).bucket_scheme}://"
    if not output.startswith(wanted):
        raise UserError(f"--output {output}: a {spec.cloud} cluster's pods write to {wanted} buckets")
    known = facts.load(root)
    if not known.image_tag(chosen.name):
        raise UserError(f"{chosen.name} has no image yet: `mlkit apply --only apis` builds and pushes it (and its ServiceAccount and ConfigMap)")
    items = items_of(input)
    if "://" not in items.uri and items.form == "files":
        raise UserError(f"--input {input}: the pods cannot read a folder on this machine; upload it to a bucket prefix and give that")
    cluster = connect(spec)  # credentials before any write: a cluster that cannot be reached leaves nothing in the bucket
    job = prepare_job(chosen, batch, items, output, batch_size, job_config(config), overwrite)
    text = render_job(spec, chosen, known, job.id, output, job.shards, workers or batch.workers)
    cluster.apply(yaml.safe_load(text), JOB)
    say(f"job {job.id}: {job.items} items in {job.shards} shards of {job.shard_size} under {output}; `mlkit job status {chosen.name} {job.id}`")
    typer.echo(json.dumps({"id": job.id, "items": job.items, "shards": job.shards, "output": output}) if as_json else job.id)
