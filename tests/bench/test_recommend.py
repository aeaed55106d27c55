"""The arithmetic of `mlkit bench --rps` on hand-made measurements, and the price table's coverage."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from mlkit import placement
from mlkit.bench import prices
from mlkit.bench.loadgen import Window
from mlkit.bench.recommend import Demand, quantity, rank, recommend, replicas_per_node
from mlkit.bench.server import Config
from mlkit.bench.sweep import Outcome, Point, agree, search
from mlkit.errors import UserError
from mlkit.spec import accelerators
from mlkit.spec.loader import load
from tests.conftest import EXAMPLE_NAMES, EXAMPLES


def point(rate: float, mean_ms: float, passed: bool = True) -> Point:
    return Point(rate, rate, mean_ms, 2 * mean_ms, mean_ms, 1.0 if passed else 0.5, passed)


def test_quantities():
    assert quantity("500m") == 0.5 and quantity("2") == 2 and quantity("512Mi") == 512 * 2**20 and quantity("1.5Gi") == 1.5 * 2**30
    assert quantity("1e2") == 100 and quantity("2k") == 2000 and quantity("1Ei") == 2**60  # what the spec accepts, read the same way
    with pytest.raises(ValueError):
        quantity("lots")


def test_replicas_per_node_takes_the_scarcest_resource():
    table = prices.load()
    assert replicas_per_node(table.types["m6i.large"], Demand(0.5, 0.5, "none", 0)) == 3  # 1.8 allocatable vCPU
    assert replicas_per_node(table.types["m6i.large"], Demand(0.1, 4, "none", 0)) == 1  # 7.2 allocatable GiB
    assert replicas_per_node(table.types["g5.xlarge"], Demand(1, 2, "nvidia", 1)) == 1  # one GPU
    assert replicas_per_node(table.types["inf2.xlarge"], Demand(1, 2, "neuron", 1)) == 2  # two Neuron cores
    assert replicas_per_node(table.types["m6i.large"], Demand(1, 2, "nvidia", 1)) == 0
    # A g5.xlarge whose GPU is shared 4 ways: 4 replicas of one share each, until CPU binds (3.6 vCPU).
    assert replicas_per_node(table.types["g5.xlarge"], Demand(0.5, 2, "nvidia", 1, shares_per_accelerator=4)) == 4
    assert replicas_per_node(table.types["g5.xlarge"], Demand(1, 2, "nvidia", 1, shares_per_accelerator=4)) == 3


def test_recommendation_from_measurements():
    table = prices.load()
    slow = Outcome(Config(1, 5, 32), 100, [point(50, 10), point(80, 30, passed=False)])
    fast = Outcome(Config(16, 5, 32), 600, [point(200, 8), point(400, 12), point(500, 40, passed=False)])
    rec = recommend([slow, fast], 1000, 50, Demand(0.5, 0.5, "none", 0), table.types["m6i.large"], "m6i.large", table)
    assert rec["max_batch_size"] == 16 and rec["capacity_per_replica_rps"] == 400 and rec["ties"] == []
    assert rec["capacity_spread_rps"] == 100  # the edge lies between 400 (passed) and 500 (failed)
    assert rec["replicas"] == 3 and rec["rps_per_replica"] == pytest.approx(333.3, abs=0.1)
    # 333 req/s per replica: the lowest passing point at or above it is 400 req/s, mean 12 ms -> 4 in flight.
    assert rec["measured_at_rps"] == 400 and rec["target_in_flight"] == math.ceil(1000 / 3 * 0.012)
    assert rec["nodes"] == 1 and rec["monthly_on_demand_usd"] == pytest.approx(0.096 * 730)
    none = recommend([Outcome(Config(1, 5, 32), 10, [point(5, 90, passed=False)])], 10, 50, Demand(1, 1, "none", 0), None, None, table)
    assert "no configuration kept p99" in none["error"]


def test_search_brackets_the_edge_to_the_resolution():
    for edge in (137.0, 281.0, 299.0, 1000.0):
        seen: list[float] = []

        def run(rate: float, edge: float = edge, seen: list[float] = seen) -> Point:
            seen.append(rate)
            return point(rate, 5, passed=rate <= edge)

        points = search(run, ceiling=400, resolution=0.10)
        best = max(p.offered_rps for p in points if p.passed)
        above = [p.offered_rps for p in points if not p.passed and p.offered_rps > best]
        assert best <= edge and (not above or min(above) <= 1.10 * best), (edge, sorted(seen))
        assert len(seen) <= 1 + 4 + 3  # the first rate, four steps, three bisections at most


def test_spread_is_the_gap_to_the_edge_and_never_below_the_tolerance():
    config = Config(1, 5, 32)
    assert Outcome(config, 0, [point(400, 5), point(500, 5, passed=False)]).spread_rps == 100
    assert Outcome(config, 0, [point(400, 5), point(420, 5, passed=False)], tolerance=0.1).spread_rps == 40  # the tolerance
    assert Outcome(config, 0, [point(400, 5)]).spread_rps == 100  # no failure above: the step not taken (25%)
    # A failure below the best pass: the measurements disagree, and the spread says by how much.
    assert Outcome(config, 0, [point(300, 5, passed=False), point(400, 5), point(420, 5, passed=False)]).spread_rps == 100
    assert Outcome(config, 0, [point(300, 5, passed=False)]).spread_rps == 0 and Outcome(config, 0).capacity is None


def test_a_second_look_that_fails_lowers_the_capacity_and_widens_the_spread():
    config = Config(16, 5, 32)
    first = [point(400, 5), point(500, 5), point(600, 5, passed=False)]
    confirmed = Outcome(config, 0, [*first, replace(point(500, 6), look=2)])
    assert confirmed.capacity is not None and (confirmed.capacity.offered_rps, confirmed.capacity.look) == (500, 2)
    assert confirmed.spread_rps == 100
    # The machine got busier: 500 fails now. The capacity is the highest rate that always passed, and
    # the spread reaches the lowest failure above the highest rate that ever passed.
    moved = Outcome(config, 0, [*first, replace(point(500, 60, passed=False), look=2)])
    assert moved.capacity is not None and moved.capacity.offered_rps == 400
    assert moved.spread_rps == 200
    # The machine got quieter: 600, which failed, passes now. 500 stays the capacity (600 did not pass
    # every time), and the spread reaches past 600 by the step not taken, nothing above it having failed.
    freed = Outcome(config, 0, [*first, replace(point(500, 6), look=2), replace(point(600, 6), look=2)])
    assert freed.capacity is not None and freed.capacity.offered_rps == 500
    assert freed.spread_rps == 1.25 * 600 - 500


def test_ranking_respects_the_spread_and_prefers_the_simpler():
    def outcome(batch: int, wait: float, capacity: float, edge: float) -> Outcome:
        return Outcome(Config(batch, wait, 32), 0, [point(capacity, 5), point(edge, 50, passed=False)])

    b16, b32 = outcome(16, 5, 2450, 2600), outcome(32, 5, 2700, 2900)  # 2450 ± 245 and 2700 ± 270: they overlap
    chosen, ties = rank([b32, b16])
    assert chosen is b16 and ties == [b32]
    # The same capacities, one with a shorter wait: the simpler configuration is the one with less wait.
    w1, w10 = outcome(16, 1, 2500, 2700), outcome(16, 10, 2550, 2750)
    assert rank([w10, w1]) == (w1, [w10])
    # Beyond the spreads, the faster one wins even though it batches more.
    b64 = outcome(64, 5, 4000, 4300)
    assert rank([b16, b32, b64]) == (b64, [])
    assert rank([]) == (None, [])
    table = prices.load()
    rec = recommend([b32, b16], 2000, 50, Demand(0.5, 0.5, "none", 0), None, None, table)
    assert rec["max_batch_size"] == 16 and rec["capacity_per_replica_rps"] == 2450 and rec["capacity_spread_rps"] == 245
    assert rec["ties"] == [{"config": "batch 32, wait 5 ms, in flight 32", "capacity_rps": 2700, "spread_rps": 270}]


def window(served: float, p99_ms: float, success: float = 1.0) -> Window:
    """A 1-second window at 1000 req/s offered: `served` 2xx answers, the rest refused; latencies up to p99_ms."""
    refused = round(served / success) - round(served)
    w = Window(1000, 1.0, statuses={"200": round(served), "503": refused})
    w.latencies = sorted([p99_ms / 2000] * 98 + [p99_ms / 1000] * 2)
    return w


def test_windows_agree_as_perf_analyzer_asks_with_verdicts_in_place_of_latency():
    ok = [window(1000, 20), window(1000, 25), window(980, 30)]
    assert agree(ok, 50, 0.10)
    assert not agree(ok[:2], 50, 0.10)  # three windows, no fewer
    assert not agree([window(1000, 20), window(1000, 25), window(880, 30)], 50, 0.10)  # throughput differs by 13.6%
    assert agree([window(1000, 20), window(1000, 25), window(880, 30)], 50, 0.15)
    assert not agree([window(1000, 20), window(1000, 70), window(1000, 30)], 50, 0.10)  # the verdicts differ
    assert agree([window(1000, 70), window(600, 90), window(300, 300, 0.5)], 50, 0.10)  # three failures agree
    assert agree([window(500, 90), window(1000, 20), window(1000, 25), window(990, 20)], 50, 0.10)  # the last three count


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_pool_has_a_price(name):
    spec = load(EXAMPLES / name / "mlkit.yaml")
    table = prices.load()
    for pool in spec.cluster.node_pools:
        machine = pool.instance_type or accelerators.tpu_slice(pool.tpu.version, pool.tpu.topology).machine_type
        assert machine in table.types, f"{name}: pool {pool.name} runs {machine}, which cli/bench/prices.yaml lacks"
        node, acc = table.types[machine], placement.pool_accelerator(pool, spec.cloud)
        if acc.kind != "none":
            assert node.accelerators.get(acc.kind) == (acc.neuron_cores if acc.kind == "neuron" else acc.count), (machine, acc)


LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True))


@pytest.mark.parametrize(("text", "fragment"), [
    ("taken: x\ntypes:\n  m6i.large: {vcpu: 2, memory_gib: 8, on_demand: .nan, spot: 0.1}\n", "on_demand must be a finite number of at least 0, got nan"),
    ("taken: x\nhours_per_month: .inf\ntypes: {}\n", "hours_per_month must be a number of hours in a month (above 0, at most 744), got inf"),
    ("taken: x\ntypes:\n  \"\\e[2J\": {vcpu: 2, memory_gib: 8, on_demand: x, spot: 0.1}\n", "types.\\x1b[2J.on_demand"),
    (LAUGHS, "aliases expand"),
    ("taken: x\nhours_per_month: " + "7" * 5000 + "\ntypes: {}\n", "a number of 5000 digits"),
])
def test_a_hostile_price_table_is_one_line(tmp_path, text, fragment):
    """--prices once went through yaml.safe_load: a billion laughs, 5000 digits, NaN costs and terminal escapes all passed or crashed."""
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as raised:
        prices.load(path)
    assert fragment in str(raised.value) and "\n" not in str(raised.value) and "\x1b" not in str(raised.value), str(raised.value)


def test_a_price_table_that_is_not_a_regular_file_is_one_line(tmp_path):
    import os

    os.mkfifo(tmp_path / "fifo.yaml")  # a read would block for ever
    for path in (tmp_path / "fifo.yaml", Path("/dev/zero"), tmp_path):
        with pytest.raises(UserError, match="not a regular file"):
            prices.load(path)
