"""examples/llm's model through the runtime against the same model's bare decode loop, in one process.

The runtime serves the example predictor on 127.0.0.1 (uvicorn in a thread, the OpenAI chat route,
streamed); the client streams over HTTP from this process's event loop. The bare loop is the same
model, greedy, with a KV cache and incremental detokenization, called directly: no HTTP, no engine
thread, no runtime. Both generate exactly `--max-tokens` tokens (end-of-turn is ignored by neither:
the prompt asks for a long answer, and a run that ends early is reported).

    .venv/bin/python benchmarks/llm/bench.py                      # c=1 and c=8, 32 tokens
    .venv/bin/python benchmarks/llm/bench.py --requests 2 --max-tokens 4 --concurrency 1   # smoke

Reported per setting: time to first token p50/p99, tokens/s per request and in total, and at c=1 the
runtime's overhead per token (its mean time per token minus the bare loop's). Goals (issue 14): at
c=1 TTFT and tokens/s within 5% of bare; at c=8 total tokens/s no lower than the bare loop run one
request after another.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "llm"
PROMPT = [{"role": "user", "content": "Write a long story about a robot who learns to paint."}]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def bare(predictor: Any, max_tokens: int) -> dict[str, float]:
    """One request by hand: prefill, then one forward per token, as the example's engine does for a batch of one."""
    import torch

    start = time.perf_counter()
    ids = predictor._ids(PROMPT)  # the chat template and tokenizer, as a request pays them
    first = 0.0
    produced: list[int] = []
    with torch.inference_mode():
        inputs = torch.tensor([ids])
        past = None
        for _ in range(max_tokens):
            out = predictor.model(input_ids=inputs, use_cache=True, **{predictor.cache_name: past})
            past = getattr(out, predictor.cache_name)
            token = int(out.logits[0, -1].argmax())
            produced.append(token)
            predictor.tokenizer.decode(produced, skip_special_tokens=True)
            if not first:
                first = time.perf_counter()
            inputs = torch.tensor([[token]])
    end = time.perf_counter()
    return {"ttft": first - start, "seconds": end - start, "tokens": len(produced)}


async def through_runtime(client: Any, url: str, max_tokens: int) -> dict[str, float]:
    body = {"model": "chat", "messages": PROMPT, "max_tokens": max_tokens, "stream": True, "stream_options": {"include_usage": True}}
    start = time.perf_counter()
    first = 0.0
    tokens = 0
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            data = json.loads(line[6:])
            if data.get("usage"):
                tokens = data["usage"]["completion_tokens"]
            elif data["choices"] and data["choices"][0]["delta"].get("content") and not first:
                first = time.perf_counter()
    end = time.perf_counter()
    return {"ttft": first - start, "seconds": end - start, "tokens": tokens}


def summary(name: str, concurrency: int, runs: list[dict[str, float]], wall: float) -> dict[str, Any]:
    ttfts = [r["ttft"] for r in runs]
    return {
        "setting": name,
        "concurrency": concurrency,
        "requests": len(runs),
        "tokens": sum(r["tokens"] for r in runs),
        "ttft_p50_ms": round(percentile(ttfts, 50) * 1000, 1),
        "ttft_p99_ms": round(percentile(ttfts, 99) * 1000, 1),
        "tokens_per_s_per_request": round(statistics.mean(r["tokens"] / r["seconds"] for r in runs), 2),
        "tokens_per_s_total": round(sum(r["tokens"] for r in runs) / wall, 2),
        "ms_per_token": round(statistics.mean(r["seconds"] / max(1, r["tokens"]) for r in runs) * 1000, 2),
    }


def start_server(port: int) -> tuple[Any, Any]:
    sys.path.insert(0, str(REPO))
    import uvicorn

    from mlkit_runtime.app import create_app
    from mlkit_runtime.server import build_config
    from mlkit_runtime.settings import Settings

    settings = Settings.load(
        {
            "predictor": f"{EXAMPLE / 'predictor.py'}:Predictor",
            "model_dir": str(EXAMPLE / "model"),
            "name": "chat",
            "port": port,
            "max_in_flight": 16,
            "access_log": False,
            "log_level": "warning",
            "config": json.dumps({"max_batch": 8, "batch_wait_ms": 5}),
        },
        environ={},
    )
    app = create_app(settings)
    server = uvicorn.Server(build_config(settings, app))
    threading.Thread(target=server.run, name="uvicorn", daemon=True).start()
    return server, app


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-tokens", type=int, default=32, help="Tokens per request.")
    parser.add_argument("--requests", type=int, default=8, help="Requests per setting at concurrency 1; at concurrency c, c requests (one round).")
    parser.add_argument("--rounds", type=int, default=2, help="Rounds of c concurrent requests for c > 1.")
    parser.add_argument("--concurrency", default="1,8", help="Comma-separated concurrencies.")
    parser.add_argument("--json", type=Path, help="Also write the results here as JSON.")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    import httpx

    from tests.conftest import free_port

    port = free_port()
    server, app = start_server(port)
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=64)) as client:
        deadline = time.monotonic() + 600
        while True:
            try:
                if (await client.get(url + "/readyz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or not server.started and server.should_exit:
                print("the server did not become ready", file=sys.stderr)
                return 1
            await asyncio.sleep(0.2)
        predictor = app.state.runtime.instance
        results: list[dict[str, Any]] = []
        # Warm both paths (first forward passes allocate).
        bare(predictor, 4)
        await through_runtime(client, url, 4)
        for c in levels:
            if c == 1:
                # Alternated request by request, so that the machine's drift falls on both alike.
                bare_runs, served_runs, bare_s, served_s = [], [], 0.0, 0.0
                for _ in range(args.requests):
                    t = time.perf_counter()
                    bare_runs.append(bare(predictor, args.max_tokens))
                    bare_s += time.perf_counter() - t
                    t = time.perf_counter()
                    served_runs.append(await through_runtime(client, url, args.max_tokens))
                    served_s += time.perf_counter() - t
                results.append(summary("bare loop", 1, bare_runs, bare_s))
                results.append(summary("runtime", 1, served_runs, served_s))
                continue
            runs = []
            t = time.perf_counter()
            for _ in range(c * args.rounds):
                runs.append(bare(predictor, args.max_tokens))
            results.append(summary("bare loop, one after another", c, runs, time.perf_counter() - t))
            runs = []
            t = time.perf_counter()
            for _ in range(args.rounds):
                runs += await asyncio.gather(*(through_runtime(client, url, args.max_tokens) for _ in range(c)))
            results.append(summary("runtime", c, runs, time.perf_counter() - t))
    server.should_exit = True

    import torch

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    header = f"# {machine}, torch {torch.__version__} ({torch.get_num_threads()} threads), {args.max_tokens} tokens per request"
    print(header)
    print("| setting | c | requests | TTFT p50 ms | TTFT p99 ms | tok/s per request | tok/s total | ms/token |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['setting']} | {r['concurrency']} | {r['requests']} | {r['ttft_p50_ms']} | {r['ttft_p99_ms']} | "
            f"{r['tokens_per_s_per_request']} | {r['tokens_per_s_total']} | {r['ms_per_token']} |"
        )
    short = [r for r in results if r["tokens"] != r["requests"] * args.max_tokens]
    for r in short:
        print(f"note: {r['setting']} at c={r['concurrency']} generated {r['tokens']} tokens, not {r['requests'] * args.max_tokens}")
    by = {(r["setting"].split(",")[0], r["concurrency"]): r for r in results}
    if ("bare loop", 1) in by and ("runtime", 1) in by:
        b, rt = by[("bare loop", 1)], by[("runtime", 1)]
        overhead = rt["ms_per_token"] - b["ms_per_token"]
        ttft = 100 * (rt["ttft_p50_ms"] / b["ttft_p50_ms"] - 1)
        rate = 100 * (rt["tokens_per_s_per_request"] / b["tokens_per_s_per_request"] - 1)
        print(f"c=1: runtime overhead {overhead:+.2f} ms/token; TTFT p50 {ttft:+.1f}%, tokens/s per request {rate:+.1f}% (goal: within 5%)")
    for c in levels:
        if c > 1 and ("bare loop", c) in by and ("runtime", c) in by:
            b, rt = by[("bare loop", c)], by[("runtime", c)]
            print(
                f"c={c}: runtime total {rt['tokens_per_s_total']} tok/s vs bare one after another {b['tokens_per_s_total']} tok/s "
                f"({rt['tokens_per_s_total'] / b['tokens_per_s_total']:.2f}x; goal: at least 1x)"
            )
    if args.json:
        args.json.write_text(json.dumps({"header": header, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    raise SystemExit(asyncio.run(main()))
