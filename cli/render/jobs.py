"""The Kubernetes Job of one batch job of a `kind: batch` API: an Indexed Job, one index per shard.

Pure, like the rest of rendering: (spec, deploy facts, the job's id, output prefix, shard and worker
counts) -> YAML text. The pod is the API's (pool, tolerations, resources, identity, model fetch),
running the batch worker (`python -m mlkit_runtime.jobs`) instead of the server.

How Kubernetes' Job engine carries the job's rules:
- `completionMode: Indexed`, `completions` = shards: each pod gets its shard as JOB_COMPLETION_INDEX;
  `parallelism` = workers.
- `backoffLimitPerIndex` = `batch.retries`: a failed shard is retried on its own, and the others go on.
- `podFailurePolicy`: exit code FATAL_EXIT (an exception in `fatal_errors`) fails the index at once
  (FailIndex); a pod that failed because it was disrupted (spot reclaim, node drain, preemption:
  the DisruptionTarget condition) is ignored, so it costs no retry.
- `podReplacementPolicy: Failed` (the only value a pod failure policy allows): a shard's next pod
  starts once the last one has stopped, so one shard never has two writers.
- With `batch.queue`, Kueue's queue-name label and `suspend: true`: Kueue admits the Job when the
  LocalQueue's quota allows.
"""

from __future__ import annotations

from typing import Any

from mlkit_runtime.jobs.worker import FATAL_EXIT

from .. import labels
from ..spec.schema import Api, BatchSpec, Spec
from .facts import Facts
from .jinja import HEADER
from .k8s import template_environment
from .runtime_view import api_view
from .schedule import WORKER_ENV, task_view

# A finished Job (and its pods' logs) stays a week for `mlkit job status` and `logs`, then Kubernetes removes it.
TTL_AFTER_FINISHED_S = 7 * 24 * 3600


# Where the job's files are, on the Job itself: `mlkit job status` reads its progress there.
OUTPUT_ANNOTATION = "mlkit.dev/job-output"


def job_labels(spec: Spec, api: Api, job_id: str) -> dict[str, str]:
    # Not the owner labels mlkit apply prunes by (managed-by): a job is not in infra/, and apply must never delete one.
    return {labels.NAME: api.name, labels.API: api.name, labels.PART_OF: spec.project, labels.JOB: job_id}


def spread_labels(api: Api, job_id: str) -> dict[str, str]:
    """What a batch job's pods spread by (zone, node): the job's own pods. A Deployment's selector (api and
    track) matched no job pod, since job pods carry no track: the constraint counted nothing and spread
    nothing. A task's runs (submitted or scheduled: a task API has no Deployment) spread by the API."""
    return {labels.API: api.name, labels.JOB: job_id}


def render_job(spec: Spec, api: Api, facts: Facts, job_id: str, output: str, shards: int, workers: int) -> str:
    batch = api.batch or BatchSpec()
    view: dict[str, Any] = api_view(spec, api, facts)
    track = view["tracks"][0]
    job_meta = job_labels(spec, api, job_id)
    view.update(
        track=track,
        job_name=job_id,
        job_labels={**job_meta, labels.KUEUE_QUEUE: batch.queue} if batch.queue else job_meta,
        pod_labels=job_meta,
        spread_labels=spread_labels(api, job_id),
        queue=batch.queue,
        shards=shards,
        workers=max(1, min(workers, shards)),
        retries=batch.retries,
        fatal_exit=FATAL_EXIT,
        output=output,
        worker_command=["python", "-m", "mlkit_runtime.jobs", "--job", output],
        worker_env={name: track.env[name] for name in WORKER_ENV},
        ttl_s=TTL_AFTER_FINISHED_S,
        job_annotations={**view["checkov_skips"], OUTPUT_ANNOTATION: output},
    )
    text: str = template_environment().get_template("k8s/job.yaml.j2").render(**view)
    return HEADER + text


def render_task(spec: Spec, api: Api, facts: Facts, job_id: str, config: str | None) -> str:
    """A `kind: task` API's run: a Job of one pod running the class's run() once (`python -m mlkit_runtime.jobs.task`).

    No retries unless the task asks for them (a task that half-ran may not be safe to run again); a pod
    disrupted by its node (spot reclaim, drain) is run again without counting. `config` (JSON text)
    replaces the API's config for this run.
    """
    job_meta = job_labels(spec, api, job_id)
    view = task_view(spec, api, facts, config)
    view.update(job_name=job_id, job_labels=job_meta, pod_labels=job_meta, spread_labels={labels.API: api.name}, ttl_s=TTL_AFTER_FINISHED_S)
    text: str = template_environment().get_template("k8s/task.yaml.j2").render(**view)
    return HEADER + text
