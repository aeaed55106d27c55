"""HTTP fronts and one model process (`--fronts 2`) against today's single process, on this machine's
two cores, alternating in one run (CNN by default).

Single process: the whole server pinned to core 0 (as run.py does). Fronts: the model process pinned
to core 0 (the predictor pins itself, os.sched_setaffinity, in the process that constructs it) and the
two fronts on core 1. The load generator (hey) runs on core 1 in both, so the fronts share their core
with it: the split is measured at a disadvantage. For each round: the bare forward at batch 8 on core 0,
then each mode at c=1, c=16 and c=64 (closed loop), with the bare forward measured again between modes
and after the last. Each measurement is a fresh process, and on this machine a fresh process's forward
is either fast or slow (batch 8 in sixteen processes in a row: about 1,700 or about 2,100 samples/s,
with or without address randomisation), so one bare figure a round made the ratios jump by 20%:
throughput is reported over the median of every bare measurement of the run, and also each run over
the mean of the bare forwards just before and after it. Reported: throughput over the bare forward
(target 0.85 at c=16 and c=64), c=1 p50 against single-process (target <= 1.10x), RSS and PSS of each
front (target: a front adds at most 60 MB), and CPU µs per request of each process and thread group,
read from /proc while the load runs (like breakdown.py). Medians over rounds.

    python benchmarks/serving/fronts.py                     # cnn, 3 rounds of 6 s per run
    python benchmarks/serving/fronts.py --rounds 1 --duration 3
    git archive HEAD~1 runtime | tar -x -C /tmp/old && mv /tmp/old/runtime /tmp/old/mlkit_runtime
    python benchmarks/serving/fronts.py --before /tmp/old   # a third mode, "before": fronts from that copy
    python benchmarks/serving/fronts.py --tensor-mb 4       # OIP binary tensors: single, fronts (shared memory), socket
    python benchmarks/serving/fronts.py --latency 10        # c=1 p50 and p99 in µs (sequential.py), ten one-second runs each
    python benchmarks/serving/fronts.py --memory 2 3 4      # what one more front adds to the pod's memory
    python benchmarks/serving/fronts.py --oip               # the same closed loop with OIP v2 binary tensors

--tensor-mb N: one N MB FP32 tensor per request, OIP v2 binary, to a predictor that sums it (TensorSum in
mlkit_predictor.py), in three modes alternating round by round: one process, fronts with shared memory
(the default), and fronts with `--shared-memory-mb 0` (the tensor pickled through the link's socket).
Raw figures of every run are printed, with the load average before and after.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from breakdown import cpu_seconds
from run import ENV, HERE, bare, free_port, hey

MODES: tuple[str, ...] = ("single", "fronts")  # plus "before" with --before
CONCURRENCY = (1, 16, 64)


class Server:
    def __init__(self, mode: str, model: str, payload: bytes | None, log: Path, before: Path | None = None, predictor: str = "Pinned",
                 fronts: int = 2, max_batch_size: int = 32):
        """`payload` None: ready when /readyz says so (the tensor mode, whose body is not JSON). Mode
        "socket": fronts with shared memory off."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/predict" if payload is not None else f"http://127.0.0.1:{self.port}/v2/models/{model}/infer"
        config = {"model": model, "core": 0}
        command = [
            sys.executable, "-m", "mlkit_runtime", "--predictor", f"{HERE / 'mlkit_predictor.py'}:{predictor}", "--config", json.dumps(config),
            "--port", str(self.port), "--name", model, "--max-in-flight", "64", "--max-queue", "128", "--max-batch-size", str(max_batch_size),
            "--max-wait-ms", "2", "--no-access-log", "--fronts", "1" if mode == "single" else str(fronts),
            *(["--shared-memory-mb", "0"] if mode == "socket" else []),
        ]
        pin = ["taskset", "-c", "0" if mode == "single" else "1"]
        env = ENV | {"PYTHONPATH": f"{before}{os.pathsep}{HERE}"} if mode == "before" else ENV  # ahead of the editable install
        self.proc = subprocess.Popen(pin + command, cwd=HERE, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{mode} exited:\n{log.read_text()[-3000:]}")
            try:
                if payload is None:
                    req = urllib.request.Request(f"http://127.0.0.1:{self.port}/readyz")
                else:
                    req = urllib.request.Request(self.url, data=payload, headers={"Content-Type": "application/json"})
                if urllib.request.urlopen(req, timeout=5).status == 200:
                    break
            except OSError:
                time.sleep(0.3)
        else:
            raise RuntimeError(f"{mode} did not answer within 180 s")

    def processes(self) -> dict[str, int]:
        """parent, model and front-N pids (one process, 'server', in single mode)."""
        children = [int(p) for p in Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()]
        if not children:
            return {"server": self.proc.pid}
        names = {"parent": self.proc.pid}
        for pid in children:
            cpus = os.sched_getaffinity(pid)
            names[f"model-{pid}" if cpus == {0} else f"front-{pid}"] = pid
        return names

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def memory_mb(pid: int) -> tuple[float, float, float]:
    """RSS, PSS (shared pages divided among the processes that share them) and USS (pages only this
    process maps), in MB. A front is forked from the runtime's parent after the runtime is imported, so
    much of its RSS is pages it shares with the parent and the other fronts, copy on write; what one more
    front adds to the pod is measured by --memory."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    values = {line.split(":")[0]: int(line.split()[1]) for line in rollup.splitlines()[1:] if line.split()[1].isdigit()}
    uss = values.get("Private_Clean", 0) + values.get("Private_Dirty", 0)
    return values.get("Rss", 0) / 1024, values.get("Pss", 0) / 1024, uss / 1024


def measure(server: Server, body: Path, concurrency: int, seconds: float, content_type: str = "application/json",
            headers: dict[str, str] | None = None) -> dict:
    procs = server.processes()
    before = {name: cpu_seconds(pid) for name, pid in procs.items()}
    result = hey(server.url, body, concurrency, seconds, content_type, headers)
    after = {name: cpu_seconds(pid) for name, pid in procs.items()}
    n = max(result["requests"], 1)
    cpu: dict[str, dict[str, float]] = {}
    for name in procs:  # the fronts summed into one row
        row = cpu.setdefault(kind(name), {"main": 0.0, "threads": 0.0})
        row["main"] += (after[name][0] - before[name][0]) / n * 1e6
        row["threads"] += (after[name][1] - before[name][1]) / n * 1e6
    result["cpu_us"] = cpu
    fronts = [pid for name, pid in procs.items() if name.startswith("front")]
    result["front_mb"] = [memory_mb(pid) for pid in fronts]
    result["model_mb"] = [memory_mb(pid) for name, pid in procs.items() if name.startswith(("model", "server"))]
    return result


def kind(name: str) -> str:
    return "fronts" if name.startswith("front") else name.split("-")[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cnn", choices=["mlp", "cnn", "encoder"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=6, help="seconds per load run")
    p.add_argument("--latency", type=int, default=0, metavar="N",
                   help="only c=1 latency, in µs (sequential.py: one client, each request timed): the servers up at once, N one-second runs "
                        "of each, alternating run by run (load drifts less between them)")
    p.add_argument("--concurrency", nargs="+", type=int, default=list(CONCURRENCY), help="closed-loop clients per run (c=1 alone for latency work)")
    p.add_argument("--before", type=Path, metavar="DIR",
                   help="also run fronts from the mlkit_runtime package in DIR (an earlier commit's), alternating with the other two")
    p.add_argument("--oip", action="store_true", help="send the model's input as an OIP v2 binary tensor (/v2/models/NAME/infer) instead of /predict JSON")
    p.add_argument("--max-batch-size", type=int, default=32,
                   help="the servers' --max-batch-size (every mode the same); the bare forward is measured at batches 1, 8 and 32")
    p.add_argument("--memory", type=int, nargs="+", metavar="N",
                   help="the pod's memory with N fronts for each N (after a closed-loop run at c=16 that every front served)")
    p.add_argument("--tensor-mb", type=float, metavar="N", help="OIP binary tensors of N MB: single, fronts (shared memory) and socket, alternating")
    args = p.parse_args()
    global MODES
    if args.before is not None:
        if not (args.before / "mlkit_runtime" / "fronts.py").is_file():
            sys.exit(f"--before {args.before}: no mlkit_runtime/fronts.py there")
        MODES = (*MODES, "before")
    if shutil.which("hey") is None or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        sys.exit("needs `hey`, `taskset` and two cores")
    import models

    if args.latency:
        latency(args.model, args.latency, args.before)
        return
    if args.memory:
        memory(args.model, args.memory, args.duration)
        return
    if args.tensor_mb:
        tensors(args.tensor_mb, args.rounds, args.duration, args.concurrency)
        return
    runs: dict[str, list[dict]] = {f"{mode}@{c}": [] for mode in MODES for c in args.concurrency}
    forwards: list[float] = []
    waiting: list[dict] = []  # runs whose bare forward after them is still to be measured
    last_bare = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.json"
        payload: bytes | None = json.dumps(models.payload(args.model)).encode()
        content_type, headers, predictor = "application/json", None, "Pinned"
        if args.oip:  # the same input as an OIP v2 binary tensor, to /v2/models/{model}/infer
            raw = np.asarray(models.payload(args.model)["x"], dtype="<f4").tobytes()
            head = json.dumps({"inputs": [{"name": "x", "shape": [1, len(raw) // 4], "datatype": "FP32",
                                           "parameters": {"binary_data_size": len(raw)}}]}).encode()
            payload, content_type, headers, predictor = head + raw, "application/octet-stream", {"Inference-Header-Content-Length": str(len(head))}, "PinnedOip"
        body.write_bytes(payload)
        for rnd in range(args.rounds):
            limits = bare(args.model)
            forwards.append(limits[8])
            others = ", ".join(f"batch {k}: {v:.0f}" for k, v in limits.items() if k != 8)
            print(f"round {rnd}: bare forward at batch 8 on core 0: {forwards[-1]:.0f} samples/s ({others})", file=sys.stderr)
            for k, mode in enumerate(MODES if rnd % 2 == 0 else reversed(MODES)):
                last_bare = adjacent(waiting, limits[8] if k == 0 else bare_at_8(args.model, forwards))
                server = Server(mode, args.model, None if args.oip else payload, Path(tmp) / f"{mode}.log", args.before, predictor,
                                max_batch_size=args.max_batch_size)
                try:
                    hey(server.url, body, 16, 2, content_type, headers)  # warm-up
                    for c in args.concurrency:
                        r = measure(server, body, c, args.duration, content_type, headers)
                        r["bare_before"] = last_bare
                        runs[f"{mode}@{c}"].append(r)
                        waiting.append(r)
                        cpu = json.dumps({k: round(v["main"] + v["threads"]) for k, v in r["cpu_us"].items()})
                        line = f"{r['rps']:7.0f} req/s  p50 {r['p50_ms']:6.2f} ms  non-2xx {r['non_2xx']}  µs/request {cpu}"
                        print(f"  {mode:7} c={c:<3} {line}", file=sys.stderr)
                finally:
                    server.stop()
        adjacent(waiting, bare_at_8(args.model, forwards))
    report(args.model, forwards, runs, args.concurrency)


def bare_at_8(model: str, forwards: list[float]) -> float:
    """The bare forward at batch 8 on core 0, printed and added to `forwards`: measured as each round's is,
    after two seconds at batch 1 (measured at once in a fresh process, batch 8 read 15% slower)."""
    value = bare(model, (1, 8))[8]
    print(f"  bare forward at batch 8: {value:.0f} samples/s", file=sys.stderr)
    forwards.append(value)
    return value


def adjacent(waiting: list[dict], after: float) -> float:
    """Give each run measured since the last bare forward the mean of the bare forwards just before and
    just after it (`bare_adjacent`), and return `after`, the next runs' bare before. The machine drifts
    by 15-25% within minutes: a run's ratio to a bare forward measured a minute away carried that drift."""
    for r in waiting:
        r["bare_adjacent"] = (r["bare_before"] + after) / 2
    waiting.clear()
    return after


def tensors(mb: float, rounds: int, seconds: float, concurrency: list[int]) -> None:
    """OIP binary tensors of `mb` MB in three modes, alternating; raw runs, then medians."""
    modes = ("single", "fronts", "socket")
    raw = np.arange(int(mb * 250_000), dtype="<f4").tobytes()
    head = json.dumps({"inputs": [{"name": "x", "shape": [len(raw) // 4], "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}]}).encode()
    headers = {"Inference-Header-Content-Length": str(len(head))}
    runs: dict[str, list[dict]] = {f"{mode}@{c}": [] for mode in modes for c in concurrency}
    print(f"load before: {os.getloadavg()}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.bin"
        body.write_bytes(head + raw)
        for rnd in range(rounds):
            for mode in modes if rnd % 2 == 0 else reversed(modes):
                server = Server(mode, "tensors", None, Path(tmp) / f"{mode}.log", predictor="TensorSum")
                try:
                    hey(server.url, body, 4, 1, "application/octet-stream", headers)  # warm-up
                    for c in concurrency:
                        r = measure(server, body, c, seconds, "application/octet-stream", headers)
                        runs[f"{mode}@{c}"].append(r)
                        cpu = json.dumps({k: round(v["main"] + v["threads"]) for k, v in r["cpu_us"].items()})
                        print(f"  round {rnd} {mode:6} c={c:<3} {r['rps']:7.1f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                              f"non-2xx {r['non_2xx']}  µs/request {cpu}", file=sys.stderr)
                finally:
                    server.stop()
    print(f"load after: {os.getloadavg()}", file=sys.stderr)
    print(f"| {mb:g} MB FP32 tensor, OIP binary, closed loop | " + " | ".join(f"{m} req/s | {m} p50 ms" for m in modes) + " |")
    print("| --- |" + " --- |" * (2 * len(modes)))
    for c in concurrency:
        cells = [f"{statistics.median(r['rps'] for r in runs[f'{m}@{c}']):.1f} | {statistics.median(r['p50_ms'] for r in runs[f'{m}@{c}']):.2f}"
                 for m in modes]
        print(f"| c={c} | " + " | ".join(cells) + " |")


def memory(model: str, counts: list[int], seconds: float) -> None:
    """What one more front adds to the pod: the sum of PSS over every process of the runtime (the memory
    the pod holds, each shared page counted once) with N fronts, for each N, after `seconds` of load at
    c=16 (every front has served). A front's own RSS counts the pages it shares copy-on-write with the
    parent that forked it after the runtime's imports, so it overstates what the front adds; the
    difference between two runs' totals does not."""
    import models

    totals: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.json"
        payload = json.dumps(models.payload(model)).encode()
        body.write_bytes(payload)
        for n in counts:
            server = Server("fronts", model, payload, Path(tmp) / f"fronts-{n}.log", fronts=n)
            try:
                measure(server, body, 16, seconds)
                mb = {name: memory_mb(pid) for name, pid in server.processes().items()}
                totals[n] = sum(m[1] for m in mb.values())
                fronts = sorted(m for name, m in mb.items() if kind(name) == "fronts")
                print(f"{n} fronts: the pod's PSS {totals[n]:.0f} MB over {len(mb)} processes; each front RSS / PSS / USS "
                      + ", ".join(f"{r:.0f} / {p:.0f} / {u:.0f}" for r, p, u in fronts) + f" MB; load {os.getloadavg()[0]:.2f}", flush=True)
            finally:
                server.stop()
    for a, b in itertools.pairwise(counts):
        print(f"{a} -> {b} fronts: the pod's PSS {totals[b] - totals[a]:+.0f} MB, {(totals[b] - totals[a]) / (b - a):.0f} MB a front (target <= 60)")


def sequential(url: str, body: Path, seconds: float) -> list[float]:
    """Latencies in µs of one client on one keep-alive connection for `seconds` (sequential.py), pinned to core 1 as hey is."""
    out = subprocess.run(["taskset", "-c", "1", sys.executable, str(HERE / "sequential.py"), "--url", url, "--body", str(body), "--seconds", str(seconds)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["us"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency(model: str, runs: int, before: Path | None) -> None:
    """c=1 p50 and p99 of each mode, in µs, from one-second runs of a sequential client (each request timed
    with perf_counter), alternating between servers that are up together. Every run is printed with the
    load average; the summary is the median of the runs' p50s and p99s."""
    import models

    p50: dict[str, list[float]] = {mode: [] for mode in MODES}
    p99: dict[str, list[float]] = {mode: [] for mode in MODES}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.json"
        payload = json.dumps(models.payload(model)).encode()
        body.write_bytes(payload)
        servers = {mode: Server(mode, model, payload, Path(tmp) / f"{mode}.log", before) for mode in MODES}
        try:
            for server in servers.values():
                sequential(server.url, body, 1)  # warm-up
            for n in range(runs):
                for mode in MODES if n % 2 == 0 else reversed(MODES):
                    us = sequential(servers[mode].url, body, 1)
                    p50[mode].append(percentile(us, 0.5))
                    p99[mode].append(percentile(us, 0.99))
                    print(f"  run {n} {mode:6} {len(us):5} requests  p50 {p50[mode][-1]:7.0f} µs  p99 {p99[mode][-1]:7.0f} µs  "
                          f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)
                loads.append(os.getloadavg()[0])
        finally:
            for server in servers.values():
                server.stop()
    single, fronts = statistics.median(p50["single"]), statistics.median(p50["fronts"])
    print(f"{model}, c=1, {runs} alternating one-second runs each, load {min(loads):.2f}-{max(loads):.2f}: "
          f"p50 single {single:.0f} µs, fronts {fronts:.0f} µs: {fronts / single:.3f}x (target <= 1.10); "
          f"p99 single {statistics.median(p99['single']):.0f} µs, fronts {statistics.median(p99['fronts']):.0f} µs")
    for mode in MODES:
        print(f"  {mode:6} p50s µs: {' '.join(f'{v:.0f}' for v in p50[mode])}")
        print(f"  {mode:6} p99s µs: {' '.join(f'{v:.0f}' for v in p99[mode])}")
    if "before" in p50:
        earlier = statistics.median(p50["before"])
        print(f"  before: p50 {earlier:.0f} µs: {earlier / single:.3f}x single, {fronts / earlier:.3f}x of before's fronts")


def report(model: str, forwards: list[float], runs: dict[str, list[dict]], concurrency: list[int]) -> None:
    def med(key: str, field: str) -> float:
        return statistics.median(r[field] for r in runs[key])

    forward = statistics.median(forwards)
    print(f"| {model}, closed loop | single process req/s | fronts=2 req/s | single / bare | fronts / bare | p50 single ms | p50 fronts ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for c in concurrency:
        s, f = med(f"single@{c}", "rps"), med(f"fronts@{c}", "rps")
        p50s, p50f = med(f"single@{c}", "p50_ms"), med(f"fronts@{c}", "p50_ms")
        print(f"| c={c} | {s:.0f} | {f:.0f} | {s / forward:.2f} | {f / forward:.2f} | {p50s:.2f} | {p50f:.2f} |")
    if "before" in MODES:
        for c in concurrency:
            print(f"| c={c}, before | | {med(f'before@{c}', 'rps'):.0f} | | {med(f'before@{c}', 'rps') / forward:.2f} | | {med(f'before@{c}', 'p50_ms'):.2f} |")
    print()
    # Each run against the bare forwards measured just before and after it (adjacent()): less of the drift.
    print("| against the adjacent bare forward (median of runs) | " + " | ".join(f"{mode} / bare" for mode in MODES) + " |")
    print("| --- |" + " --- |" * len(MODES))
    for c in concurrency:
        cells = [f"{statistics.median(r['rps'] / r['bare_adjacent'] for r in runs[f'{mode}@{c}']):.2f}" for mode in MODES]
        print(f"| c={c} | " + " | ".join(cells) + " |")
    print()
    print(f"bare forward at batch 8 on core 0: {forward:.0f} samples/s (median of {len(forwards)}: {min(forwards):.0f} to {max(forwards):.0f})")
    if 1 in concurrency:
        print(f"c=1 p50, fronts / single: {med('fronts@1', 'p50_ms') / med('single@1', 'p50_ms'):.2f}x (target <= 1.10)")
    if 16 not in concurrency:
        return
    fronts_mb = [mb for r in runs["fronts@16"] for mb in r["front_mb"]]
    single_mb = [mb for r in runs["single@16"] for mb in r["model_mb"]]
    model_mb = [mb for r in runs["fronts@16"] for mb in r["model_mb"]]
    print(f"RSS / PSS / USS per front: {statistics.median(m[0] for m in fronts_mb):.0f} / {statistics.median(m[1] for m in fronts_mb):.0f} / "
          f"{statistics.median(m[2] for m in fronts_mb):.0f} MB "
          f"(model process {statistics.median(m[0] for m in model_mb):.0f} MB RSS; single process {statistics.median(m[0] for m in single_mb):.0f} MB RSS)")
    print()
    print("CPU µs per request at c=16 (main thread + other threads), medians:")
    for mode in MODES:
        rows = runs[f"{mode}@16"]
        for name in rows[0]["cpu_us"]:
            main_us = statistics.median(r["cpu_us"][name]["main"] for r in rows)
            other_us = statistics.median(r["cpu_us"][name]["threads"] for r in rows)
            print(f"  {mode:7} {name:7} main {main_us:6.0f}  threads {other_us:6.0f}")


if __name__ == "__main__":
    main()
