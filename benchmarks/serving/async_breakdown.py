"""Where an async request's CPU goes, stage by stage, against the realtime path's (issue 24's throughput goal).

Two parts, both on the benchmark's torch predictor (mlkit_predictor.py) and payload (models.py):

1. Stages in one process, each timed alone over many repetitions (microseconds of the thread's CPU per
   request, median of --repeat runs; the thread hops in wall time, since they are two threads' work):
   what the front does beyond a realtime request (parse check, envelope, the `queued` record, the
   queue's send), what the worker does per message (receive, open the envelope with its payload,
   each record write, delete), the thread hop each store call takes, and the model's forward
   per request at the batch size.
2. The runtime's process CPU per request under load (from /proc/PID/stat, so other sessions' load on the
   machine does not count): realtime under hey, and async (front and worker in one process) for a
   submit burst and its drain; alternating, --rounds rounds.

    python benchmarks/serving/async_breakdown.py --model cnn
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import async_vs_realtime as avr  # noqa: E402  (the same servers and load as the benchmark)
import models  # noqa: E402


def per_call_us(fn, n: int) -> float:
    """This thread's CPU time per call (the kernel's part of a file write included): other load on the machine does not count."""
    t = time.thread_time()
    for _ in range(n):
        fn()
    return (time.thread_time() - t) / n * 1e6


def stages(model: str, batch: int, n: int) -> dict[str, float]:
    from mlkit_predictor import Predictor

    from mlkit_runtime.asyncq import records
    from mlkit_runtime.asyncq.local import FileStore, LocalQueue
    from mlkit_runtime.payloads import dumps, parse_json, too_deep

    body = json.dumps(models.payload(model)).encode()
    rid, created = records.new_id(), records.now()
    env = records.envelope(rid, created, body, True, False, inline_json=True)
    out: dict[str, float] = {"payload bytes": len(body), "envelope bytes": len(env)}
    with tempfile.TemporaryDirectory() as folder:
        store = FileStore(folder)
        ids = [records.new_id() for _ in range(n)]
        it = iter(ids)
        out["front: parse check of the body (orjson)"] = per_call_us(lambda: parse_json(body), n)
        out["front: envelope (orjson, the JSON payload as itself)"] = per_call_us(
            lambda: records.envelope(rid, created, body, True, False, inline_json=True), n)
        out["front: `queued` record write (FileStore.put)"] = per_call_us(
            lambda: store.put(records.result_key(next(it)), records.record(rid, "queued", created)), n)
        q = LocalQueue(60)
        out["front: queue send"] = per_call_us(lambda: q.send(env), n)
        got: list = []
        out[f"worker: receive ({batch} a call), per message"] = per_call_us(lambda: got.extend(q.receive(batch, 0)), n // batch) / batch
        out["worker: open the envelope, the payload parsed with it (orjson)"] = per_call_us(lambda: records.open_envelope(env)["payload"], n)
        out["worker: the payload's depth check"] = per_call_us(lambda: too_deep(env, 65), n)
        stamp = records.now()
        it = iter(ids)
        out["worker: `running` record write (FileStore.put)"] = per_call_us(
            lambda: store.put(records.result_key(next(it)), records.record(rid, "running", created, started_at=stamp, attempt=1)), n)
        result = [0.1] * 10
        it = iter(ids)
        out["worker: `completed` record write (FileStore.put, replacing the last)"] = per_call_us(
            lambda: store.put(records.result_key(next(it)), records.record(rid, "completed", created, started_at=stamp, finished_at=stamp, attempt=1,
                                                                          **records.result_value(result))), n)
        out["worker: the record's JSON alone (dumps)"] = per_call_us(lambda: dumps({"id": rid, "status": "completed", "result": result}), n)
        out["worker: two timestamps (records.now)"] = per_call_us(lambda: (records.now(), records.now()), n)
        it2 = iter(got)
        out["worker: delete (batched), per message"] = per_call_us(lambda: q.delete([next(it2) for _ in range(batch)]), len(got) // batch) / batch
    pool = ThreadPoolExecutor(4)

    async def hops() -> float:
        loop = asyncio.get_running_loop()
        t = time.perf_counter()
        for _ in range(n):
            await loop.run_in_executor(pool, int)
        return (time.perf_counter() - t) / n * 1e6

    out["a thread hop (run_in_executor, nothing to do; wall time)"] = asyncio.run(hops())

    async def gathered() -> float:
        loop = asyncio.get_running_loop()
        t = time.perf_counter()
        for _ in range(n // batch):
            await asyncio.gather(*(loop.run_in_executor(pool, int) for _ in range(batch)))
        return (time.perf_counter() - t) / (n // batch * batch) * 1e6

    out[f"{batch} thread hops gathered, per hop (wall time)"] = asyncio.run(gathered())
    predictor = Predictor({"model": model}, str(HERE))
    payloads = [models.payload(model)] * batch
    predictor.predict_batch(payloads)
    out[f"model: predict_batch({batch}), per request"] = per_call_us(lambda: predictor.predict_batch(payloads), max(10, n // batch)) / batch
    return out


def cpu_s(pid: int) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def under_load(args: argparse.Namespace, body: dict) -> dict[str, float]:
    """CPU ms per request of the runtime process: realtime under a hey burst, then async submit + drain."""
    proc, url = avr.start(args)
    try:
        before = cpu_s(proc.pid)
        _, done = avr.hey(url, body, args.concurrency, "-n", str(args.requests))
        realtime = (cpu_s(proc.pid) - before) / done * 1000
    finally:
        avr.stop(proc)
    with tempfile.TemporaryDirectory() as results:
        proc, url = avr.start(args, "--mode", "async", "--queue", "local", "--results", f"file:{results}")
        try:
            before = cpu_s(proc.pid)
            _, done = avr.hey(url, body, args.concurrency, "-n", str(args.requests))
            while sum(1 for p in Path(results).glob("*.json") if b'"completed"' in p.read_bytes()) < done:
                time.sleep(0.2)
            asynchronous = (cpu_s(proc.pid) - before) / done * 1000
        finally:
            avr.stop(proc)
    return {"realtime_cpu_ms": round(realtime, 3), "async_cpu_ms": round(asynchronous, 3), "ratio_of_cpu": round(realtime / asynchronous, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--requests", type=int, default=2000, help="requests per load round")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the stage timings")
    ap.add_argument("--rounds", type=int, default=2, help="alternating load rounds")
    ap.add_argument("--n", type=int, default=2000, help="repetitions of each stage")
    args = ap.parse_args()
    print(os.popen("uptime").read().strip(), file=sys.stderr)
    cores = os.cpu_count() or 1
    if cores > 1:  # the stage timings and the results polling on hey's core, not the runtime's (avr.start pins it to the others)
        os.sched_setaffinity(0, {cores - 1})
    runs = [stages(args.model, args.batch, args.n) for _ in range(args.repeat)]
    print(f"| stage ({args.model}, median of {args.repeat}) | us per request |")
    print("| --- | --- |")
    for key in runs[0]:
        print(f"| {key} | {statistics.median(r[key] for r in runs):.1f} |")
    body = avr.payload(args.model)
    for round_ in range(1, args.rounds + 1):
        print(json.dumps({"round": round_, **under_load(args, body)}), flush=True)
    print(os.popen("uptime").read().strip(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
