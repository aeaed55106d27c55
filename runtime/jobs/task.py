"""`python -m mlkit_runtime.jobs.task [--config JSON]`: a `kind: task` API's callable, run once, as its Job's pod runs it.

Cortex's TaskAPI, in mlkit's terms: the API's class (MLKIT_PREDICTOR) is constructed as any predictor is,
`__init__(self, config, model_dir)`, with the submitted `--config` in place of the API's `config` when
one is given, then its `run()` is called once (a coroutine is awaited). What it does (ETL, retraining,
a report) is its own business: it returns, and the pod succeeds; it raises, and the pod fails with the
exception in the log, and the Job retries it as `backoffLimit` says.
Exit codes: 0 done; 1 run() raised (or the class could not load); 2 a bad setting.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import sys
import traceback
from typing import Any

from ..errors import PredictorLoadError
from ..predictor import construct, load_class
from ..settings import Settings, SettingsError

FAILED_EXIT = 1
BAD_SETTING_EXIT = 2


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mlkit_runtime.jobs.task", description="Run a task API's class once: construct it, call run().")
    p.add_argument("--config", default=None, help="The task's config, a JSON object, replacing the API's (MLKIT_CONFIG) for this run.")
    p.add_argument("--predictor", default=None, help="FILE.py:ClassName [MLKIT_PREDICTOR].")
    p.add_argument("--model-dir", dest="model_dir", default=None, help="Model folder [MLKIT_MODEL_DIR].")
    return p


def _task_config(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"--config: not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise SettingsError("--config: must be a JSON object")
    return value


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    overrides = {k: getattr(args, k) for k in ("predictor", "model_dir") if getattr(args, k) is not None}
    try:
        settings = Settings.load(overrides)
        config = _task_config(args.config) if args.config is not None else settings.predictor_config()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_SETTING_EXIT
    try:
        cls = load_class(settings.predictor, task=True)
        task = construct(cls, config, settings.model_dir, settings.predictor.rpartition(":")[0])
    except PredictorLoadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return FAILED_EXIT
    try:
        outcome = task.run()
        if inspect.isawaitable(outcome):
            asyncio.run(_awaited(outcome))
    except Exception as exc:  # the task's own failure: its traceback is what the user debugs from `mlkit job logs`
        traceback.print_exc()
        print(f"error: {type(exc).__name__} in run(): {exc}", file=sys.stderr)
        return FAILED_EXIT
    print("task: done", file=sys.stderr)
    return 0


async def _awaited(outcome: Any) -> Any:
    return await outcome


if __name__ == "__main__":
    sys.exit(main())
