"""A `kind: task` API's schedule: a CronJob whose jobTemplate is the task's Job as `mlkit job submit` creates it.

Pure, like the rest of rendering. The task's pod (its view) is shared with cli/render/jobs.py's one-off
run; this module does not import the manifests' environment (k8s.py imports it), so it takes the env.
"""

from __future__ import annotations

from typing import Any

from .. import labels
from ..spec.schema import Api, Spec
from .facts import Facts
from .jinja import HEADER
from .runtime_view import api_view

# The worker's settings: the predictor's, from the API's (runtime/settings.py); none of the server's.
WORKER_ENV = ("MLKIT_PREDICTOR", "MLKIT_MODEL_DIR", "MLKIT_CONFIG", "HOME")

# A scheduled run that cannot start within this long of its time (the controller was down, or the last run
# still held it under Forbid) is skipped, not run late; without a deadline the controller gives up on a
# CronJob that missed more than 100 runs.
STARTING_DEADLINE_S = 600
# Finished runs kept (their Jobs, pods and logs) for `mlkit job list` and `logs`; older ones go. A scheduled
# run's Job has no TTL: these limits decide when it goes.
RUN_HISTORY = 3


def render(spec: Spec, api: Api, facts: Facts, env: Any) -> str:
    """A `kind: task` API with `task.schedule`: a CronJob (infra/k8s/<api>/cronjob.yaml) whose jobTemplate is the
    task's Job as `mlkit job submit` creates it, with the API's config. `mlkit apply` creates and updates it, and
    prunes it once the schedule or the API is gone. Its runs carry the API's label, so `mlkit job list` shows them;
    their pods carry no job id (the controller names each run), so `job logs` finds them by the Job's own label."""
    task = api.task
    assert task is not None and task.schedule is not None
    view = task_view(spec, api, facts, None)
    run_labels = {labels.NAME: api.name, labels.API: api.name, labels.PART_OF: spec.project}
    view.update(
        name=api.name,
        schedule=task.schedule,
        time_zone=task.time_zone,
        concurrency_policy=task.overlap.capitalize(),
        starting_deadline_s=STARTING_DEADLINE_S,
        history=RUN_HISTORY,
        job_labels=run_labels,
        pod_labels=run_labels,
        spread_labels={labels.API: api.name},  # as a submitted run's (render/jobs.py spread_labels)
        ttl_s=None,
    )
    text: str = env.get_template("k8s/cronjob.yaml.j2").render(**view)
    return HEADER + text.rstrip("\n") + "\n"  # the indented jobTemplate ends in a blank line of its own


def task_view(spec: Spec, api: Api, facts: Facts, config: str | None) -> dict[str, Any]:
    """The API's pod running the class's run() once (`python -m mlkit_runtime.jobs.task`), `config` (JSON text) in place of the API's."""
    view: dict[str, Any] = api_view(spec, api, facts)
    track = view["tracks"][0]
    command = ["python", "-m", "mlkit_runtime.jobs.task", *(["--config", config] if config is not None else [])]
    view.update(
        track=track,
        retries=(api.task.retries if api.task is not None else 0),
        worker_command=command,
        worker_env={name: track.env[name] for name in WORKER_ENV},
        job_annotations=view["checkov_skips"],
    )
    return view
