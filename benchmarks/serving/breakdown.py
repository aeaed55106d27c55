"""Where a request's time goes inside the server at one core, for the efficiency target (CNN, c=16).

Alternating, for each round: the model's bare forward at batch 8, then four servers under the same
closed loop (hey, concurrency 16, the model's JSON payload): the null ASGI app (uvicorn alone), the
floor of a batching server (batching_floor.py: parse, queue, one batch in a thread, answer),
mlkit_runtime with a model that costs nothing (`NoModel`), and mlkit_runtime with the model. For
each server the CPU time of its event-loop thread (the main thread) and of its other threads (the
predictor's pool) per request, read from /proc/PID/task while the load runs. Medians over rounds.

    python benchmarks/serving/breakdown.py                  # cnn, 3 rounds of 8 s (about 3 minutes)
    python benchmarks/serving/breakdown.py --model mlp --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from run import Running, bare, hey

SERVERS = ("null", "floor", "mlkit-nomodel", "mlkit")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU seconds so far of the process's main thread and of all its other threads."""
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        if int(tid) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


def measure(server: Running, body: Path, seconds: float) -> dict:
    """Requests/s, and CPU µs per request of the loop thread and of the other threads, over one hey run."""
    main0, other0 = cpu_seconds(server.proc.pid)
    start = time.monotonic()
    n = hey(server.url, body, 16, seconds)["requests"]
    elapsed = time.monotonic() - start
    main1, other1 = cpu_seconds(server.proc.pid)
    return {"rps": n / elapsed, "loop_us": (main1 - main0) / n * 1e6, "other_us": (other1 - other0) / n * 1e6}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="cnn", choices=["mlp", "cnn", "encoder"])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=8, help="seconds per load run")
    args = p.parse_args()
    if shutil.which("hey") is None or shutil.which("taskset") is None:
        sys.exit("needs `hey` and `taskset` (apt-get install hey util-linux)")
    import models

    results: dict[str, list[dict]] = {kind: [] for kind in ("bare", *SERVERS)}
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.json"
        payload = json.dumps(models.payload(args.model)).encode()
        body.write_bytes(payload)
        for rnd in range(args.rounds):
            forward = bare(args.model)[8]
            results["bare"].append({"rps": forward, "other_us": 1e6 / forward})
            print(f"round {rnd}: bare forward at batch 8: {forward:.0f} samples/s", file=sys.stderr)
            for kind in SERVERS if rnd % 2 == 0 else reversed(SERVERS):
                server = Running(kind, args.model, payload, Path(tmp) / f"{kind}.log")
                try:
                    hey(server.url, body, 16, 2)  # warm-up
                    r = measure(server, body, args.duration)
                finally:
                    server.stop()
                results[kind].append(r)
                print(f"  {kind:14} {r['rps']:8.0f} req/s  loop thread {r['loop_us']:6.1f} µs/request  "
                      f"other threads {r['other_us']:6.1f} µs/request", file=sys.stderr)
    report(args.model, results)


def report(model: str, results: dict[str, list[dict]]) -> None:
    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in results[kind])

    print(f"| {model}, closed loop c=16 | req/s | event-loop thread µs/request | other threads µs/request |")
    print("| --- | --- | --- | --- |")
    print(f"| bare forward, batch 8 | {med('bare', 'rps'):.0f} | | {med('bare', 'other_us'):.0f} |")
    for kind in SERVERS:
        print(f"| {kind} | {med(kind, 'rps'):.0f} | {med(kind, 'loop_us'):.0f} | {med(kind, 'other_us'):.0f} |")
    forward, loop, pool = med("bare", "other_us"), med("mlkit", "loop_us"), med("mlkit", "other_us")
    print()
    print(f"efficiency (served / bare at batch 8): {med('mlkit', 'rps') / med('bare', 'rps'):.2f}")
    print(f"per request {loop + pool:.0f} µs of core 0: the model's forward {forward:.0f} at bare speed; "
          f"the predictor thread {pool - forward:+.0f} over that (list to tensor and back, and a forward slowed by sharing the core); "
          f"the event loop {loop:.0f}, of which uvicorn alone {med('null', 'loop_us'):.0f}, "
          f"a batching server's least (parse, queue, thread hop) {med('floor', 'loop_us') - med('null', 'loop_us'):.0f} more, "
          f"the runtime's features {med('mlkit-nomodel', 'loop_us') - med('floor', 'loop_us'):.0f} more, "
          f"and sharing the core with the model {loop - med('mlkit-nomodel', 'loop_us'):+.0f} more")


if __name__ == "__main__":
    main()
