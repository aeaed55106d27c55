"""The arithmetic of `mlkit bench --rps` on hand-made measurements, and the price table's coverage."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from mlkit import placement
from mlkit.bench import prices
from mlkit.bench.recommend import Demand, quantity, recommend, replicas_per_node
from mlkit.bench.server import Config
from mlkit.bench.sweep import Outcome, Point, search
from mlkit.errors import UserError
from mlkit.spec import accelerators, load
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


def test_recommendation_from_measurements():
    table = prices.load()
    slow = Outcome(Config(1, 5, 32), 100, [point(50, 10), point(80, 30, passed=False)])
    fast = Outcome(Config(16, 5, 32), 600, [point(200, 8), point(400, 12), point(500, 40, passed=False)])
    rec = recommend([slow, fast], 1000, 50, Demand(0.5, 0.5, "none", 0), table.types["m6i.large"], "m6i.large", table)
    assert rec["max_batch_size"] == 16 and rec["capacity_per_replica_rps"] == 400
    assert rec["replicas"] == 3 and rec["rps_per_replica"] == pytest.approx(333.3, abs=0.1)
    # 333 req/s per replica: the lowest passing point at or above it is 400 req/s, mean 12 ms -> 4 in flight.
    assert rec["measured_at_rps"] == 400 and rec["target_in_flight"] == math.ceil(1000 / 3 * 0.012)
    assert rec["nodes"] == 1 and rec["monthly_on_demand_usd"] == pytest.approx(0.096 * 730)
    none = recommend([Outcome(Config(1, 5, 32), 10, [point(5, 90, passed=False)])], 10, 50, Demand(1, 1, "none", 0), None, None, table)
    assert "no configuration kept p99" in none["error"]


def test_search_brackets_the_edge():
    edge = 137.0
    seen: list[float] = []

    def run(rate: float) -> Point:
        seen.append(rate)
        return point(rate, 5, passed=rate <= edge)

    points = search(run, ceiling=400)
    best = max(p.offered_rps for p in points if p.passed)
    assert best <= edge and best >= edge / 1.25 / 1.12  # within the 25% step and its bisection
    assert len(seen) <= 7


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
