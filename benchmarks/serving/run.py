"""Serve the same model with mlkit_runtime, a minimal FastAPI endpoint and BentoML, and load each.

Server pinned to core 0 and the load generator to core 1 (taskset), torch on one thread, one
worker each, loopback only. For each model and repeat: the bare forward throughput at batch 1, 8
and 32 (the physical limit; each run's efficiency divides by the best of these, measured minutes
before it), then the servers in alternating order: a closed loop (hey) at each concurrency and an
open loop (openloop.py, constant rate, latency from the scheduled send time). Medians over
repeats. BentoML is installed by this script into .bench/bentoml.

    python benchmarks/serving/run.py                       # everything (about 25 minutes)
    python benchmarks/serving/run.py --models cnn --servers mlkit bentoml --duration 5 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BENTO_VENV = REPO / ".bench" / "bentoml"
# Open-loop rates: about 60-70% of what a good server sustains here, so queues stay short unless a server stalls.
OPEN_RATES = {"mlp": 1500, "cnn": 1200, "encoder": 180}
ENV = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "BENCH_TORCH_THREADS": "1", "PYTHONPATH": str(HERE)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_bentoml() -> Path:
    exe = BENTO_VENV / "bin" / "bentoml"
    if not exe.exists():
        print("installing BentoML into .bench/bentoml ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(BENTO_VENV)], check=True)
        subprocess.run([str(BENTO_VENV / "bin/pip"), "install", "-q", "bentoml", "torch==2.13.0", "uvicorn[standard]"], check=True)
    return exe


# The runtime's predictor classes in mlkit_predictor.py and the plain ASGI apps, by server kind.
MLKIT_PREDICTORS = {"mlkit": "Predictor", "mlkit-nomodel": "NoModel", "mlkit-nobatch": "Unbatched", "mlkit-oip": "Oip"}
UVICORN_APPS = {"fastapi": "fastapi_app", "null": "null_app", "floor": "batching_floor"}


def server_command(kind: str, model: str, port: int) -> list[str]:
    pin = ["taskset", "-c", "0"]
    if kind in MLKIT_PREDICTORS:
        command = [
            sys.executable, "-m", "mlkit_runtime", "--predictor", f"{HERE / 'mlkit_predictor.py'}:{MLKIT_PREDICTORS[kind]}",
            "--config", json.dumps({"model": model}), "--port", str(port), "--name", model, "--max-in-flight", "64", "--max-queue", "128",
        ]
        batching = [] if kind == "mlkit-nobatch" else ["--max-batch-size", "32", "--max-wait-ms", "2"]
        return pin + command + batching
    if kind in UVICORN_APPS:
        uvicorn = [sys.executable, "-m", "uvicorn", f"{UVICORN_APPS[kind]}:app", "--port", str(port)]
        return pin + uvicorn + ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    if kind == "bentoml":
        return pin + [str(ensure_bentoml()), "serve", "bento_service:Model", "--port", str(port), "--host", "127.0.0.1"]
    raise ValueError(kind)


class Running:
    def __init__(self, kind: str, model: str, payload: bytes, log: Path):
        self.kind, self.model = kind, model
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/predict"
        env = ENV | {"BENCH_MODEL": model}
        self.proc = subprocess.Popen(
            server_command(kind, model, self.port), cwd=HERE, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{kind} exited:\n{log.read_text()[-3000:]}")
            try:
                req = urllib.request.Request(self.url, data=payload, headers={"Content-Type": "application/json"})
                if urllib.request.urlopen(req, timeout=5).status == 200:
                    return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"{kind} did not answer within 180 s")

    def batch_stats(self) -> tuple[float, float] | None:
        if not self.kind.startswith("mlkit"):
            return None
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics").read().decode()
        total = float(re.search(r"^mlkit_batch_size_sum (\S+)", text, re.M).group(1))
        count = float(re.search(r"^mlkit_batch_size_count (\S+)", text, re.M).group(1))
        return total, count

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def hey(url: str, body_file: Path, concurrency: int, seconds: float, content_type: str = "application/json", headers: dict[str, str] | None = None) -> dict:
    extra = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    out = subprocess.run(
        ["taskset", "-c", "1", "hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST", "-T", content_type, *extra, "-D", str(body_file), url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {int(p): float(s) * 1000 for p, s in re.findall(r"(\d+)% in ([\d.]+) secs", out)}
    codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    err_block = out.split("Error distribution:")[1] if "Error distribution:" in out else ""
    errors = sum(int(n) for n in re.findall(r"\[(\d+)\]", err_block))
    ok = codes.get(200, 0)
    total = sum(codes.values()) + errors
    return {
        "rps": rps * ok / total if total else 0.0, "p50_ms": pct.get(50, float("nan")), "p99_ms": pct.get(99, float("nan")),
        "non_2xx": total - ok, "requests": total,
    }


def openloop(url: str, body_file: Path, rate: float, seconds: float) -> dict:
    out = subprocess.run(
        ["taskset", "-c", "1", sys.executable, str(HERE / "openloop.py"),
         "--url", url, "--body", str(body_file), "--rate", str(rate), "--seconds", str(seconds)],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out)


def bare(model: str, batch_sizes: tuple[int, ...] | None = None) -> dict[int, float]:
    """The model alone on core 0 (models.py in a fresh process): samples/s at each batch size, models.py's
    own set unless `batch_sizes` names them."""
    sizes = ["cpu", ",".join(map(str, batch_sizes))] if batch_sizes else []
    out = subprocess.run(["taskset", "-c", "0", sys.executable, str(HERE / "models.py"), model, *sizes], capture_output=True, text=True, env=ENV,
                         check=True).stdout
    return {int(k): v for k, v in json.loads(out).items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["mlp", "cnn", "encoder"])
    p.add_argument("--servers", nargs="+", default=["mlkit", "fastapi", "bentoml"])
    p.add_argument("--concurrency", nargs="+", type=int, default=[1, 4, 16, 64])
    p.add_argument("--duration", type=float, default=8, help="seconds per load run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--open-rate", type=float, default=None, help="open-loop requests/s for every model (default: mlp 1500, cnn 1200, encoder 180)")
    p.add_argument("--out", type=Path, default=None, help="write all runs as JSON here")
    args = p.parse_args()
    if shutil.which("hey") is None or shutil.which("taskset") is None:
        sys.exit("needs `hey` and `taskset` (apt-get install hey util-linux)")
    sys.path.insert(0, str(HERE))
    import models as bench_models

    runs: list[dict] = []
    summary: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            summary[model] = {"bare": []}
            body_file = Path(tmp) / f"{model}.json"
            payload = json.dumps(bench_models.payload(model)).encode()
            body_file.write_bytes(payload)
            for rep in range(args.repeats):
                # The physical limit, measured again each repeat next to the servers it divides:
                # the machine drifts by 15-25% from one minute to the next.
                limits = bare(model)
                best = max(limits.values())
                summary[model]["bare"].append(limits)
                print(f"\n{model} repeat {rep}: bare samples/s " + ", ".join(f"batch {k}: {v:.0f}" for k, v in limits.items()), file=sys.stderr)
                order = args.servers if rep % 2 == 0 else list(reversed(args.servers))
                for kind in order:
                    server = Running(kind, model, payload, Path(tmp) / f"{kind}-{model}.log")
                    try:
                        hey(server.url, body_file, 4, 2)  # warm-up
                        for c in args.concurrency:
                            before = server.batch_stats()
                            result = hey(server.url, body_file, c, args.duration)
                            after = server.batch_stats()
                            if before and after and after[1] > before[1]:
                                result["mean_batch"] = (after[0] - before[0]) / (after[1] - before[1])
                            result.update(model=model, server=kind, load=f"closed c={c}", repeat=rep, efficiency=result["rps"] / best)
                            runs.append(result)
                            print(f"  {kind:14} c={c:<3} {result['rps']:8.1f} req/s  p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms  "
                                  f"non-2xx {result['non_2xx']}", file=sys.stderr)
                        rate = args.open_rate or OPEN_RATES[model]
                        o = openloop(server.url, body_file, rate, args.duration)
                        o.update(model=model, server=kind, load=f"open {rate:.0f}/s", repeat=rep, rps=o["served_rps"], efficiency=o["served_rps"] / best)
                        runs.append(o)
                        print(f"  {kind:14} open {o['offered_rps']:.0f}/s: served {o['served_rps']:.1f}  p50 {o['p50_ms']:.2f} ms  p99 {o['p99_ms']:.2f} ms  "
                              f"non-2xx {o['non_2xx']}", file=sys.stderr)
                    finally:
                        server.stop()
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "runs": runs}, indent=2))
    print_table(runs, summary)


def median_bare(measured: list[dict[int, float]]) -> dict[int, float]:
    return {b: statistics.median(m[b] for m in measured) for b in measured[0]}


def print_table(runs: list[dict], summary: dict) -> None:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["load"], r["server"]), []).append(r)
    print("| model | load | server | req/s | p50 ms | p99 ms | non-2xx | mean batch | efficiency |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (model, load, server), rs in groups.items():
        def med(key: str, rs: list[dict] = rs) -> float:
            return statistics.median(r[key] for r in rs)

        batch = [r["mean_batch"] for r in rs if "mean_batch" in r]
        mean_batch = f"{statistics.median(batch):.1f}" if batch else "—"
        print(
            f"| {model} | {load} | {server} | {med('rps'):.0f} | {med('p50_ms'):.2f} | {med('p99_ms'):.2f} | {int(med('non_2xx'))} | "
            f"{mean_batch} | {med('efficiency'):.2f} |"
        )
    print()
    for model, info in summary.items():
        print(f"{model}: bare samples/s, median of {len(info['bare'])}: " + ", ".join(f"batch {b} {v:.0f}" for b, v in median_bare(info["bare"]).items()))
    # Per-request overhead on the MLP, two ways: the server's time per request at saturation (c=16)
    # less the model's share, and the added latency at c=1 over the null server (same client, same
    # loopback) less the batch-1 forward.
    if "mlp" in summary:
        bare = median_bare(summary["mlp"]["bare"])
        null = groups.get(("mlp", "closed c=1", "null"))
        print()
        for server in ("mlkit", "mlkit-nobatch", "fastapi", "bentoml"):
            sat = groups.get(("mlp", "closed c=16", server))
            one = groups.get(("mlp", "closed c=1", server))
            if not sat:
                continue
            rps = statistics.median(r["rps"] for r in sat)
            batch = statistics.median([r.get("mean_batch", 1.0) for r in sat])
            line = f"mlp overhead ({server}): {1000 / rps - 1000 / bare[min(bare, key=lambda b: abs(b - batch))] :.3f} ms of server time per request at c=16"
            if one and null:
                added = statistics.median(r["p50_ms"] for r in one) - statistics.median(r["p50_ms"] for r in null) - 1000 / bare[1]
                line += f"; {added:.3f} ms added p50 latency at c=1 over the null server"
            print(line)


if __name__ == "__main__":
    main()
