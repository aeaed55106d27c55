"""Extract the Prometheus metric names a vLLM server exports, from vLLM's published wheel, into
metrics-<version>.json beside this file.

    python -m pip download vllm==0.31.0 --no-deps -d /tmp/vllm
    python -m pip download "prometheus-fastapi-instrumentator>=8.0.0" --no-deps -d /tmp/vllm
    python tests/render/data/vllm_metrics/extract.py /tmp/vllm/vllm-0.31.0-*.whl /tmp/vllm/prometheus_fastapi_instrumentator-*.whl

Nothing is imported or installed: the wheels are read as zip files and their Python parsed with `ast`.
- The engine's metrics: every call in the vllm package whose keyword `name` is a string literal
  starting with `vllm:` and whose callee is a prometheus_client class or one of vLLM's wrappers of
  them (`_gauge_cls`, `_counter_cls`, `_histogram_cls` in vllm/v1/metrics/loggers.py), the name given
  as the keyword `name` or the first argument. Metric-shaped `vllm:` literals outside such calls (names
  kept in tables and passed on: KV offload, speculative decoding) are listed under `names_not_typed`,
  with their files: their kind is not read.
- The API server's HTTP metrics: vLLM calls `Instrumentator(...).add()` with no argument, which adds
  prometheus_fastapi_instrumentator's `metrics.default()`; the names are that function's metric
  calls. The script fails if vLLM's `.add()` call ever takes an argument.
A counter's name is recorded without `_total` (prometheus_client appends it on export).

Run it again whenever the vllm image pin in cli/spec/engines.py moves, in the same commit.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
import zipfile
from pathlib import Path

KINDS = {
    "Gauge": "gauge", "_gauge_cls": "gauge",
    "Counter": "counter", "_counter_cls": "counter",
    "Histogram": "histogram", "_histogram_cls": "histogram",
    "Summary": "summary",
}
METRIC_SHAPED = re.compile(r"vllm:[a-z0-9_]+")
INSTRUMENTATOR_CALLER = "vllm/entrypoints/serve/instrumentator/metrics.py"


def callee(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def literal_name(call: ast.Call) -> str | None:
    given = [k.value for k in call.keywords if k.arg == "name"] or call.args[:1]
    if given and isinstance(given[0], ast.Constant) and isinstance(given[0].value, str):
        return given[0].value
    return None


def metric_calls(tree: ast.AST) -> list[tuple[str, str]]:
    """(name, kind) of every prometheus metric made with a literal name, a counter's name without _total."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and callee(node) in KINDS and (name := literal_name(node)) is not None:
            kind = KINDS[callee(node)]
            found.append((name.removesuffix("_total") if kind == "counter" else name, kind))
    return found


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def engine_metrics(wheel: Path) -> tuple[dict[str, str], dict[str, list[str]], dict[str, list[str]]]:
    metrics: dict[str, str] = {}
    sources: dict[str, list[str]] = {}
    shaped: dict[str, set[str]] = {}
    with zipfile.ZipFile(wheel) as archive:
        for member in sorted(archive.namelist()):
            if not (member.startswith("vllm/") and member.endswith(".py")):
                continue
            text = archive.read(member).decode()
            if '"vllm:' not in text:
                continue
            tree = ast.parse(text, member)
            for n in ast.walk(tree):
                if isinstance(n, ast.Constant) and isinstance(n.value, str) and METRIC_SHAPED.fullmatch(n.value):
                    shaped.setdefault(n.value, set()).add(member)
            for name, kind in metric_calls(tree):
                if name.startswith("vllm:"):
                    if metrics.setdefault(name, kind) != kind:
                        raise SystemExit(f"{name} is made as a {metrics[name]} and as a {kind} ({member})")
                    sources.setdefault(member, []).append(name)
        caller = ast.parse(archive.read(INSTRUMENTATOR_CALLER).decode(), INSTRUMENTATOR_CALLER)
    adds = [n for n in ast.walk(caller) if isinstance(n, ast.Call) and callee(n) == "add"]
    if len(adds) != 1 or adds[0].args or adds[0].keywords:
        raise SystemExit(f"{INSTRUMENTATOR_CALLER}: expected one Instrumentator(...).add() without arguments (the default metrics)")
    typed = set(metrics) | {name + "_total" for name, kind in metrics.items() if kind == "counter"}
    untyped = {name: sorted(files) for name, files in sorted(shaped.items()) if name not in typed}
    return metrics, {k: sorted(set(v)) for k, v in sources.items()}, untyped


def http_metrics(wheel: Path) -> tuple[dict[str, str], str]:
    path = "prometheus_fastapi_instrumentator/metrics.py"
    with zipfile.ZipFile(wheel) as archive:
        tree = ast.parse(archive.read(path).decode(), path)
    default = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "default")
    return dict(metric_calls(default)), path


def main(vllm_wheel: str, instrumentator_wheel: str) -> None:
    vllm, instrumentator = Path(vllm_wheel), Path(instrumentator_wheel)
    version = vllm.name.split("-")[1]
    engine, sources, untyped = engine_metrics(vllm)
    http, http_source = http_metrics(instrumentator)
    data = {
        "source": {
            "vllm_wheel": vllm.name,
            "vllm_wheel_sha256": sha256(vllm),
            "vllm_files": sources,
            "instrumentator_wheel": instrumentator.name,
            "instrumentator_wheel_sha256": sha256(instrumentator),
            "instrumentator_file": f"{http_source} default()",
            "made_by": "tests/render/data/vllm_metrics/extract.py",
        },
        "metrics": dict(sorted(engine.items())),
        "http_metrics": dict(sorted(http.items())),
        "names_not_typed": untyped,
    }
    out = Path(__file__).resolve().parent / f"metrics-{version}.json"
    out.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"{out.name}: {len(engine)} vllm metrics, {len(http)} http metrics, {len(untyped)} names not typed", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
