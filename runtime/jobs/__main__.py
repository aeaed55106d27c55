"""`python -m mlkit_runtime.jobs --job URI [--shard N]`: one shard of a batch job, as a Job's pod runs it.

The predictor comes from MLKIT_PREDICTOR, MLKIT_MODEL_DIR and MLKIT_CONFIG (or the flags), as for the
server; the shard from --shard or JOB_COMPLETION_INDEX, which an Indexed Job sets in each pod.
Exit codes: 0 the shard is done; 1 it failed and may be retried; 2 a bad setting; 42 (FATAL_EXIT)
the predictor raised an exception named in fatal_errors: do not retry.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import PredictorLoadError
from ..settings import Settings, SettingsError
from .layout import Job, JobError
from .storage import StorageError, open_store
from .worker import FAILED_EXIT, FATAL_EXIT, FatalError, ShardFailed, run_shard


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mlkit_runtime.jobs", description="Run one shard of a batch job to its done marker.")
    p.add_argument("--job", required=True, help="The job's output prefix: s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or a folder (it holds job.json).")
    p.add_argument("--shard", type=int, default=None, help="Shard to run; default: $JOB_COMPLETION_INDEX (set by an Indexed Job).")
    p.add_argument("--predictor", default=None, help="FILE.py:ClassName [MLKIT_PREDICTOR].")
    p.add_argument("--model-dir", dest="model_dir", default=None, help="Model folder [MLKIT_MODEL_DIR].")
    p.add_argument("--config", default=None, help="Predictor config, JSON or @file [MLKIT_CONFIG]; the job's own config wins.")
    p.add_argument("--checkpoint-s", dest="checkpoint_s", type=float, default=2.0, help="Seconds between commits of the shard's progress.")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    shard = args.shard
    if shard is None:
        index = os.environ.get("JOB_COMPLETION_INDEX", "")
        if not index.isdigit():
            print("error: no shard: pass --shard N or set JOB_COMPLETION_INDEX", file=sys.stderr)
            return 2
        shard = int(index)
    overrides: dict[str, Any] = {k: getattr(args, k) for k in ("predictor", "model_dir", "config") if getattr(args, k) is not None}
    try:
        settings = Settings.load(overrides)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from .allocator import keep_freed_memory
    from .loader import load_model

    keep_freed_memory()  # a worker keeps the memory its batches free (allocator.py)
    try:
        store = open_store(args.job)
        job = Job.read(store)
        model = load_model(settings.predictor, settings.model_dir, job.config if job.config is not None else settings.predictor_config())
        report = run_shard(store, job, shard, model, args.checkpoint_s, log=lambda line: print(line, file=sys.stderr, flush=True))
    except FatalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return FATAL_EXIT
    except (ShardFailed, JobError, StorageError, PredictorLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return FAILED_EXIT
    print(f"shard {report.shard}: done, {report.ok} results, {report.failed} skipped, {report.seconds} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
