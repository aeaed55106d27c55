"""Async API worker throughput against the realtime runtime on the same predictor, alternating in one run.

Each round starts the runtime twice with the same torch predictor (benchmarks/serving/mlkit_predictor.py)
and batching settings:
- realtime: closed-loop load of --concurrency clients (hey) on POST /predict for --duration seconds; req/s.
- async (--mode async: front and worker in one process): on the embedded queue and a results folder
  (--backend local), or on SQS and S3 served by a local moto server (--backend moto: every message and
  record goes over HTTP to a real AWS API, as on a cluster, with moto's own cost in the figures);
  --requests requests submitted by --concurrency clients (hey), then every result awaited; the
  worker's req/s = requests / (last finished_at - first started_at), from the result records. In one
  process on one core the front's work (HTTP, the `queued` record, the send) shares the core with the
  worker while the submissions last; the worker alone is read from the requests it started after the
  last submission was answered (the queue still full, the front idle), as a worker pod runs on a cluster
  where the front is another Deployment.
- The runtime process's CPU time per request on each path (from /proc/PID/stat: other load on the
  machine does not count in it), the async one for submitting and completing every request, and for
  the worker alone (CPU after the last submission over the requests started after it). Realtime's CPU
  per request over async's is the throughput ratio on a core of one's own: on a shared machine the
  req/s figures move with the other load (which hurts the 10 s realtime run more than the short async
  drain), the CPU figures much less.
Then, one request at a time (--sequential of each): realtime latency, and async submit-to-result
latency (POST sent to a GET that sees `completed`, polled every 2 ms), p50 and p99; the difference is
the async path's overhead per request. Rounds alternate realtime and async so drift hits both.
Every round's results folder stays until the run ends: deleting a round's thousands of files just before
the next one would slow the next one's file creates on ext4 without a journal (each create walks past
every inode deleted in the last 1-6 minutes), a cost of the benchmark, not of the path measured.
--delete-folders deletes each at once, as before: the worker on a filesystem where thousands of files
were just deleted (on a shared machine, other sessions' tests do it too).

    python benchmarks/serving/async_vs_realtime.py --model cnn --rounds 3
    python benchmarks/serving/async_vs_realtime.py --model cnn --rounds 3 --backend moto

With --baseline DIR (a folder holding another `mlkit_runtime`, say main's: `git archive main runtime | tar -x
-C DIR && mv DIR/runtime DIR/mlkit_runtime`), each round also runs the async path on that code, right after
this one's: a change to the worker measured against what it replaces under the same load, round by round.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
PREDICTOR = f"{HERE / 'mlkit_predictor.py'}:Predictor"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: argparse.Namespace, *flags: str, extra_env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = os.environ | {"PYTHONPATH": str(HERE)} | (extra_env or {})
    cores = os.cpu_count() or 1
    pin = ["taskset", "-c", f"0-{max(0, cores - 2)}"] if cores > 1 and shutil.which("taskset") else []  # the last core is hey's
    proc = subprocess.Popen(
        [*pin, sys.executable, "-m", "mlkit_runtime", "--predictor", PREDICTOR, "--config", json.dumps({"model": args.model}), "--model-dir", str(HERE),
         "--port", str(port), "--max-batch-size", str(args.batch), "--max-wait-ms", "5", "--max-in-flight", "256", "--max-queue", "4096",
         "--no-access-log", *flags],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the runtime exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the runtime did not become ready in 120 s")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process so far, its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batches(url: str) -> tuple[float, float]:
    """Requests and predict_batch calls so far (mlkit_batch_size's sum and count, from /metrics)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    found = dict(re.findall(r"^mlkit_batch_size_(sum|count) ([0-9.e+]+)$", text, re.M))
    return float(found.get("sum", 0)), float(found.get("count", 0))


def mean_batch(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    calls = after[1] - before[1]
    return round((after[0] - before[0]) / calls, 2) if calls else None


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(30)


def payload(model: str) -> dict:
    sys.path.insert(0, str(HERE))
    import models  # benchmarks/serving/models.py: the payload shape of each model

    return models.payload(model)


def hey(url: str, body: dict, concurrency: int, *amount: str) -> tuple[float, int]:
    """hey's Requests/sec and responses for POSTs of `body` (`amount`: -z 10s or -n 2000); the load pinned to the last core."""
    cores = os.cpu_count() or 1
    pin = ["taskset", "-c", str(cores - 1)] if cores > 1 and shutil.which("taskset") else []
    out = subprocess.run(
        [*pin, "hey", *amount, "-c", str(concurrency), "-m", "POST", "-T", "application/json", "-d", json.dumps(body), url + "/predict"],
        capture_output=True, text=True, check=True,
    ).stdout
    codes = re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)
    if any(code not in ("200", "202") for code, _ in codes):
        raise SystemExit(f"hey saw other statuses: {codes}")
    found = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    assert found, out
    return float(found.group(1)), sum(int(n) for _, n in codes)


class Moto:
    """A moto server on loopback (SQS and S3, as AWS answers them), and per round a fresh queue and bucket."""

    def __init__(self) -> None:
        port = free_port()
        self.env = {
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-west-2", "AWS_EC2_METADATA_DISABLED": "true",
        }
        # The last core, with hey: moto answers the runtime's calls as the cloud would, not on the runtime's cores.
        pin = ["taskset", "-c", str((os.cpu_count() or 1) - 1)] if (os.cpu_count() or 1) > 1 and shutil.which("taskset") else []
        self.proc = subprocess.Popen([*pin, sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(self.env["AWS_ENDPOINT_URL"] + "/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit("the moto server did not start in 60 s") from None
                time.sleep(0.2)
        import boto3

        session = boto3.session.Session(region_name="us-west-2", aws_access_key_id="testing", aws_secret_access_key="testing")
        self.sqs = session.client("sqs", endpoint_url=self.env["AWS_ENDPOINT_URL"])
        self.s3 = session.client("s3", endpoint_url=self.env["AWS_ENDPOINT_URL"])
        self.rounds = 0

    def flags(self) -> list[str]:
        self.rounds += 1
        name = f"bench{self.rounds}"
        queue = self.sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
        self.s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
        self.bucket = name
        return ["--queue", f"sqs:{queue}", "--results", f"s3://{name}/results"]

    def records(self) -> list[dict]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix="results/")
        keys = [o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith(".json")]
        return [json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()) for key in keys]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def async_throughput(url: str, body: dict, concurrency: int, requests: int, read_records: Callable[[], list[dict]],
                     pid: int, batch: int) -> tuple[float, float | None, int, float, float | None, float | None]:
    """Submit `requests` with hey, wait for every record to complete, and read the worker's rates from the records:
    over the whole run, and alone (the requests it started after the last submission, when at least 4 batches);
    with how many that was, the process's CPU ms per request over the whole run and while the worker was alone,
    and the worker's mean batch size while alone."""
    cpu = cpu_s(pid)
    # hey sends n/c per client, so the count is what it reports, not `requests`.
    _, requests = hey(url, body, concurrency, "-n", str(requests))
    batches_submitted = batches(url)  # before the CPU reading: the /metrics call is not the worker's work
    submitted, cpu_submitted = datetime.now(timezone.utc), cpu_s(pid)
    deadline = time.monotonic() + 600
    while True:
        records = read_records()
        if len(records) >= requests and all(r["status"] == "completed" for r in records):
            break
        if time.monotonic() > deadline:
            raise SystemExit("the async results did not all complete within 600 s")
        time.sleep(0.5)
    cpu_end = cpu_s(pid)
    alone_batch = mean_batch(batches_submitted, batches(url))
    cpu_ms = (cpu_end - cpu) / requests * 1000
    first = min(stamp(r["started_at"]) for r in records)
    last = max(stamp(r["finished_at"]) for r in records)
    alone = [r for r in records if stamp(r["started_at"]) >= submitted]
    alone_rps = alone_cpu_ms = None
    if len(alone) >= 4 * batch:
        alone_rps = len(alone) / (max(stamp(r["finished_at"]) for r in alone) - min(stamp(r["started_at"]) for r in alone)).total_seconds()
        # The batch in flight at the last submission counts here but not in `alone`: under 1% at 4 batches and more.
        alone_cpu_ms = (cpu_end - cpu_submitted) / len(alone) * 1000
    return requests / (last - first).total_seconds(), alone_rps, len(alone), cpu_ms, alone_cpu_ms, alone_batch


def latencies_realtime(url: str, body: dict, n: int) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=60) as c:
        for _ in range(n):
            t = time.perf_counter()
            c.post("/predict", json=body).raise_for_status()
            out.append((time.perf_counter() - t) * 1000)
    return out


def latencies_async(url: str, body: dict, n: int) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=60) as c:
        for _ in range(n):
            t = time.perf_counter()
            rid = c.post("/predict", json=body).json()["id"]
            while c.get(f"/predict/{rid}").json()["status"] != "completed":
                time.sleep(0.002)
            out.append((time.perf_counter() - t) * 1000)
    return out


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="cnn", help="benchmarks/serving/models.py model: mlp, cnn, encoder, image")
    ap.add_argument("--batch", type=int, default=16, help="max_batch_size of both paths")
    ap.add_argument("--concurrency", type=int, default=32, help="clients at saturation")
    ap.add_argument("--duration", type=float, default=10, help="seconds of realtime load per round")
    ap.add_argument("--requests", type=int, default=2000, help="async requests per round")
    ap.add_argument("--sequential", type=int, default=200, help="one-at-a-time requests per path per round, for latency")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backend", choices=["local", "moto"], default="local",
                    help="the async path's queue and store: the embedded queue and a folder, or SQS and S3 on a local moto server")
    ap.add_argument("--delete-folders", action="store_true",
                    help="delete each round's results folder when its run ends, not when the benchmark does (see above)")
    ap.add_argument("--out", type=Path, help="write the raw figures here as JSON")
    ap.add_argument("--baseline", type=Path, help="a folder holding another mlkit_runtime: each round runs the async path on it too")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    if cores > 1:  # this process polls the results: on hey's core, not the runtime's
        os.sched_setaffinity(0, {cores - 1})
    body = payload(args.model)
    runs: list[dict] = []
    moto = Moto() if args.backend == "moto" else None
    try:
        with tempfile.TemporaryDirectory(prefix="async-vs-realtime-") as kept:
            args.kept = kept  # every round's results folder, until the run ends (see the docstring)
            for round_ in range(1, args.rounds + 1):
                runs.append(one_round(args, body, round_, moto))
    finally:
        if moto is not None:
            moto.close()
    report(args, runs)
    return 0


def one_round(args: argparse.Namespace, body: dict, round_: int, moto: Moto | None) -> dict:
    proc, url = start(args)
    try:
        rt_batches = batches(url)
        cpu = cpu_s(proc.pid)
        rt, answered = hey(url, body, args.concurrency, "-z", f"{args.duration:g}s")
        rt_cpu_ms = (cpu_s(proc.pid) - cpu) / answered * 1000
        rt_batch = mean_batch(rt_batches, batches(url))
        rt_lat = latencies_realtime(url, body, args.sequential)
    finally:
        stop(proc)
    run = {"round": round_} | async_round(args, body, moto, None, rt, rt_cpu_ms, latency=True)
    if args.baseline:
        base = async_round(args, body, moto, {"PYTHONPATH": f"{args.baseline.resolve()}{os.pathsep}{HERE}"}, rt, rt_cpu_ms, latency=False)
        run |= {f"baseline_{k}": v for k, v in base.items() if k in BASELINE_KEYS}
    run |= {
        "realtime_rps": round(rt, 1), "realtime_cpu_ms": round(rt_cpu_ms, 3), "realtime_mean_batch": rt_batch,
        "realtime_p50_ms": round(pct(rt_lat, 50), 2), "realtime_p99_ms": round(pct(rt_lat, 99), 2),
        "load_average": round(os.getloadavg()[0], 2),
    }
    run["async_p50_ms"], run["async_p99_ms"] = run.pop("async_p50_ms"), run.pop("async_p99_ms")  # last, as before
    print(json.dumps(run), file=sys.stderr, flush=True)
    return run


BASELINE_KEYS = ("worker_alone_rps", "worker_alone_ratio", "worker_alone_cpu_ms", "worker_alone_cpu_ratio", "async_cpu_ms", "cpu_ratio")


def async_round(args: argparse.Namespace, body: dict, moto: Moto | None, code: dict[str, str] | None, rt: float, rt_cpu_ms: float,
                latency: bool) -> dict:
    """The async half of a round (`code`: the environment that picks the runtime's code, None for this one's)."""
    if moto is None:
        results = tempfile.mkdtemp(dir=args.kept)  # removed when the run ends, not now
        flags, env = ["--queue", "local", "--results", f"file:{results}"], code

        def read_records() -> list[dict]:
            return [json.loads(p.read_bytes()) for p in Path(results).glob("*.json")]
    else:
        flags, env, read_records = moto.flags(), moto.env | (code or {}), moto.records
    proc, url = start(args, "--mode", "async", *flags, extra_env=env)
    try:
        aw, alone, alone_n, aw_cpu_ms, alone_cpu_ms, alone_batch = async_throughput(
            url, body, args.concurrency, args.requests, read_records, proc.pid, args.batch)
        aw_lat = latencies_async(url, body, args.sequential) if latency else []
    finally:
        stop(proc)
        if moto is None and args.delete_folders:
            shutil.rmtree(results)
    return {
        "async_worker_rps": round(aw, 1), "ratio": round(aw / rt, 3),
        "worker_alone_rps": round(alone, 1) if alone else None, "worker_alone_ratio": round(alone / rt, 3) if alone else None,
        "worker_alone_requests": alone_n,
        # Like for like: realtime's batcher and the worker alone should both reach --batch at saturation.
        "worker_alone_mean_batch": alone_batch, "async_cpu_ms": round(aw_cpu_ms, 3),
        "worker_alone_cpu_ms": round(alone_cpu_ms, 3) if alone_cpu_ms else None,
        # Requests per CPU second against realtime's: the throughput ratio on a core of one's own, whatever else the machine runs.
        "cpu_ratio": round(rt_cpu_ms / aw_cpu_ms, 3), "worker_alone_cpu_ratio": round(rt_cpu_ms / alone_cpu_ms, 3) if alone_cpu_ms else None,
        "async_p50_ms": round(pct(aw_lat, 50), 2) if aw_lat else None, "async_p99_ms": round(pct(aw_lat, 99), 2) if aw_lat else None,
    }


def report(args: argparse.Namespace, runs: list[dict]) -> None:
    keys = [k for k in runs[0] if k != "round"]
    median = {k: round(statistics.median(v), 3) if (v := [r[k] for r in runs if r[k] is not None]) else None for k in keys}
    print(f"model {args.model}, max_batch_size {args.batch}, {args.concurrency} clients, {args.rounds} alternating rounds (medians):")
    print("| path | req/s at saturation | worker alone req/s | CPU ms per request | p50 ms (one at a time) | p99 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| realtime | {median['realtime_rps']} | | {median['realtime_cpu_ms']} | {median['realtime_p50_ms']} | {median['realtime_p99_ms']} |")
    where = "embedded queue, results folder" if args.backend == "local" else "SQS and S3 on a local moto server"
    print(f"| async ({where}) | {median['async_worker_rps']} | {median['worker_alone_rps']} | {median['async_cpu_ms']} "
          f"(worker alone {median['worker_alone_cpu_ms']}) | {median['async_p50_ms']} | {median['async_p99_ms']} |")
    print(f"mean batch size: realtime {median['realtime_mean_batch']}, worker alone {median['worker_alone_mean_batch']}; "
          f"load average {min(r['load_average'] for r in runs)}-{max(r['load_average'] for r in runs)}")
    print(f"requests per CPU second against realtime's: {median['cpu_ratio']} with the front in the process, "
          f"{median['worker_alone_cpu_ratio']} for the worker alone")
    if args.baseline:
        print(f"baseline ({args.baseline}): worker alone {median['baseline_worker_alone_cpu_ms']} CPU ms a request, "
              f"{median['baseline_worker_alone_cpu_ratio']} of realtime's requests per CPU second, "
              f"{median['baseline_worker_alone_ratio']} of its throughput; front and worker {median['baseline_async_cpu_ms']} CPU ms")
    print(f"worker/realtime throughput: {median['ratio']} with the front on the same core, {median['worker_alone_ratio']} alone; "
          f"async overhead per request: p50 +{median['async_p50_ms'] - median['realtime_p50_ms']:.2f} ms, "
          f"p99 +{median['async_p99_ms'] - median['realtime_p99_ms']:.2f} ms")
    if args.out:
        given = vars(args) | {"out": str(args.out), "baseline": str(args.baseline) if args.baseline else None}
        args.out.write_text(json.dumps({"args": given, "runs": runs, "median": median}, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
