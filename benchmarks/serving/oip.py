"""Open Inference Protocol v2 with JSON tensors and with binary tensors, alternating in one run.

For each model and repeat: the model's bare forward at batch 1, 8 and 32 (the best is the limit that
efficiency divides by, measured again each repeat because the machine drifts), then, in alternating
order, one server per way of sending the same input:

- `predict-json`: `POST /predict` with `{"x": [...]}` and the predictor of run.py (the reference);
- `oip-json`: `POST /v2/models/{name}/infer` with a JSON tensor, as tritonclient sends it with
  `binary_data=False` (flat data) and binary outputs off;
- `oip-binary`: the same route with the binary tensor extension both ways, as tritonclient sends it
  by default (`Inference-Header-Content-Length`, raw little-endian bytes, `binary_data_output`).

The OIP servers run mlkit_predictor.py:Oip, which takes the runtime's numpy input arrays as they come.
Each server is run.py's mlkit_runtime, pinned to core 0 (batching up to 32 within 2 ms, torch on one
thread, access log on), loaded by hey pinned to core 1, for each concurrency: req/s, p50/p99 and the server's CPU time per
request (all its threads, from /proc, and the event-loop thread alone). Efficiency is req/s over the
best bare samples/s measured just before that server; CPU efficiency is the bare forward's CPU time
per sample (its best batch size, timed by the process clock) over the server's CPU time per request:
on a machine whose core other processes share, wall-clock rates move with them and CPU times less.
Medians over repeats.

    python benchmarks/serving/oip.py                               # cnn and image, 3 repeats (~8 min)
    python benchmarks/serving/oip.py --models image --repeats 1 --duration 4
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from breakdown import cpu_seconds
from run import ENV, HERE, Running, bare, hey

KINDS = ("predict-json", "oip-json", "oip-binary")


def bodies(model: str, folder: Path) -> dict[str, tuple[str, Path, str, dict[str, str]]]:
    """Per kind: route, body file, content type and extra headers, all for the same input values."""
    import models
    import numpy as np

    row = models.payload(model)["x"]
    shape = [1, *models.SHAPES[model]]
    datatype, dtype = ("INT64", "<i8") if model == "encoder" else ("FP32", "<f4")
    out = {}
    predict = folder / f"{model}-predict.json"
    predict.write_bytes(json.dumps({"x": row}).encode())
    out["predict-json"] = ("/predict", predict, "application/json", {})
    as_json = folder / f"{model}-oip.json"
    as_json.write_bytes(json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": row}]}).encode())
    out["oip-json"] = (f"/v2/models/{model}/infer", as_json, "application/json", {})
    raw = np.asarray(row, dtype=dtype).tobytes()
    header = json.dumps({"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "parameters": {"binary_data_size": len(raw)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    binary = folder / f"{model}-oip.bin"
    binary.write_bytes(header + raw)
    out["oip-binary"] = (f"/v2/models/{model}/infer", binary, "application/octet-stream", {"Inference-Header-Content-Length": str(len(header))})
    return out


def bare_cpu(model: str) -> dict[int, float]:
    """The bare forward in samples per CPU-second (BENCH_CLOCK=cpu), on core 0 like bare()."""
    out = subprocess.run(["taskset", "-c", "0", sys.executable, str(HERE / "models.py"), model], capture_output=True, text=True,
                         env=ENV | {"BENCH_CLOCK": "cpu"}, check=True).stdout
    return {int(k): v for k, v in json.loads(out).items()}


def load(server: Running, route: str, body: Path, content_type: str, headers: dict, concurrency: int, seconds: float) -> dict:
    url = f"http://127.0.0.1:{server.port}{route}"
    main0, other0 = cpu_seconds(server.proc.pid)
    result = hey(url, body, concurrency, seconds, content_type, headers)
    main1, other1 = cpu_seconds(server.proc.pid)
    n = max(result["requests"], 1)
    result["cpu_us"] = ((main1 - main0) + (other1 - other0)) / n * 1e6
    result["loop_us"] = (main1 - main0) / n * 1e6
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["cnn", "image"])
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    p.add_argument("--concurrency", nargs="+", type=int, default=[1, 16])
    p.add_argument("--duration", type=float, default=5, help="seconds per load run")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=None, help="write all runs as JSON here")
    args = p.parse_args()
    if shutil.which("hey") is None or shutil.which("taskset") is None:
        sys.exit("needs `hey` and `taskset` (apt-get install hey util-linux)")
    runs: list[dict] = []
    limits: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            sent = bodies(model, Path(tmp))
            limits[model] = []
            for rep in range(args.repeats):
                print(f"\n{model} repeat {rep}", file=sys.stderr)
                order = args.kinds if rep % 2 == 0 else list(reversed(args.kinds))
                for kind in order:
                    # The limit, measured right before each server: on a shared machine it moves by
                    # tens of percent from one minute to the next.
                    bare_rates = bare(model)
                    cpu_rates = bare_cpu(model)
                    limits[model].append(bare_rates)
                    best = max(bare_rates.values())
                    print("  bare samples/s " + ", ".join(f"batch {k}: {v:.0f}" for k, v in bare_rates.items())
                          + "; per CPU-second " + ", ".join(f"batch {k}: {v:.0f}" for k, v in cpu_rates.items()), file=sys.stderr)
                    route, body, content_type, headers = sent[kind]
                    server = Running("mlkit" if kind == "predict-json" else "mlkit-oip", model, sent["predict-json"][1].read_bytes(), Path(tmp) / f"{kind}.log")
                    try:
                        hey(f"http://127.0.0.1:{server.port}{route}", body, 4, 2, content_type, headers)  # warm-up
                        for c in args.concurrency:
                            r = load(server, route, body, content_type, headers, c, args.duration)
                            r.update(model=model, kind=kind, concurrency=c, repeat=rep, efficiency=r["rps"] / best, body_bytes=body.stat().st_size,
                                     bare_best=best, bare_cpu_best=max(cpu_rates.values()), cpu_efficiency=1e6 / max(cpu_rates.values()) / r["cpu_us"])
                            runs.append(r)
                            print(f"  {kind:13} c={c:<3} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
                                  f"cpu {r['cpu_us']:7.0f} µs/req (loop {r['loop_us']:5.0f})  eff {r['efficiency']:.2f}  non-2xx {r['non_2xx']}",
                                  file=sys.stderr)
                    finally:
                        server.stop()
    if args.out:
        args.out.write_text(json.dumps({"bare": limits, "runs": runs}, indent=2))
    table(runs, limits)


def table(runs: list[dict], limits: dict[str, list[dict]]) -> None:
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["model"], r["concurrency"], r["kind"]), []).append(r)

    def med(rs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rs)

    print("| model | load | sent as | body bytes | req/s | p50 / p99 ms | server CPU µs/request (event loop) | efficiency (range) | CPU efficiency | non-2xx |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for (model, c, kind), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], KINDS.index(kv[0][2]))):
        effs = [r["efficiency"] for r in rs]
        print(f"| {model} | c={c} | {kind} | {rs[0]['body_bytes']} | {med(rs, 'rps'):.0f} | {med(rs, 'p50_ms'):.1f} / {med(rs, 'p99_ms'):.1f} | "
              f"{med(rs, 'cpu_us'):.0f} ({med(rs, 'loop_us'):.0f}) | "
              f"{statistics.median(effs):.2f} ({min(effs):.2f}-{max(effs):.2f}) | {med(rs, 'cpu_efficiency'):.2f} | "
              f"{sum(r['non_2xx'] for r in rs)} |")
    print()
    for model, measured in limits.items():
        per_batch = {b: sorted(m[b] for m in measured) for b in measured[0]}
        batches = "; ".join(f"batch {b} {statistics.median(v):.0f} ({v[0]:.0f}-{v[-1]:.0f})" for b, v in per_batch.items())
        print(f"{model}: bare samples/s over {len(measured)} measurements: {batches}")
        for c in sorted({k[1] for k in groups if k[0] == model}):
            j, b = groups.get((model, c, "oip-json")), groups.get((model, c, "oip-binary"))
            if j and b:
                # Repeat by repeat; a repeat one kind lacks (a run that failed) drops out rather than stopping the table.
                ratios = [rb["rps"] / rj["rps"] for rj, rb in zip(j, b, strict=False)]
                print(f"{model} c={c}: binary / JSON throughput {statistics.median(ratios):.1f}x (per repeat: {', '.join(f'{x:.1f}' for x in ratios)})")


if __name__ == "__main__":
    main()
