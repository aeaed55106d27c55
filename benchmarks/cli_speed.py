"""How fast the CLI answers: `mlkit --help` and `mlkit render` of a spec with 3 APIs and 4 node pools.

Targets (issue 2): render under 0.5 s wall, --help under 0.3 s, with nothing cloud-specific
(boto3, google libraries) imported on either path. Each figure is the median of N runs of a fresh
process, as a user would see it.

    python benchmarks/cli_speed.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """\
project: bench
cloud: aws
region: us-west-2
cluster:
  kubernetes_version: "1.31"
  node_pools:
    - {name: cpu, instance_type: m6i.large, min_nodes: 1, max_nodes: 5}
    - {name: cpu-big, instance_type: m6i.4xlarge, min_nodes: 0, max_nodes: 5}
    - {name: gpu, instance_type: g5.xlarge, min_nodes: 0, max_nodes: 2, spot: true}
    - {name: inf, instance_type: inf2.xlarge, min_nodes: 0, max_nodes: 3}
apis:
  - {name: a, predictor: predictor.py:Predictor, compute: {cpu: 1, memory: 2Gi}}
  - {name: b, predictor: predictor.py:Predictor, compute: {cpu: 2, memory: 4Gi, gpu: 1}}
  - {name: c, predictor: predictor.py:Predictor, compute: {cpu: 2, memory: 4Gi, neuron_cores: 2}}
"""


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def imported_modules(code: str, cwd: Path) -> set[str]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=cwd, capture_output=True, text=True)
    return {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    mlkit = [sys.executable, "-m", "mlkit"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "mlkit.yaml").write_text(SPEC)
        # validate checks that the predictor file exists and defines the class the spec names
        (work / "predictor.py").write_text("class Predictor:\n    def predict(self, payload):\n        return payload\n")
        subprocess.run([*mlkit, "render"], cwd=work, check=True, capture_output=True)  # warm the file cache
        help_times = [timed([*mlkit, "--help"], work) for _ in range(args.runs)]
        render_times = []
        for _ in range(args.runs):
            subprocess.run(["rm", "-rf", "infra", ".mlkit"], cwd=work, check=True)
            render_times.append(timed([*mlkit, "render"], work))
        rerender_times = [timed([*mlkit, "render"], work) for _ in range(args.runs)]
        heavy = {"boto3", "botocore", "google", "kubernetes", "torch"}
        run_main = "from mlkit.__main__ import main\ntry: main()\nexcept SystemExit: pass"
        on_help = heavy & imported_modules("import sys; sys.argv=['mlkit','--help']\n" + run_main, work)
        on_render = heavy & imported_modules("import sys; sys.argv=['mlkit','render']\n" + run_main, work)

    def row(name: str, times: list[float], target: float) -> str:
        med = statistics.median(times)
        cells = [name, *(f"{t * 1000:.0f} ms" for t in (med, min(times), max(times), target)), "ok" if med < target else "MISSED"]
        return "| " + " | ".join(cells) + " |"

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.runs} runs each\n")
    print("| command | median | min | max | target | |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(row("mlkit --help", help_times, 0.3))
    print(row("mlkit render (first, 3 APIs, 4 pools)", render_times, 0.5))
    print(row("mlkit render (again, merge)", rerender_times, 0.5))
    print(f"\ncloud SDKs imported: --help {sorted(on_help) or 'none'}, render {sorted(on_render) or 'none'}")


if __name__ == "__main__":
    main()
