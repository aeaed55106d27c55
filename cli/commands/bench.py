"""`mlkit bench [API]`: measure the API under the real runtime on this machine and plan capacity.

Each configuration of the sweep (max_batch_size x max_wait_ms x max_in_flight) gets a fresh
`python -m mlkit_runtime` with the API's predictor, model and config, driven by the open-loop load
generator (Poisson arrivals, latency from the scheduled send time). Each rate is measured in windows
until three agree (mlkit.bench.sweep). The capacity of a configuration is the highest offered rate
with p99 within --p99-ms and at least 99% answered 2xx, with its spread. With --rps, the best
configuration (by more than the spreads, else the simplest of those that tie) becomes settings,
replicas, nodes of the API's pool and a monthly cost.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import UserError
from ..options import DEFAULT_SPEC, JsonOut, SpecFile, say

MAX_CONFIGS = 12  # each costs a server start and five to eight rates: more is a long afternoon, not a bench
ROUGH = "--quick measures each rate once, without waiting for windows to agree: a rough answer, whose capacities may move by tens of percent from run to run"


def _numbers(text: str | None, option: str, kind: type, minimum: float) -> list[Any]:
    if text is None:
        return []
    values = []
    for part in text.split(","):
        try:
            value = kind(part.strip())
        except ValueError:
            expected = "a whole number" if kind is int else "a number"
            raise UserError(f"{option} {text!r}: {part.strip()!r} is not {expected}; give a comma-separated list, e.g. 1,8,32") from None
        if not math.isfinite(value) or value < minimum:
            raise UserError(f"{option} {text!r}: {value} is below {minimum:g}")
        values.append(value)
    return sorted(set(values))


def _payload(payload: str | None, root: Path) -> bytes:
    """The request body: --payload JSON, --payload @file, or payload.json beside mlkit.yaml."""
    if payload is None:
        default = root / "payload.json"
        if default.is_symlink():  # project data, maybe from someone else's pull request: never followed
            raise UserError(f"{default} is a symlink; mlkit reads only files inside the project: replace it with a file, or pass --payload")
        if not default.exists():
            raise UserError(f"no payload to send: pass --payload '{{\"text\": \"great\"}}' or --payload @file.json, or put a payload.json in {root}")
        payload = "@" + str(default)
    from ..requestbody import read

    body, _, _ = read(payload, "--payload", stdin=False)
    return body


def command(
    api: Annotated[str | None, typer.Argument(help="API to measure; may be left out when the spec has one API.")] = None,
    file: SpecFile = DEFAULT_SPEC,
    payload: Annotated[
        str | None, typer.Option("--payload", metavar="JSON|@FILE", help="Request body to send: JSON, or @file. Default: payload.json beside mlkit.yaml.")
    ] = None,
    rps: Annotated[float | None, typer.Option("--rps", min=0.001, max=1e9, help="Traffic to plan for (req/s): settings, replicas, nodes, cost.")] = None,
    p99_ms: Annotated[float, typer.Option("--p99-ms", min=0.1, max=600_000, help="Latency target: a rate counts only if p99 stays within it.")] = 100.0,
    batch_sizes: Annotated[str | None, typer.Option("--batch-sizes", metavar="N,N", help="max_batch_size values to try. Default: 1, spec's, 2x that.")] = None,
    wait_ms: Annotated[str | None, typer.Option("--wait-ms", metavar="MS,MS", help="max_wait_ms values to try. Default: the spec's.")] = None,
    in_flight: Annotated[str | None, typer.Option("--max-in-flight", metavar="N,N", help="max_in_flight values to try. Default: the spec's.")] = None,
    seconds: Annotated[
        float,
        typer.Option(
            "--seconds",
            min=0.1,
            max=600,
            help="Length of each measurement window (longer where it would hold under 50 requests, or three last under p99 target / tolerance).",
        ),
    ] = 0.5,
    stability: Annotated[
        float, typer.Option("--stability", min=1, max=100, help="Percent within which three consecutive windows' throughput must agree (as perf_analyzer's).")
    ] = 10.0,
    max_windows: Annotated[
        int, typer.Option("--max-windows", min=3, max=100, help="Windows at most per rate: the time bound; a rate that has not settled by then says so.")
    ] = 10,
    quick: Annotated[bool, typer.Option("--quick", help="One window per rate, no settling: a rough answer in about a third of the time.")] = False,
    route: Annotated[str, typer.Option("--route", help="Route to load: /predict, or e.g. /v1/models/NAME:predict with a KServe body.")] = "/predict",
    chart: Annotated[
        Path | None, typer.Option("--chart", help="SVG chart of latency against offered load. Default: .mlkit/bench/<api>.svg in the project.", dir_okay=False)
    ] = None,
    prices: Annotated[Path | None, typer.Option("--prices", help="Price table to use (layout of the kit's cli/bench/prices.yaml).", dir_okay=False)] = None,
    model_dir: Annotated[Path | None, typer.Option("--model-dir", help="Local model folder instead of the spec's `model` (for s3:// or gs://).")] = None,
    as_json: JsonOut = False,
) -> None:
    """Measure an API's capacity per replica at a latency target; with --rps, plan replicas, nodes and cost.

    Example: mlkit bench sentiment --rps 2000 --p99-ms 50
    """
    from .. import placement
    from ..bench import chart as charts
    from ..bench import machine
    from ..bench import prices as price_table
    from ..bench.recommend import Demand, quantity, recommend
    from ..bench.server import Config, Target
    from ..bench.sweep import Windows, bench_config, second_look
    from ..clouds import gpu_sharing
    from ..spec import accelerators
    from .serve import create_file, local_api, project_folder

    spec, chosen, root, model_dir = local_api(file, api, model_dir, "bench")
    if not route.startswith("/") or any(c in route for c in " \r\n"):
        raise UserError(f"--route {route!r}: give a path such as /predict")
    body = _payload(payload, root)
    try:
        import mlkit_runtime  # noqa: F401  (the bench runs it in a subprocess: it must be installed)
    except ImportError:
        raise UserError("mlkit bench runs the predictor runtime: pip install 'mlkit[runtime]'") from None
    table = price_table.load(prices) if prices is not None else price_table.load()
    spec_batch = chosen.batching.max_batch_size
    configs = [
        Config(b, w, f)
        for b in (_numbers(batch_sizes, "--batch-sizes", int, 1) or sorted({1, spec_batch, min(4096, 2 * spec_batch)}))
        for w in (_numbers(wait_ms, "--wait-ms", float, 0) or [chosen.batching.max_wait_ms])
        for f in (_numbers(in_flight, "--max-in-flight", int, 1) or [chosen.concurrency.max_in_flight])
    ]
    if len(configs) > MAX_CONFIGS:
        raise UserError(f"{len(configs)} configurations to try (batch sizes x wait times x in-flight limits); give at most {MAX_CONFIGS}")
    # Checked now, written after the measuring: a bad path fails before minutes are spent, and a
    # failed run leaves nothing behind.
    chart_fix = "remove it, or pass --chart PATH"
    if chart is None:
        project_folder(root, "bench", chart_fix, create=False)
    else:
        if chart.is_symlink() or chart.is_dir():
            raise UserError(f"--chart {chart}: is a symlink or a folder; give a file path")
        if not chart.parent.is_dir():
            raise UserError(f"--chart {chart}: folder {chart.parent} does not exist")
    if chosen.predictor is None:
        raise UserError(f"{chosen.name} runs engine {chosen.engine}: mlkit bench measures predictor APIs; use the engine's own benchmark tools")
    file_part, _, class_name = chosen.predictor.partition(":")
    target = Target(f"{root / file_part}:{class_name}", model_dir, chosen.name, json.dumps(chosen.config), chosen.concurrency.max_queue)
    windows = Windows(seconds, 1, 1) if quick else Windows(seconds, stability / 100, max_windows)
    if quick:
        say(f"note: {ROUGH}")
    busy = machine.load()
    if machine.warning(busy):
        say(f"note: {machine.warning(busy)}")

    started = time.monotonic()
    outcomes = []
    for i, config in enumerate(configs, start=1):
        say(f"[{i}/{len(configs)}] {chosen.name}: {config.label()}")
        outcomes.append(bench_config(target, config, route, body, windows, p99_ms, say))
    if not quick and any(o.capacity is not None for o in outcomes):
        say("second look at each capacity, now that every configuration has had its first (the machine may have changed since)")
        for outcome in outcomes:
            if outcome.capacity is not None:
                say(f"  {outcome.config.label()}:")
                second_look(target, outcome, route, body, windows, p99_ms, say)
    wall_s = time.monotonic() - started

    result: dict[str, Any] = {
        "api": chosen.name,
        "p99_target_ms": p99_ms,
        "window_seconds": seconds,
        "stability_percent": None if quick else stability,
        "max_windows": windows.max_windows,
        "rough": quick,
        "machine": busy,
        "wall_seconds": round(wall_s, 1),
        "configs": [o.as_json() for o in outcomes],
    }
    if quick:
        result["note"] = ROUGH
    if rps is not None:
        kind, amount = placement.api_demand(chosen)
        pool = placement.pool_for(chosen, spec)
        demand = Demand(quantity(chosen.compute.cpu), quantity(chosen.compute.memory) / 2**30, kind, amount, gpu_sharing.shares_per_gpu(pool))
        node_type = None
        if pool is not None:
            node_type = pool.instance_type or (accelerators.tpu_slice(pool.tpu.version, pool.tpu.topology).machine_type if pool.tpu else None)
        rec = recommend(outcomes, rps, p99_ms, demand, table.types.get(node_type or ""), node_type, table)
        if pool is not None:
            rec["node_pool"] = pool.name
        elif "error" not in rec:
            rec["cost_note"] = "no node pool in the spec runs this API (an existing cluster?): nodes and cost not estimated"
        result["recommendation"] = rec
    chart_path = chart if chart is not None else project_folder(root, "bench", chart_fix) / f"{chosen.name}.svg"
    create_file(chart_path, charts.svg(outcomes, p99_ms, f"mlkit bench {chosen.name}: latency against offered load"), replace=True)
    result["chart"] = str(chart_path)
    say(f"chart: {chart_path} ({wall_s:.0f} s of measuring)")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        typer.echo(_text(result))


def _text(result: dict[str, Any]) -> str:
    from ..bench import machine

    lines = [f"{result['api']}: capacity of one replica at p99 <= {result['p99_target_ms']:g} ms with 99% answered", ""]
    if result["rough"]:
        lines[1:1] = [f"rough: {result['note']}"]
    else:
        settle = f"until 3 agreed within {result['stability_percent']:g}% (at most {result['max_windows']})"
        lines[1:1] = [f"each rate measured in windows of {result['window_seconds']:g} s or more {settle}"]
    busy = machine.warning(result["machine"])
    if busy:
        lines[1:1] = [f"note: {busy}"]
    lines.append(f"  {'max_batch_size':>14} {'max_wait_ms':>11} {'max_in_flight':>13} {'capacity req/s':>18} {'p50 ms':>7} {'p99 ms':>7}")
    for c in result["configs"]:
        cfg = c["config"]
        cap = c["at_capacity"]
        p50, p99 = (f"{cap['p50_ms']:.1f}", f"{cap['p99_ms']:.1f}") if cap else ("-", "-")
        capacity = f"{c['capacity_rps']:.0f} ± {c['spread_rps']:.0f}" if cap else "none"
        lines.append(f"  {cfg['max_batch_size']:>14} {cfg['max_wait_ms']:>11g} {cfg['max_in_flight']:>13} {capacity:>18} {p50:>7} {p99:>7}")
    rec = result.get("recommendation")
    if rec:
        lines.append("")
        if "error" in rec:
            lines.append(f"no recommendation: {rec['error']}")
        else:
            lines.append(f"for {rec['rps']:g} req/s at p99 <= {rec['p99_ms']:g} ms:")
            if rec["ties"]:
                others = "; ".join(f"{t['config']} ({t['capacity_rps']:.0f} ± {t['spread_rps']:.0f} req/s)" for t in rec["ties"])
                lines.append(
                    f"  tie:         {others} within the spreads of this one "
                    f"({rec['capacity_per_replica_rps']:.0f} ± {rec['capacity_spread_rps']:.0f}): the simpler configuration is recommended"
                )
            lines.append(f"  batching:    {{max_batch_size: {rec['max_batch_size']}, max_wait_ms: {rec['max_wait_ms']:g}}}")
            lines.append(f"  concurrency: {{max_in_flight: {rec['max_in_flight']}}}")
            lines.append(
                f"  autoscaling: {{target_in_flight: {rec['target_in_flight']}}} with {rec['replicas']} replica{'s' if rec['replicas'] != 1 else ''} "
                f"({rec['rps_per_replica']:g} req/s each x {rec['mean_latency_ms']:g} ms mean = {rec['little_in_flight']:g} in flight, Little's law)"
            )
            if rec.get("nodes"):
                lines.append(f"  nodes:       {rec['nodes']} x {rec['node_type']} (pool {rec.get('node_pool')}, {rec['replicas_per_node']} replicas per node)")
                cost = f"${rec['monthly_on_demand_usd']:,.2f} on demand, ${rec['monthly_spot_usd']:,.2f} on spot"
                lines.append(f"  monthly:     {cost} (prices of {rec['prices_taken']}; prices change)")
            else:
                lines.append(f"  nodes:       {rec.get('cost_note', 'no node pool fits this API')}")
    lines.append("")
    lines.append(f"chart: {result['chart']}")
    return "\n".join(lines)
