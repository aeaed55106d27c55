"""A local batch job against a bare loop calling predict_batch over the same items and batch size, per worker.

    python benchmarks/batch/bench.py --model cnn --items 20000 --batch-size 32 --rounds 3

Alternates the two in one run (bare, job, bare, job, ...) so that a change in the machine's load
hits both. Each runs in a fresh spawned process with the predictor loaded before its clock starts:
- bare: the items already parsed in memory, `predict_batch` over them in batches; nothing written.
- job: `mlkit job run`'s code (mlkit_runtime.jobs.pool.run_all, one worker): each shard's lines read
  and parsed, batches through the predictor, results committed in parts and joined, done markers.
  Not in it: the check of the items against the predictor's Input, which `mlkit job run` does once
  before it writes the shards (job.json's `checked`), as the bare loop does not check them either.
  Its rate is the items over the shards' own seconds (the worker's work, the clock the goal is about);
  `wall` adds the process start and the predictor load of the worker, which a long job pays once.

Models: `sentiment` (examples/batch: a few microseconds an item, so the job's own costs show) and
`cnn` (benchmarks/serving/models.py, an MNIST-sized convnet on the CPU, one torch thread).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODELS = {
    "sentiment": (f"{REPO / 'examples/batch/predictor.py'}:Predictor", str(REPO / "examples/batch/model"), {"threshold": 0.5}),
    "cnn": (f"{REPO / 'benchmarks/serving/mlkit_predictor.py'}:Predictor", str(REPO), {"model": "cnn"}),
}
WORDS = ["great", "awful", "love", "boring", "the", "film", "was", "best", "worst", "service", "fine", "slow"]


def items(model: str, n: int) -> list[bytes]:
    rng = random.Random(25)
    if model == "sentiment":
        return [json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(12))}).encode() for _ in range(n)]
    return [json.dumps({"x": [round(rng.random(), 4) for _ in range(784)]}).encode() for _ in range(n)]


def bare(model: str, lines: list[bytes], batch_size: int) -> tuple[float, float]:
    """Items per second and per CPU-second of predict_batch alone over parsed items (runs in a spawned process)."""
    from mlkit_runtime.jobs.loader import load_model

    predictor, model_dir, config = MODELS[model]
    instance = load_model(predictor, model_dir, config).instance
    payloads = [json.loads(line) for line in lines]
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(0, len(payloads), batch_size):
        instance.predict_batch(payloads[i:i + batch_size])
    return len(payloads) / (time.perf_counter() - started), len(payloads) / (time.process_time() - cpu)


def job(model: str, lines: list[bytes], batch_size: int, shard_size: int) -> tuple[float, float, float]:
    """Items per second over the shards' own seconds, per CPU-second of the worker, and of the whole run, of a one-worker job."""
    from mlkit_runtime.jobs.layout import Job, prepare
    from mlkit_runtime.jobs.pool import run_all
    from mlkit_runtime.jobs.storage import open_store

    predictor, model_dir, config = MODELS[model]
    with tempfile.TemporaryDirectory() as folder:
        # checked: as `mlkit job run` writes it, having checked the items against the predictor's Input before sharding
        spec = Job(id="bench", api=model, form="jsonl", input="-", items=len(lines), shard_size=shard_size, batch_size=batch_size, checked=True)
        prepare(open_store(folder), spec, lines)
        started = time.perf_counter()
        outcome = run_all(folder, predictor, model_dir, config, workers=1, retries=0, checkpoint_s=2.0)
        wall = time.perf_counter() - started
        assert not outcome.failed and sum(r.ok for r in outcome.reports) == len(lines), outcome.failed
        reports = outcome.reports
        return len(lines) / sum(r.seconds for r in reports), len(lines) / sum(r.cpu_seconds for r in reports), len(lines) / wall


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=sorted(MODELS), default="cnn")
    p.add_argument("--items", type=int, default=20000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--shard-size", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="Write the raw figures as JSON here.")
    args = p.parse_args()
    lines = items(args.model, args.items)
    spawn = multiprocessing.get_context("spawn")
    rows = []
    for round_ in range(1, args.rounds + 1):
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            bare_rate, bare_cpu = pool.submit(bare, args.model, lines, args.batch_size).result()
        job_rate, job_cpu, wall_rate = job(args.model, lines, args.batch_size, args.shard_size)
        rows.append({"round": round_, "bare": round(bare_rate, 1), "job": round(job_rate, 1), "job_wall": round(wall_rate, 1),
                     "ratio": round(job_rate / bare_rate, 3), "bare_per_cpu_s": round(bare_cpu, 1), "job_per_cpu_s": round(job_cpu, 1),
                     "cpu_ratio": round(job_cpu / bare_cpu, 3)})
        print(f"round {round_}: bare {bare_rate:,.0f} items/s, job {job_rate:,.0f} items/s (wall {wall_rate:,.0f}), ratio {job_rate / bare_rate:.3f}; "
              f"per CPU-second: bare {bare_cpu:,.0f}, job {job_cpu:,.0f}, ratio {job_cpu / bare_cpu:.3f}", file=sys.stderr)
    ratio = statistics.median(r["ratio"] for r in rows)
    cpu_ratio = statistics.median(r["cpu_ratio"] for r in rows)
    summary = {"model": args.model, "items": args.items, "batch_size": args.batch_size, "shard_size": args.shard_size, "rounds": rows,
               "median_ratio": ratio, "median_cpu_ratio": cpu_ratio, "goal": 0.9}
    print(f"| {args.model} | {args.items} | {args.batch_size} | {statistics.median(r['bare'] for r in rows):,.0f} | "
          f"{statistics.median(r['job'] for r in rows):,.0f} | {statistics.median(r['job_wall'] for r in rows):,.0f} | {ratio:.3f} | {cpu_ratio:.3f} |")
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
