"""`mlkit bench` against the real runtime: a predictor whose cost per batch is known, the sentiment
example end to end in under a minute, and the bad inputs it must refuse in one line."""

from __future__ import annotations

import json
import math
import os
import re
import time
from pathlib import Path

import pytest
import yaml

from tests.bench.chart_check import check_elements, check_rendered
from tests.conftest import assert_one_line_error, mlkit

# predict_batch of n payloads takes FIXED + PER_ITEM * n seconds (a sleep: no CPU, so the two shared
# cores of the test machine disturb it little). One batch runs at a time, so a replica serves at most
# n / (FIXED + PER_ITEM * n) requests per second with batches of n (less where batches leave part-full).
FIXED, PER_ITEM = 0.040, 0.002
KNOWN_COST = f"""
import time


class Predictor:
    def __init__(self, config, model_dir):
        pass

    def predict(self, payload):
        return self.predict_batch([payload])[0]

    def predict_batch(self, payloads):
        time.sleep({FIXED} + {PER_ITEM} * len(payloads))
        return [{{"ok": True}} for _ in payloads]
"""


def saturation(batch: int) -> float:
    return batch / (FIXED + PER_ITEM * batch)


def check_arithmetic(out: dict, rps: float) -> None:
    """Capacity per replica lies between half and 115% of the batch arithmetic, and replicas, in-flight
    target, nodes and cost follow from the measured figures exactly.

    Why these bounds: a rate above n / (a + b n) cannot be served (the queue grows without end). Each
    rate runs for at least p99 target / tolerance (sweep.horizon), long enough for a queue growing at
    more than the tolerance (10%) to push the p99 over the target, hence 115%. Below, the
    p99 target cuts in before saturation (queueing delay grows as the rate nears it), and the search
    brackets the edge to within the stability tolerance, on a machine whose cores other jobs share.
    """
    capacity = {c["config"]["max_batch_size"]: c["capacity_rps"] for c in out["configs"]}
    for batch, measured in capacity.items():
        assert 0.5 * saturation(batch) <= measured <= 1.15 * saturation(batch), (batch, measured, saturation(batch))
    rec = out["recommendation"]
    chosen = rec["max_batch_size"]
    assert rec["capacity_per_replica_rps"] == capacity[chosen]
    assert rec["replicas"] == math.ceil(rps / capacity[chosen])
    assert rec["rps_per_replica"] == pytest.approx(rps / rec["replicas"], abs=0.1)
    # Little's law from the measured mean latency, which cannot be below one batch of one.
    assert rec["mean_latency_ms"] >= (FIXED + PER_ITEM) * 1000
    assert rec["target_in_flight"] == math.ceil(rec["rps_per_replica"] * rec["mean_latency_ms"] / 1000 - 1e-6)
    # The sentiment example: 500m CPU and 512Mi a replica on m6i.large (2 vCPU, 8 GiB; 90% allocatable) -> 3 a node.
    assert (rec["node_pool"], rec["node_type"], rec["replicas_per_node"]) == ("cpu", "m6i.large", 3)
    assert rec["nodes"] == math.ceil(rec["replicas"] / 3)
    prices = yaml.safe_load((Path(__file__).parents[2] / "cli/bench/prices.yaml").read_text())
    node = prices["types"]["m6i.large"]
    assert rec["monthly_on_demand_usd"] == pytest.approx(rec["nodes"] * node["on_demand"] * 730, abs=0.01)
    assert rec["monthly_spot_usd"] == pytest.approx(rec["nodes"] * node["spot"] * 730, abs=0.01)


def test_three_runs_of_a_known_cost_agree(project):
    """Three runs recommend the same configuration, and each configuration's capacities agree
    within the spreads the runs report (the intervals capacity ± spread overlap pairwise). Batch 16
    (222 req/s at saturation) against batch 8 (143): apart by more than any spread, so the ranking
    must say 16 every time; each run's figures also follow the arithmetic. Each rate runs 3 s (p99
    target / tolerance, sweep.horizon). Halving the cost and the target (1.5 s a rate) was tried and
    was more fragile on a busy machine: a stall of 100 ms fails a 150 ms p99, and ties followed.

    The three runs go at the same time, each its own `mlkit bench` process, runtimes and chart: one run
    is about 75 s of wall but 8 CPU-seconds (the known cost sleeps), so one after the other they left a
    core idle for 3.5 minutes of CI's serial phase. At the same time each run also shares the machine
    with two others' load generators and runtimes, which is no easier than running alone."""
    proj = project("sentiment")
    (proj / "predictor.py").write_text(KNOWN_COST)
    rps = 400.0
    args = ["--rps", str(rps), "--p99-ms", "300", "--batch-sizes", "8,16", "--wait-ms", "5", "--seconds", "0.25", "--json"]
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda i: mlkit("bench", *args, "--chart", str(proj / f"run{i}.svg"), cwd=proj, timeout=300), range(3)))
    runs = []
    for result in results:
        assert result.returncode == 0, result.stderr
        assert "[1/2]" in result.stderr and "[2/2]" in result.stderr and "settled" in result.stderr  # progress, on stderr
        out = json.loads(result.stdout)
        assert out["rough"] is False and out["stability_percent"] == 10 and out["max_windows"] == 10
        check_arithmetic(out, rps)
        for c in out["configs"]:
            for p in c["points"]:
                assert p["windows"] <= 10 and (p["settled"] is False or p["windows"] >= 3), p
        runs.append(out)
    summary = [({c["config"]["max_batch_size"]: (c["capacity_rps"], c["spread_rps"]) for c in r["configs"]}, r["recommendation"]) for r in runs]
    print([(caps, rec["max_batch_size"], rec["target_in_flight"]) for caps, rec in summary])
    assert [r["recommendation"]["max_batch_size"] for r in runs] == [16, 16, 16], summary
    assert len({(r["recommendation"]["max_wait_ms"], r["recommendation"]["max_in_flight"]) for r in runs}) == 1
    for batch in (8, 16):
        figures = [caps[batch] for caps, _ in summary]
        for i, (a, sa) in enumerate(figures):
            for b, sb in figures[i + 1 :]:
                assert abs(a - b) <= sa + sb, (batch, figures)


def test_a_rate_over_what_a_replica_serves_fails_however_short_the_windows(project):
    """15% over batch 8's saturation, at a 300 ms target, in windows of 0.25 s asked for: every request is
    answered within the lag and the windows' throughput agrees, so only the latency can show that the
    queue grows (by 15% of capacity a second, from an idle replica). Three windows of 0.25 s did not
    show it and passed this rate in 2 of 3 tries (p99 about 280 ms); windows long enough to span p99 target /
    tolerance (3 s here, sweep.horizon) must fail it."""
    from mlkit.bench import sweep
    from mlkit.bench.server import Config, Target

    proj = project("sentiment")
    (proj / "predictor.py").write_text(KNOWN_COST)
    target = Target(f"{proj / 'predictor.py'}:Predictor", proj / "model", "sentiment", "{}", 64)
    body = (proj / "payload.json").read_bytes()
    lines: list[str] = []
    with sweep._serving(target, Config(8, 5, 32), "/predict", body) as (url, connections):
        point = sweep._runner(url, body, connections, sweep.Windows(0.25), 300, lines.append)(1.15 * saturation(8))
    assert not point.passed and "p99" in point.missed, lines
    assert sweep.Windows(0.25).length(1.15 * saturation(8), 300) == pytest.approx(1.0)  # 3 s over the three windows judged


def test_quick_is_quick_and_says_it_is_rough(project):
    proj = project("sentiment")
    (proj / "predictor.py").write_text(KNOWN_COST)
    result = mlkit("bench", "--quick", "--batch-sizes", "16", "--p99-ms", "200", cwd=proj, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "rough: --quick measures each rate once" in result.stdout and "rough answer" in result.stderr
    assert "settle" not in result.stderr and "second look" not in result.stderr  # one window a rate, no second look
    row = re.search(r"^ +16 +5 +32 +(\d+) ± (\d+) ", result.stdout, re.M)
    assert row, result.stdout
    assert int(row.group(2)) >= 0.25 * int(row.group(1)) - 1  # a step at least (to rounding): each rate measured once


def test_sentiment_prints_a_recommendation_in_about_a_minute(project, tmp_path):
    proj = project("sentiment")
    started = time.monotonic()
    result = mlkit("bench", "--rps", "1500", "--p99-ms", "50", cwd=proj, timeout=300)
    wall = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    # Three configurations, each rate until its windows agree: 40-70 s on the shared 2-core test machine.
    assert wall < 150, f"took {wall:.0f} s"
    assert "for 1500 req/s at p99 <= 50 ms:" in result.stdout
    for fragment in ("batching:", "target_in_flight", "x m6i.large", "on demand", "on spot"):
        assert fragment in result.stdout, (fragment, result.stdout)
    assert "± " in result.stdout and "until 3 agreed within 10%" in result.stdout
    chart = proj / ".mlkit/bench/sentiment.svg"
    check_elements(chart, configs=3)
    check_rendered(chart, tmp_path / "sentiment.png")
    print(result.stdout, f"\n(wall {wall:.1f} s)")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--payload", "{not json"], ["--payload", "not valid JSON"]),
        (["--payload", "@missing.json"], ["missing.json", "cannot read"]),
        # Checked as the runtime would, before the first server starts (NaN once failed only after the whole run).
        (["--payload", '{"text": NaN}'], ["--payload: NaN is not JSON"]),
        (["--payload", "[" + "1" * 5000 + "]"], ["--payload: an integer of 5000 digits"]),
        (["--payload", "[" * 70 + "]" * 70], ["--payload: nested more than 64 levels deep"]),
        (["--payload", "@/dev/zero"], ["--payload @/dev/zero: not a regular file"]),
        (["--batch-sizes", "1,x"], ["--batch-sizes", "'x' is not a whole number"]),
        (["--batch-sizes", "0"], ["--batch-sizes", "below 1"]),
        (["--batch-sizes", "1,2,3,4,5", "--wait-ms", "1,2,3"], ["15 configurations", "at most 12"]),
        (["--route", "predict"], ["--route", "/predict"]),
        (["nope"], ["no API named 'nope'"]),
        (["--prices", "bad-prices.yaml"], ["bad-prices.yaml", "types.m6i.large.on_demand"]),
    ],
)
def test_bad_input_is_one_line(project, args, fragments):
    proj = project("sentiment")
    (proj / "bad-prices.yaml").write_text("taken: x\ntypes:\n  m6i.large: {vcpu: 2, memory_gib: 8, on_demand: cheap, spot: 0.1}\n")
    assert_one_line_error(mlkit("bench", *args, cwd=proj), *fragments)
    assert not (proj / ".mlkit/bench").exists()


@pytest.mark.parametrize("args", [["--rps", "inf"], ["--rps", "nan"], ["--rps", "0"], ["--p99-ms", "inf"], ["--seconds", "0"]])
def test_bad_numbers_are_a_bad_command_line(project, args):
    proj = project("sentiment")
    result = mlkit("bench", *args, cwd=proj)
    assert result.returncode == 2 and "Traceback" not in result.stderr and args[0] in result.stderr, result.stderr
    assert not (proj / ".mlkit/bench").exists()


def test_no_payload_says_how_to_give_one(project):
    proj = project("sentiment")
    (proj / "payload.json").unlink()
    assert_one_line_error(mlkit("bench", cwd=proj), "no payload to send", "--payload")


def test_payload_json_is_never_followed_out_of_the_project_nor_read_forever(project, sentinel):
    proj = project("sentiment")
    (proj / "payload.json").unlink()
    os.symlink(sentinel.root / "notes.txt", proj / "payload.json")
    assert_one_line_error(mlkit("bench", cwd=proj), "payload.json is a symlink")
    (proj / "payload.json").unlink()
    os.mkfifo(proj / "payload.json")  # a read would block for ever
    assert_one_line_error(mlkit("bench", cwd=proj, timeout=60), "payload.json: not a regular file")
    (proj / "payload.json").unlink()
    (proj / "payload.json").write_text("[" + "0," * (6 * 2**20) + "0]")
    assert_one_line_error(mlkit("bench", cwd=proj), "payload.json: larger than 10 MiB")
    sentinel.assert_untouched()


def test_chart_never_follows_a_link(project, sentinel):
    proj = project("sentiment")
    (proj / ".mlkit").mkdir(exist_ok=True)
    os.symlink(sentinel.root, proj / ".mlkit/bench")
    assert_one_line_error(mlkit("bench", cwd=proj), ".mlkit/bench", "symlink")
    sentinel.assert_untouched()


def test_a_payload_the_predictor_refuses_is_one_line(project):
    proj = project("sentiment")
    assert_one_line_error(mlkit("bench", "--quick", "--payload", '{"text": 5}', cwd=proj, timeout=120), "answered no request with 2xx", "--payload")
    assert not (proj / ".mlkit/bench").exists()


def test_a_predictor_that_cannot_load_is_one_line(project):
    proj = project("sentiment")
    (proj / "predictor.py").write_text(
        "class Predictor:\n"
        "    def __init__(self, config, model_dir):\n        raise RuntimeError('no weights here')\n\n"
        "    def predict(self, payload):\n        return payload\n"
    )
    assert_one_line_error(mlkit("bench", "--quick", cwd=proj, timeout=120), "runtime exited", "no weights here")


def test_an_engine_api_is_refused_in_one_line(tmp_path):
    """An engine API runs vLLM's server, not the runtime bench drives: one line says so, nothing starts."""
    from tests.spec.test_engines import AWS

    (tmp_path / "mlkit.yaml").write_text(AWS)
    result = mlkit("bench", "chat", "--payload", "{}", cwd=tmp_path, timeout=60)
    assert_one_line_error(result, "chat runs engine vllm: mlkit bench measures predictor APIs")
