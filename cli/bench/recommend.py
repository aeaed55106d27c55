"""From measured capacities to settings, replicas, nodes and cost: the arithmetic of `mlkit bench --rps`.

- The configuration: the one whose replica serves the most at the latency target (fewest replicas),
  but only when it beats the others by more than their spreads together (the capacity intervals do
  not overlap). Among those it does not clearly beat, the simplest wins (smaller batch, then shorter
  wait, then fewer in flight: less latency added, less to go wrong), and the answer says they tie.
- replicas = ceil(R / capacity per replica).
- target_in_flight, by Little's law: requests in flight per replica = arrival rate per replica x mean
  time in the system, with the mean latency measured at the lowest passing rate at or above R / replicas
  (the conservative side), rounded up.
- Nodes: replicas per node from the node type's vCPU, memory and accelerators against the API's
  requests, counting ALLOCATABLE of a node's vCPU and memory as schedulable (kubelet, system
  reservations and daemonsets take the rest; EKS leaves about 1.93 of m6i.large's 2 vCPU and 7 of its
  8 GiB, so 90% is on the generous side for small nodes).
- Cost: nodes x $/hour x hours per month, on demand and on spot.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .prices import NodeType, Table
from .sweep import Outcome, Point

ALLOCATABLE = 0.9


def quantity(text: str) -> float:
    """A Kubernetes quantity (`500m`, `2`, `512Mi`, `1.5Gi`, `1e2`) as a plain number, read as the spec reads it
    (`1e2` and `2k` once raised ValueError here after the spec had accepted them)."""
    from ..spec.schema import QUANTITY, quantity_value

    value = quantity_value(text.strip()) if re.fullmatch(QUANTITY, text.strip()) else None
    if value is None:
        raise ValueError(f"not a quantity: {text!r}")
    return float(value)


@dataclass(frozen=True)
class Demand:
    """What one replica asks of a node."""

    cpu: float
    memory_gib: float
    accelerator: str  # none | nvidia | neuron | tpu
    accelerators: int
    # A pool with gpu_sharing offers each GPU as this many shares, and a replica asks for shares.
    shares_per_accelerator: int = 1


def replicas_per_node(node: NodeType, demand: Demand) -> int:
    fits = [
        math.floor(ALLOCATABLE * node.vcpu / demand.cpu + 1e-9) if demand.cpu else 10**6,
        math.floor(ALLOCATABLE * node.memory_gib / demand.memory_gib + 1e-9) if demand.memory_gib else 10**6,
    ]
    if demand.accelerators:
        fits.append(node.accelerators.get(demand.accelerator, 0) * demand.shares_per_accelerator // demand.accelerators)
    return max(0, min(fits))


def simplicity(outcome: Outcome) -> tuple[int, float, int]:
    config = outcome.config
    return (config.max_batch_size, config.max_wait_ms, config.max_in_flight)


def rank(outcomes: list[Outcome]) -> tuple[Outcome | None, list[Outcome]]:
    """The configuration to recommend, and the others it ties with (see the module docstring)."""
    measured = [o for o in outcomes if o.capacity is not None]
    if not measured:
        return None, []
    top = max(measured, key=lambda o: (_rate(o), -o.capacity.p99_ms))  # type: ignore[union-attr]
    tied = [o for o in measured if _rate(top) - _rate(o) <= top.spread_rps + o.spread_rps]
    chosen = min(tied, key=simplicity)
    return chosen, sorted((o for o in tied if o is not chosen), key=lambda o: -_rate(o))


def _rate(outcome: Outcome) -> float:
    return outcome.capacity.offered_rps if outcome.capacity else 0.0


def latency_at(outcome: Outcome, rate: float) -> Point:
    """The passing point at the lowest rate at or above `rate` (its latency bounds the latency at `rate`)."""
    passing = sorted((p for p in outcome.points if p.passed), key=lambda p: p.offered_rps)
    return next((p for p in passing if p.offered_rps >= rate), passing[-1])


def recommend(
    outcomes: list[Outcome], rps: float, p99_ms: float, demand: Demand, node: NodeType | None, node_type: str | None, prices: Table | None
) -> dict[str, Any]:
    chosen, ties = rank(outcomes)
    if chosen is None:
        return {"error": f"no configuration kept p99 within {p99_ms:g} ms with 99% answered at any rate tried: raise --p99-ms, or time the predictor alone"}
    capacity = chosen.capacity
    assert capacity is not None
    replicas = max(1, math.ceil(rps / capacity.offered_rps - 1e-9))
    per_replica = rps / replicas
    point = latency_at(chosen, per_replica)
    in_flight = per_replica * point.mean_ms / 1000
    out: dict[str, Any] = {
        "rps": rps,
        "p99_ms": p99_ms,
        "max_batch_size": chosen.config.max_batch_size,
        "max_wait_ms": chosen.config.max_wait_ms,
        "max_in_flight": chosen.config.max_in_flight,
        "capacity_per_replica_rps": round(capacity.offered_rps, 1),
        "capacity_spread_rps": round(chosen.spread_rps, 1),
        "ties": [{"config": o.config.label(), "capacity_rps": round(_rate(o), 1), "spread_rps": round(o.spread_rps, 1)} for o in ties],
        "replicas": replicas,
        "rps_per_replica": round(per_replica, 1),
        "mean_latency_ms": round(point.mean_ms, 2),
        "measured_at_rps": round(point.offered_rps, 1),
        "target_in_flight": max(1, math.ceil(in_flight - 1e-9)),
        "little_in_flight": round(in_flight, 2),
    }
    if node is None:
        out["nodes"] = None
        out["cost_note"] = f"no price for node type {node_type!r} in {prices.source if prices else 'the price table'}; add it to get nodes and cost"
        return out
    per_node = replicas_per_node(node, demand)
    out["node_type"] = node.name
    out["replicas_per_node"] = per_node
    if per_node == 0:
        out["nodes"] = None
        out["cost_note"] = (
            f"one replica ({demand.cpu:g} CPU, {demand.memory_gib:g} GiB) does not fit a {node.name} "
            f"({node.vcpu:g} vCPU, {node.memory_gib:g} GiB, {ALLOCATABLE:.0%} allocatable)"
        )
        return out
    nodes = math.ceil(replicas / per_node)
    assert prices is not None
    out["nodes"] = nodes
    out["monthly_on_demand_usd"] = round(nodes * node.on_demand * prices.hours_per_month, 2)
    out["monthly_spot_usd"] = round(nodes * node.spot * prices.hours_per_month, 2)
    out["prices_taken"] = prices.taken
    return out
