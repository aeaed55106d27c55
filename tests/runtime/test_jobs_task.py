"""A `kind: task` run (runtime/jobs/task.py) as its Job's pod runs it: the module as a process, with the pod's settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TASK = '''\
import asyncio, json, os
from pathlib import Path


class Task:
    def __init__(self, config, model_dir):
        self.config = config
        self.model_dir = model_dir

    def run(self):
        if self.config.get("fail"):
            raise RuntimeError("the upstream table is empty")
        Path(self.config["out"]).write_text(json.dumps({"config": self.config, "model": sorted(os.listdir(self.model_dir))}))


class AsyncTask(Task):
    async def run(self):
        await asyncio.sleep(0)
        Path(self.config["out"]).write_text("async")


class NoRun:
    def __init__(self, config, model_dir):
        pass
'''


def run_task(tmp_path: Path, cls: str, config: dict, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "task.py").write_text(TASK)
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "weights.json").write_text("{}")
    env = os.environ | {"MLKIT_PREDICTOR": f"{tmp_path / 'task.py'}:{cls}", "MLKIT_MODEL_DIR": str(tmp_path / "model"), "MLKIT_CONFIG": json.dumps(config)}
    return subprocess.run([sys.executable, "-m", "mlkit_runtime.jobs.task", *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_task_runs_once_with_the_apis_config_or_the_submitted_one(tmp_path):
    out = tmp_path / "out.json"
    done = run_task(tmp_path, "Task", {"out": str(out), "day": "mon"})
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text()) == {"config": {"out": str(out), "day": "mon"}, "model": ["weights.json"]}
    other = tmp_path / "other.json"
    done = run_task(tmp_path, "Task", {"out": str(out)}, "--config", json.dumps({"out": str(other), "day": "tue"}))
    assert done.returncode == 0, done.stderr
    assert json.loads(other.read_text())["config"] == {"out": str(other), "day": "tue"}  # replaces the API's, as for batch jobs
    done = run_task(tmp_path, "AsyncTask", {"out": str(out)})
    assert done.returncode == 0 and out.read_text() == "async", done.stderr


def test_a_failing_run_exits_1_with_its_traceback_and_a_bad_setting_exits_2(tmp_path):
    failed = run_task(tmp_path, "Task", {"fail": True})
    assert failed.returncode == 1
    assert "Traceback" in failed.stderr and failed.stderr.strip().splitlines()[-1] == "error: RuntimeError in run(): the upstream table is empty"
    no_run = run_task(tmp_path, "NoRun", {})
    assert no_run.returncode == 1 and "NoRun has no run(self) method" in no_run.stderr and "Traceback" not in no_run.stderr
    bad = run_task(tmp_path, "Task", {}, "--config", "[1]")
    assert bad.returncode == 2 and bad.stderr.strip() == "error: --config: must be a JSON object"
