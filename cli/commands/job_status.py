"""`mlkit job status | list | logs | cancel`: a batch job as the cluster's Job and its files say.

Shard and item figures come from the job's own files (done markers in the bucket), so they match the
outputs; the Job says what is running, failed and pending. Cancel deletes the Job and its pods and
keeps every finished shard.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from ..cluster import jobstate
from ..errors import UserError
from ..options import DEFAULT_SPEC, JsonOut, SpecFile, say
from .job_inputs import batch_api

JobId = Annotated[str, typer.Argument(help="The job's id, as `mlkit job submit` printed it (`mlkit job list API` lists them).")]
ApiArg = Annotated[str, typer.Argument(help="A `kind: batch` API.")]


def _indexes(text: str | None) -> set[int]:
    """Kubernetes' index list form, "1,3-5,7", as a set."""
    out: set[int] = set()
    for part in (text or "").split(","):
        if "-" in part:
            low, high = part.split("-", 1)
            out |= set(range(int(low), int(high) + 1))
        elif part.strip():
            out.add(int(part))
    return out


def _find(file: Any, api: str, job_id: str) -> tuple[Any, Any, dict]:
    from ..cluster.client import NotFound
    from ..cluster.connect import connect
    from ..cluster.kinds import JOB

    spec, chosen, _, _ = batch_api(file, api, "job", kinds=("batch", "task"))
    cluster = connect(spec)
    try:
        job = cluster.get(JOB, spec.k8s_namespace, job_id)
    except NotFound:
        raise UserError(f"no job {job_id} of {chosen.name} in namespace {spec.k8s_namespace} (`mlkit job list {chosen.name}` lists them)") from None
    if job.get("metadata", {}).get("labels", {}).get("mlkit.dev/api") != chosen.name:
        raise UserError(f"job {job_id} is not a job of {chosen.name}")
    return spec, cluster, job


def figures(job: dict) -> dict[str, Any]:
    """Shards and items from the job's files, states from the Job."""
    from mlkit_runtime.jobs.layout import Job
    from mlkit_runtime.jobs.storage import StorageError, open_store

    from ..render.jobs import OUTPUT_ANNOTATION

    output = job["metadata"].get("annotations", {}).get(OUTPUT_ANNOTATION, "")
    try:
        store = open_store(output)
        described = Job.read(store)
        markers = [json.loads(store.read(key) or b"{}") for key in store.list("done")]
    except (StorageError, ValueError) as exc:
        raise UserError(f"job {job['metadata']['name']}: its files at {output!r} cannot be read: {exc}") from None
    status = job.get("status", {})
    done = {m["shard"] for m in markers}
    failed = _indexes(status.get("failedIndexes")) - done
    running = min(int(status.get("active", 0)), described.shards - len(done) - len(failed))
    items_done = sum(m["ok"] for m in markers)
    items_failed = sum(m["failed"] for m in markers)
    work_s = sum(m["seconds"] for m in markers)
    started = described.created
    elapsed = max(time.time() - started, 0.001)
    rate = (items_done + items_failed) / elapsed
    left = described.items - sum(m["items"] for m in markers)
    state = jobstate.job_state(job)
    return {
        "id": described.id,
        "state": state,
        "shards": described.shards,
        "shards_done": len(done),
        "shards_running": running,
        "shards_failed": len(failed),
        "shards_pending": described.shards - len(done) - len(failed) - running,
        "items": described.items,
        "items_done": items_done,
        "items_failed": items_failed,
        "items_per_s": round(rate, 1),
        "worker_s": round(work_s, 3),
        "eta_s": round(left / rate) if rate > 0 and left and state == "running" else None,
        "output": output,
    }


def task_figures(job: dict) -> dict[str, Any]:
    """A task run: its state and pods, from the Job (a task has no files of its own)."""
    status = job.get("status", {})
    return {"id": job["metadata"]["name"], "kind": "task", "state": jobstate.job_state(job), "active": int(status.get("active", 0)),
            "succeeded": int(status.get("succeeded", 0)), "failed": int(status.get("failed", 0))}


def current(spec: Any, cluster: Any, job: dict) -> dict[str, Any]:
    """What `job status` shows of a job now: its figures and, while work waits, why."""
    from ..cluster.kinds import by_name
    from ..render.jobs import OUTPUT_ANNOTATION

    is_batch = OUTPUT_ANNOTATION in job["metadata"].get("annotations", {})
    f = figures(job) if is_batch else task_figures(job)
    # A pod the scheduler cannot place counts as active in the Job's status: only the pods say whether work waits.
    waiting = f["state"] == "running"
    pods = cluster.list(by_name("Pod"), spec.k8s_namespace, {"mlkit.dev/job": job["metadata"]["name"]}) if waiting else []
    f["pending_reason"] = jobstate.pending_reason(job, pods) if waiting else None
    return f


def line(f: dict[str, Any]) -> str:
    waiting = f"; pending: {f['pending_reason']}" if f.get("pending_reason") else ""
    if f.get("kind") == "task":
        return f"{f['id']}: {f['state']}; pods {f['active']} running, {f['succeeded']} succeeded, {f['failed']} failed{waiting}"
    eta = f"{f['eta_s']} s" if f["eta_s"] is not None else "-"
    return (
        f"{f['id']}: {f['state']}; shards {f['shards_done']} done, {f['shards_running']} running, {f['shards_failed']} failed, "
        f"{f['shards_pending']} pending of {f['shards']}; items {f['items_done']} done, {f['items_failed']} skipped of {f['items']}; "
        f"{f['items_per_s']} items/s; ETA {eta}; results in {f['output']}/results/{waiting}"
    )


def bar(f: dict[str, Any], width: int = 30) -> str:
    """A terminal's progress bar: items done of all, then the status line."""
    total = f.get("items") or 0
    share = (f.get("items_done", 0) + f.get("items_failed", 0)) / total if total else (1.0 if f["state"] == "complete" else 0.0)
    filled = round(share * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {share:6.1%}  {line(f)}"


def status(
    api: ApiArg,
    job_id: JobId,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Follow the job until it completes, fails or is cancelled: a live bar on a terminal, "
                                        "one line (or JSON object with --json) per change otherwise.")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.2, max=600, help="Seconds between looks with --watch.")] = 2.0,
    file: SpecFile = DEFAULT_SPEC,
    as_json: JsonOut = False,
) -> None:
    """A job's shards (done, running, failed, pending), items done and skipped, items/s, ETA, and why work waits (a pool at zero, Kueue)."""
    import sys

    from ..cluster.client import NotFound
    from ..cluster.kinds import JOB

    spec, cluster, job = _find(file, api, job_id)
    tty = sys.stdout.isatty() and not as_json
    last = None
    while True:
        f = current(spec, cluster, job)
        shown = json.dumps(f) if as_json else (bar(f) if tty and watch else line(f))
        changed = {k: v for k, v in f.items() if k not in ("items_per_s", "eta_s")}
        if not watch or tty or changed != last:
            typer.echo(("\r\x1b[2K" + shown) if tty and watch else shown, nl=not (tty and watch))
        last = changed
        if not watch or f["state"] != "running":
            break
        time.sleep(interval)
        try:
            job = cluster.get(JOB, spec.k8s_namespace, job_id)
        except NotFound:  # cancelled and gone (or its TTL passed) while watched
            say(f"job {job_id} is no longer on the cluster (cancelled, or removed a week after it finished)")
            break
    if tty and watch:
        typer.echo("")
    if watch and f["state"] == "failed":
        raise typer.Exit(1)


def list_jobs(api: ApiArg, file: SpecFile = DEFAULT_SPEC, as_json: JsonOut = False) -> None:
    """The API's jobs on the cluster, newest first."""
    from ..cluster.connect import connect
    from ..cluster.kinds import JOB

    spec, chosen, _, _ = batch_api(file, api, "job list", kinds=("batch", "task"))
    jobs = connect(spec).list(JOB, spec.k8s_namespace, {"mlkit.dev/api": chosen.name})
    rows = [{
        "id": j["metadata"]["name"],
        "created": j["metadata"].get("creationTimestamp", ""),
        "completions": j.get("spec", {}).get("completions", 0),
        "succeeded": j.get("status", {}).get("succeeded", 0),
        "failed_indexes": j.get("status", {}).get("failedIndexes", ""),
        "active": j.get("status", {}).get("active", 0),
        # A run of the API's `task.schedule`: its CronJob made it (and names it), not `mlkit job submit`.
        "scheduled": any(o.get("kind") == "CronJob" for o in j["metadata"].get("ownerReferences", [])),
    } for j in jobs]
    rows.sort(key=lambda r: (r["created"], r["id"]), reverse=True)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for r in rows:
        by = "  (scheduled)" if r["scheduled"] else ""
        typer.echo(f"{r['id']}  {r['succeeded']}/{r['completions']} shards  active {r['active']}  failed [{r['failed_indexes']}]  {r['created']}{by}")
    if not rows:
        say(f"{chosen.name} has no jobs on the cluster (finished ones go after a week)")


def logs(api: ApiArg, job_id: JobId, tail: Annotated[int, typer.Option("--tail", min=1, help="Lines per pod.")] = 100,
         file: SpecFile = DEFAULT_SPEC) -> None:
    """The logs of the job's pods, each line prefixed by its shard."""
    from ..cluster.kinds import by_name

    spec, cluster, _ = _find(file, api, job_id)
    pods = cluster.list(by_name("Pod"), spec.k8s_namespace, {"mlkit.dev/job": job_id})
    # A scheduled run's pods carry no mlkit job id (its CronJob named the run): the Job controller's own label finds them.
    pods = pods or cluster.list(by_name("Pod"), spec.k8s_namespace, {"batch.kubernetes.io/job-name": job_id})
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        index = pod["metadata"].get("annotations", {}).get("batch.kubernetes.io/job-completion-index", "?")
        for line in cluster.pod_logs(spec.k8s_namespace, pod["metadata"]["name"], container="worker", tail=tail).splitlines():
            typer.echo(f"[shard {index}] {line}")


def cancel(api: ApiArg, job_id: JobId, file: SpecFile = DEFAULT_SPEC) -> None:
    """Stop the job: its Job and pods are deleted; finished shards stay in the bucket."""
    from ..cluster.kinds import JOB

    spec, cluster, job = _find(file, api, job_id)
    from ..render.jobs import OUTPUT_ANNOTATION

    if OUTPUT_ANNOTATION not in job["metadata"].get("annotations", {}):  # a task run: nothing of its own in the bucket
        cluster.delete(JOB, spec.k8s_namespace, job_id)
        say(f"cancelled task run {job_id}")
        return
    f = figures(job)
    cluster.delete(JOB, spec.k8s_namespace, job_id)
    say(f"cancelled {job_id}: {f['shards_done']} of {f['shards']} shards were done and stay in {f['output']}/results/")
