"""Every shard of a job on this machine, `workers` processes at a time: `mlkit job run`.

Each process loads the predictor once and runs shards with the same `run_shard` a Job's pod runs;
a failed shard is retried as the Job would (`retries` times, never after a fatal error).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from ..errors import PredictorLoadError
from .layout import Job
from .storage import open_store
from .worker import FatalError, Model, ShardFailed, ShardReport, run_shard

_model: Model | None = None  # the predictor of this worker process
_load_error: str | None = None  # why it could not be loaded: raised by every shard, not a broken pool


def _load(predictor: str, model_dir: str, config: dict[str, Any]) -> None:
    global _model, _load_error
    from .allocator import keep_freed_memory
    from .loader import load_model

    keep_freed_memory()  # first thing in the worker process (allocator.py)

    try:
        _model = load_model(predictor, model_dir, config)
    except PredictorLoadError as exc:
        _load_error = str(exc)


def _run(uri: str, shard: int, checkpoint_s: float) -> ShardReport:
    if _model is None:
        raise PredictorLoadError(_load_error or "the predictor was not loaded")
    store = open_store(uri)
    return run_shard(store, Job.read(store), shard, _model, checkpoint_s)


@dataclass
class Outcome:
    reports: list[ShardReport] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # shard -> the last error
    attempts: dict[int, int] = field(default_factory=dict)


def run_all(
    uri: str,
    predictor: str,
    model_dir: str,
    config: dict[str, Any],
    workers: int,
    retries: int,
    checkpoint_s: float = 2.0,
    on_shard: Callable[[ShardReport], None] | None = None,
) -> Outcome:
    store = open_store(uri)
    job = Job.read(store)
    outcome = Outcome()
    # spawn, not fork: a predictor holding threads (torch) or an event loop does not survive a fork.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, min(workers, job.shards)), mp_context=context, initializer=_load,
                             initargs=(predictor, model_dir, config)) as pool:
        running: dict[Future[ShardReport], int] = {}
        for shard in range(job.shards):
            running[pool.submit(_run, uri, shard, checkpoint_s)] = shard
            outcome.attempts[shard] = 1
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                shard = running.pop(future)
                try:
                    report = future.result()
                except ShardFailed as exc:
                    if outcome.attempts[shard] <= retries:
                        outcome.attempts[shard] += 1
                        running[pool.submit(_run, uri, shard, checkpoint_s)] = shard
                    else:
                        outcome.failed[shard] = str(exc)
                    continue
                except FatalError as exc:
                    outcome.failed[shard] = str(exc)
                    continue
                outcome.reports.append(report)
                if on_shard:
                    on_shard(report)
    outcome.reports.sort(key=lambda r: r.shard)
    return outcome
